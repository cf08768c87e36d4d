"""Peak training memory, each measurement in a fresh process, and its growth with depth
(`python -m benchmarks.memory.depth`)."""
