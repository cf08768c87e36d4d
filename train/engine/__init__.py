"""The training engine of `python -m train`: the loop (`loop.run`), its steps under a
`tf.distribute` strategy, checkpoints, the non-finite guard, preemption, and the reports a
run leaves (held-out likelihood, sample quality, grids, summaries). The update of one step
is the library's (`glow_tfp.training`), shared with `GlowModel.fit`."""
