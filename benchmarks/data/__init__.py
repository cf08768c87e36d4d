"""The input pipeline: start-up and memory against dataset size, and its throughput against
the training step's (`python -m benchmarks.data.input_pipeline`)."""
