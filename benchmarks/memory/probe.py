"""Child process of `benchmarks.memory.peak_memory.peak_training_memory`: one measurement, one line.

  python -m benchmarks.memory.probe --system=glow_tfp --config='<GlowConfig JSON>' \\
      --batch_size=16
"""

import json

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import peers  # noqa: E402
from benchmarks.memory import peak_memory  # noqa: E402
import glow_tfp  # noqa: E402

_SYSTEM = flags.DEFINE_enum("system", None, list(peers.SYSTEMS),
                            "Name of a system in benchmarks.common.peers.SYSTEMS.")
_CONFIG = flags.DEFINE_string("config", None, "The GlowConfig, as GlowConfig.to_json().")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Training batch size.", lower_bound=1)
_STEPS = flags.DEFINE_integer("steps", 2, "Training steps after the first.", lower_bound=1)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = glow_tfp.GlowConfig.from_json(_CONFIG.value)
  result = peak_memory.measure(_SYSTEM.value, config, _BATCH_SIZE.value, _STEPS.value)
  print(peak_memory.RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["system", "config"])
  app.run(main)
