import os
import pathlib
import subprocess
import sys

import pytest

from glow_tfp import precision

REPO = pathlib.Path(__file__).resolve().parents[1]


def _cpu_flags():
  try:
    with open("/proc/cpuinfo") as f:
      return set(next(line for line in f if line.startswith("flags")).split())
  except (OSError, StopIteration):
    return set()


# oneDNN takes bfloat16 convolutions on these CPUs; capped at AVX2 it has no kernel for them.
HAS_REDUCED_PRECISION_ISA = bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


@pytest.mark.parametrize("dtype", ["float32", "float64", None])
def test_full_precision_always_runs(dtype):
  assert precision.unsupported_reason(dtype) is None
  precision.check_compute_dtype(dtype)


def run_python(code, **env):
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, timeout=240, env=dict(os.environ, **env))


@pytest.mark.skipif(not HAS_REDUCED_PRECISION_ISA,
                    reason="needs a CPU whose oneDNN runs bfloat16 (AVX-512 BF16 or AMX)")
def test_a_capped_onednn_refuses_bfloat16_when_the_model_is_built():
  code = ("import glow_tfp, sys\n"
          "config = glow_tfp.GlowConfig(image_shape=(4, 4, 1), levels=1, steps_per_level=1, "
          "hidden_channels=4)\n"
          "try:\n"
          "  glow_tfp.Glow(config, compute_dtype='bfloat16')\n"
          "except ValueError as error:\n"
          "  sys.exit(str(error))\n")
  result = run_python(code, ONEDNN_MAX_CPU_ISA="AVX2", TF_ENABLE_ONEDNN_OPTS="1")
  assert result.returncode == 1, result.stderr[-2000:]
  assert "compute dtype 'bfloat16' is not available" in result.stderr
  assert "oneDNN capped at ONEDNN_MAX_CPU_ISA=AVX2" in result.stderr


@pytest.mark.skipif(not HAS_REDUCED_PRECISION_ISA,
                    reason="needs a CPU whose oneDNN runs float16 (AVX-512 FP16 or AMX)")
def test_a_capped_onednn_makes_the_training_cli_refuse_the_dtype_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "train", "--compute_dtype=float16", "--steps=1",
       f"--workdir={tmp_path / 'w'}"], cwd=REPO, capture_output=True, text=True, timeout=240,
      env=dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", TF_ENABLE_ONEDNN_OPTS="1"))
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("train: error: --compute_dtype=float16:"), result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "w").exists()
