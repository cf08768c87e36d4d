"""What the coupling network's matrix-product gradients buy, on the whole training step.

  python -m benchmarks.hidden_gradient --hidden_architecture=28x28x1
  python -m benchmarks.hidden_gradient --hidden_architecture=32x32x3

glow_tfp's coupling network runs its hidden 1x1 layer forward as one fused convolution and
backward as two matrix products over all pixels (`glow_tfp.bijectors.nets`). This times
the benchmark's Adam training step of one glow_tfp model at an architecture two ways, in
the same process and alternating within each repeat: with those gradients, and with
TensorFlow's own gradients of the same fused convolution. The forward pass, and so
`log_prob` and sampling, is the same code either way.
"""

import contextlib

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

from benchmarks import architectures  # noqa: E402
from benchmarks import peers  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks import timing  # noqa: E402
from benchmarks import workloads  # noqa: E402
from glow_tfp.bijectors import nets  # noqa: E402

_ARCHITECTURE = flags.DEFINE_enum("hidden_architecture", "28x28x1",
                                  list(architectures.ARCHITECTURES), "Architecture.")
_REPEATS = flags.DEFINE_integer("hidden_repeats", 5, "Repeats (the two ways alternate).",
                                lower_bound=1)
_SECONDS = flags.DEFINE_float("hidden_seconds", 2.0, "Seconds per way per repeat.",
                              lower_bound=0.0)
_OUT_DIR = flags.DEFINE_string("hidden_out_dir", "benchmarks/results", "Where results go.")

WAYS = ("matrix_products", "autodiff")


@contextlib.contextmanager
def autodiff_gradients():
  """Within it, a coupling network traced differentiates its hidden layer the default way."""
  custom = nets._relu_1x1
  nets._relu_1x1 = nets._fused_relu_1x1
  try:
    yield
  finally:
    nets._relu_1x1 = custom


def measure(arch, repeats, seconds):
  """{"images_per_s": {way: [per repeat]}, "speedup": median ratio} of the training step."""
  model = peers.build_initialized(peers.SYSTEMS["glow_tfp"], arch)
  steps = {"matrix_products": workloads.make("train", arch, model, jit_compile=False)}
  steps["matrix_products"]()
  with autodiff_gradients():
    steps["autodiff"] = workloads.make("train", arch, model, jit_compile=False)
    steps["autodiff"]()  # Traced here, while the swap is in place.
  seconds_per_call = timing.alternate(steps, repeats, timing.calls_lasting(steps, seconds))
  rates = {way: [arch.train_batch / s for s in seconds_per_call[way]] for way in WAYS}
  return {"images_per_s": rates,
          "speedup": timing.paired_ratio(rates["matrix_products"], rates["autodiff"])}


def markdown(result, arch_name):
  rates = result["images_per_s"]
  rows = [[way.replace("_", " "), f"{timing.median(rates[way]):.1f}"] for way in WAYS]
  return ([f"# Hidden-layer gradients: training step at {arch_name}", ""]
          + report.environment_lines(result["environment"]) + [""]
          + report.table(["hidden-layer gradients", "train img/s (median)"], rows)
          + ["", f"Matrix products / autodiff: {result['speedup']:.3f}x (median of "
             f"per-repeat ratios over {len(rates['autodiff'])} repeats)."])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  arch_name = _ARCHITECTURE.value
  result = dict(measure(architectures.ARCHITECTURES[arch_name], _REPEATS.value,
                        _SECONDS.value), environment=report.environment())
  lines = markdown(result, arch_name)
  print("\n".join(lines))
  for path in report.write(result, lines, _OUT_DIR.value, f"hidden_gradient_{arch_name}"):
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
