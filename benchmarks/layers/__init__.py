"""One layer's formulations timed alone: the 1x1 convolution in LU form against the plain
matrix (`python -m benchmarks.layers.lu_vs_conv`)."""
