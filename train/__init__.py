"""The training job, `python -m train` (absl flags), laid out by concern:

- the tools people run: `cli` (`python -m train`), `ablation`, `latents`, `ood`, `plot`,
  `records` and `sample_quality`, with the flags several of them share in `common_flags`
  (and `ood_sources`, the images `ood` generates);
- `engine/`: the training loop and what it leaves (`train.engine.loop.run` trains from
  Python);
- `data/`: the sources and the input pipeline.
"""
