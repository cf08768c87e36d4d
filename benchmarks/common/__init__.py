"""What every benchmark shares: the architectures, the systems compared, the workloads, the
alternating timer and the reports."""
