"""The training data: `datasets.load` opens a source (the bundled digits in memory, image
folders, TensorFlow Datasets or TFRecord files streamed from disk) with the image rules of
the model's config, and `pipeline` batches it so that each step's batch is a pure function
of (seed, step)."""
