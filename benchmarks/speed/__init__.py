"""glow_tfp against its peers (TFP's `tfb.Glow`, rosinality's PyTorch Glow): images/s,
first-call time, peak memory and convolution FLOP/s against the CPU's peak, in one run
(`python -m benchmarks.speed.run`)."""
