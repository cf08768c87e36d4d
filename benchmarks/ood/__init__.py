"""Out-of-distribution scores measured beside the served one (`python -m
benchmarks.ood.candidates`), and discriminative peers that put it in proportion (`python -m
benchmarks.ood.separability`)."""
