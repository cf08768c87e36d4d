"""Reproducible performance comparisons of glow_tfp and TFP's own `tfb.Glow` (not run by CI).

Entry points: `python -m benchmarks.run` (speed and peak memory, both systems),
`python -m benchmarks.memory` (peak training memory against depth), and
`python -m benchmarks.lu_vs_conv` (LU against plain 1x1 convolution). Each writes JSON and
Markdown under `benchmarks/results/`. `python -m benchmarks.op_profile` lists where one
workload's time goes, by op type.
"""

import os

# Measure what training and serving run: TensorFlow routes convolutions through oneDNN only
# if this is set when it is first imported (on CPUs without AVX-512 it is off by default),
# and Python imports this package before any of its modules, so `python -m benchmarks.X`
# gets it before TensorFlow loads. Re-executing each entry point in a child process would
# do the same at the cost of a second start-up and of an exit status and signals passed on
# by hand, in every entry point. A value the user set wins; child processes inherit it.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
