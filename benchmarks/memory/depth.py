"""Peak training memory against depth K, with and without reversible gradients.

  python -m benchmarks.memory.depth                   # K = 4, 8, 16, 32 on 28x28x1
  python -m benchmarks.memory.depth --system=tfp ...  # add systems (peers.SYSTEMS)

Every (K, system) pair trains for three steps in a fresh process (`benchmarks.memory.peak_memory`),
which reports its peak and the part training added over the loaded model. Ordinary
backprop keeps every step's activations, so that part grows linearly in K; reversible
gradients recompute them from the outputs, so it should stay nearly flat.
Writes benchmarks/results/<--name>.json and .md and prints the Markdown.
"""

import dataclasses

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import architectures  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.memory import peak_memory  # noqa: E402

_ARCHITECTURE = flags.DEFINE_enum("architecture", "28x28x1", list(architectures.ARCHITECTURES),
                                  "Architecture whose depth K varies.")
_DEPTHS = flags.DEFINE_list("depths", ["4", "8", "16", "32"], "Steps per level K.")
_SYSTEMS = flags.DEFINE_multi_enum("system", ["glow_tfp", "glow_tfp_reversible"],
                                   list(peers.SYSTEMS), "Systems to measure.")
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")
_NAME = flags.DEFINE_string("name", "memory_depth", "Base name of the result files.")


@flags.validator("depths", message="--depths must be positive integers.")
def _check_depths(values):
  return all(v.isdigit() and int(v) > 0 for v in values)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  arch = architectures.ARCHITECTURES[_ARCHITECTURE.value]
  depths = [int(k) for k in _DEPTHS.value]
  systems = list(dict.fromkeys(_SYSTEMS.value))
  results = {"environment": report.environment(),
             "architecture": {"config": dataclasses.asdict(arch.config),
                              "train_batch": arch.train_batch},
             "depths": depths, "peak_memory": peak_memory.depth_sweep(arch, depths, systems)}
  lines = peak_memory.depth_markdown(results)
  print("\n".join(lines))
  for path in report.write(results, lines, _OUT_DIR.value, _NAME.value):
    print("wrote", path)


if __name__ == "__main__":
  app.run(main)
