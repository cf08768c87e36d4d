"""The training engine of a Glow, shared by `python -m train` and `GlowModel.fit`.

- `step`: one step's loss and gradients in a replica context (dequantisation, ActNorm
  initialisation once, all-reduce, clipping, the non-finite verdict).
- `update`: the whole update around it: the step, then the optimizer at the scheduled
  learning rate when the step is finite, the EMA weights, the loss scale and the count of
  skipped steps.
- `optimizer`: Adam and Adamax with an all-or-nothing update.
- `schedule`: the learning rate of each step (linear warm-up).
- `ema`: the exponential moving average of the weights.
- `loss_scale`: dynamic loss scaling for float16.
"""
