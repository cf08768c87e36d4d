"""glow_tfp against TFP's `tfb.Glow`: speed, first-call time and peak memory, same run.

  python -m benchmarks.speed.run              # both architectures (docs/performance.md)
  python -m benchmarks.speed.run --quick      # two repeats, no memory probes
  python -m benchmarks.speed.run --noxla      # without the XLA-compiled variants
  python -m benchmarks.speed.run --isa=avx2   # oneDNN capped at AVX2 (a child process)
  python -m benchmarks.speed.run --torch_python=$HOME/torchenv/bin/python \\
      --torch_glow=$HOME/glow-pytorch         # also rosinality/glow-pytorch under PyTorch

Measures training step, log_prob (batch 256) and sampling (batch 64) images/s, first-call
time, peak training memory and parameter counts at each architecture of
`benchmarks.common.architectures` (see `benchmarks.speed.speed`). Writes
benchmarks/results/<--name>.json and .md (<--name>_avx2.* under --isa=avx2) and prints the
Markdown. The results name the ISA
oneDNN used (`benchmarks.cpu.isa`) and each system's convolution FLOP/s against the CPU's
measured peak (`benchmarks.speed.roofline`).
"""

import subprocess
import sys

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks.common import architectures  # noqa: E402
from benchmarks.common import peers  # noqa: E402
from benchmarks.common import report  # noqa: E402
from benchmarks.cpu import isa  # noqa: E402
from benchmarks.speed import speed  # noqa: E402
from benchmarks.speed import torch_client  # noqa: E402

_ARCHITECTURES = flags.DEFINE_multi_enum(
    "architecture", list(architectures.ARCHITECTURES), list(architectures.ARCHITECTURES),
    "Architectures to measure (benchmarks.common.architectures).")
_SYSTEMS = flags.DEFINE_multi_enum("system", list(speed.DEFAULT_SYSTEMS), list(peers.SYSTEMS),
                                   "Systems to compare (benchmarks.common.peers.SYSTEMS).")
_XLA = flags.DEFINE_bool("xla", True, "Include the XLA-compiled (jit_compile) systems.")
_COUPLING = flags.DEFINE_enum("coupling", "affine", ["affine", "additive"],
                              "Coupling of every architecture.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timing rounds (median reported).",
                                lower_bound=1)
_SECONDS = flags.DEFINE_float("seconds", 1.0, "Each system's share of a repeat lasts at "
                               "least this long (back-to-back calls).", lower_bound=0.0)
_MEMORY = flags.DEFINE_bool("memory", True, "Measure peak training memory (one process "
                            "per system and architecture).")
_QUICK = flags.DEFINE_bool("quick", False, "Two repeats and no memory probes.")
_OUT_DIR = flags.DEFINE_string("out_dir", "benchmarks/results", "Where results go.")
_NAME = flags.DEFINE_string("name", "speed", "Base name of the result files.")
_ISA = flags.DEFINE_enum("isa", "native", list(isa.ISAS),
                         "Instruction set oneDNN may use: native (the CPU's best) or avx2 "
                         "(ONEDNN_MAX_CPU_ISA=AVX2, in a child process; results get _avx2).")
_TORCH_PYTHON = flags.DEFINE_string("torch_python", None, "A Python with torch: time the "
                                    "PyTorch peer (benchmarks.speed.torch_peer) in the same run.")
_TORCH_GLOW = flags.DEFINE_string("torch_glow", None, "A checkout of rosinality/glow-pytorch "
                                  "(its model.py); needed with --torch_python.")
_TORCH_HARNESS = flags.DEFINE_string("torch_harness", torch_client.HARNESS,
                                     "The script the PyTorch peer runs.")
flags.register_multi_flags_validator(
    ["torch_python", "torch_glow"],
    lambda given: (given["torch_python"] is None) == (given["torch_glow"] is None),
    "--torch_python and --torch_glow go together.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not isa.is_capped(_ISA.value):
    # oneDNN reads its cap once, when it starts, and TensorFlow has started it by now.
    env = isa.capped_environment(_ISA.value)
    sys.exit(subprocess.run([sys.executable, "-m", "benchmarks.speed.run"] + sys.argv[1:],
                            env=env, check=False).returncode)
  repeats = 2 if _QUICK.value else _REPEATS.value
  memory = _MEMORY.value and not _QUICK.value
  arch_by_name = {name: architectures.ARCHITECTURES[name].replace(coupling=_COUPLING.value)
                  for name in dict.fromkeys(_ARCHITECTURES.value)}
  systems = speed.selected_systems(_SYSTEMS.value, _XLA.value)
  onednn = dict(isa.probe(), requested_isa=_ISA.value)
  torch_settings = (torch_client.Settings(_TORCH_PYTHON.value, _TORCH_GLOW.value,
                                          _TORCH_HARNESS.value) if _TORCH_PYTHON.value else None)
  results = speed.run(arch_by_name, systems, repeats, memory, _SECONDS.value, onednn=onednn,
                      torch_settings=torch_settings)
  lines = speed.markdown(results)
  print("\n".join(lines))
  name = _NAME.value + ("" if _ISA.value == "native" else f"_{_ISA.value}")
  for path in report.write(results, lines, _OUT_DIR.value, name):
    print("wrote", path)


if __name__ == "__main__":
  app.run(main)
