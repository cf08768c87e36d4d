"""Reproducible performance measurements of glow_tfp (not run by CI), grouped by what they
measure. Each entry point writes JSON and Markdown under `benchmarks/results/`.

  speed/    glow_tfp against TFP's `tfb.Glow` and a PyTorch Glow: `python -m benchmarks.speed.run`
  memory/   peak training memory against depth: `python -m benchmarks.memory.depth`
  layers/   the LU 1x1 convolution against the plain one: `python -m benchmarks.layers.lu_vs_conv`
  cpu/      oneDNN's ISA, thread and part settings, where the time goes:
            `python -m benchmarks.cpu.settings`, `.parts_speed`, `.op_profile`, `.isa`
  serving/  the SavedModel and the server: `python -m benchmarks.serving.export_speed`,
            `python -m benchmarks.serving.serving_speed`
  data/     the input pipeline: `python -m benchmarks.data.input_pipeline`
  common/   what they share: architectures, systems, workloads, timing, reports

docs/performance.md holds the figures and the commands that produced them.
"""
