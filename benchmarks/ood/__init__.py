"""Out-of-distribution scores measured beside the served one (`python -m benchmarks.ood.candidates`)."""
