"""Which instruction set oneDNN runs TensorFlow's convolutions with, and how to cap it.

oneDNN picks its kernels for the best ISA the CPU has (AVX-512 where present);
ONEDNN_MAX_CPU_ISA caps it, e.g. at AVX2 to see what an AVX2-only machine would get. Both
that cap and TF_ENABLE_ONEDNN_OPTS act only when read at start-up, so the capped benchmark
runs in a child process, and `probe()` asks a fresh process with the same environment what
oneDNN actually used: ONEDNN_VERBOSE=1 makes it print its ISA and the implementation of
each primitive it runs.

  python -m benchmarks.cpu.isa     # one convolution; run with ONEDNN_VERBOSE=1 to see why
"""

import os
import re
import subprocess
import sys

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402

# --isa value -> ONEDNN_MAX_CPU_ISA (None: leave oneDNN at the CPU's best).
ISAS = {"native": None, "avx2": "AVX2"}
NOT_ONEDNN = "not oneDNN (TensorFlow's own kernel)"
UNKNOWN = "unknown (no oneDNN report)"

_ISA = re.compile(r"^onednn_verbose,.*,isa:(.+)$", re.MULTILINE)
_CONVOLUTION = re.compile(r"^onednn_verbose,.*,exec,cpu,convolution,([^,]+),", re.MULTILINE)
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def capped_environment(isa, environ=None):
  """A copy of `environ` (default os.environ) with oneDNN capped at `isa` (an ISAS key)."""
  environ = dict(os.environ if environ is None else environ)
  if ISAS[isa]:
    environ["ONEDNN_MAX_CPU_ISA"] = ISAS[isa]
  return environ


def is_capped(isa):
  """Whether this process already runs under the cap `isa` asks for."""
  return ISAS[isa] is None or os.environ.get("ONEDNN_MAX_CPU_ISA") == ISAS[isa]


def parse(verbose_output):
  """{"onednn_isa", "convolution"} from ONEDNN_VERBOSE=1 output."""
  isa = _ISA.search(verbose_output)
  convolution = _CONVOLUTION.search(verbose_output)
  return {"onednn_isa": isa.group(1).strip() if isa else UNKNOWN,
          "convolution": convolution.group(1) if convolution else NOT_ONEDNN}


def probe(timeout_s=300):
  """What oneDNN uses under this process's environment, from a fresh process.

  Returns {"onednn_isa", "convolution", "TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA"}: the
  ISA oneDNN reports, the implementation of a 3x3 convolution (NOT_ONEDNN when TensorFlow's
  own kernel ran it), and the two settings as this process has them.
  """
  environ = dict(os.environ, ONEDNN_VERBOSE="1", TF_CPP_MIN_LOG_LEVEL="2")
  done = subprocess.run([sys.executable, "-m", "benchmarks.cpu.isa"], env=environ,
                        cwd=_REPO_ROOT, capture_output=True, text=True, timeout=timeout_s,
                        check=False)
  settings = {name: os.environ.get(name, "unset")
              for name in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
  return {**parse(done.stdout + done.stderr), **settings}


def main():
  x = tf.ones([4, 16, 16, 64])
  tf.nn.conv2d(x, tf.ones([3, 3, 64, 64]), strides=1, padding="SAME").numpy()


if __name__ == "__main__":
  main()
