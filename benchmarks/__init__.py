"""Reproducible performance comparisons of glow_tfp and TFP's own `tfb.Glow` (not run by CI).

Entry points: `python -m benchmarks.run` (speed and peak memory, both systems),
`python -m benchmarks.memory` (peak training memory against depth), and
`python -m benchmarks.lu_vs_conv` (LU against plain 1x1 convolution). Each writes JSON and
Markdown under `benchmarks/results/`. `python -m benchmarks.op_profile` lists where one
workload's time goes, by op type.
"""
