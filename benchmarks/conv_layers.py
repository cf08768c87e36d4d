"""Each convolution of an architecture timed alone, in every formulation TensorFlow offers.

  python -m benchmarks.conv_layers --conv_architecture=28x28x1 --conv_workload=log_prob
  python -m benchmarks.conv_layers --conv_architecture=32x32x3 --conv_workload=train

Where the profile (`benchmarks.op_profile`) puts nearly all of a workload's time in
convolutions, the question is whether those convolutions run at the speed this CPU allows
and whether another way of writing them would be faster. This benchmark lists the
distinct convolutions of one pass through the flow (`roofline.convolutions`), and times each one at the workload's batch size, in each applicable form:

  - `conv2d`: `tf.nn.conv2d` with TensorFlow's gradients, what glow_tfp runs (but for the
    coupling network's hidden layer, whose gradients are the `matmul` form's);
  - `matmul` (1x1): one GEMM over all pixels, [N*H*W, a] x [a, b];
  - `im2col` (3x3, where a <= b): the nine shifted copies of the input concatenated along
    channels, then one GEMM with inner dimension 9a;
  - `shifted` (3x3, where a > b): one GEMM from a to 9b channels, then the nine b-channel
    slices added at their offsets.

For `train` a call is the forward pass plus the input and kernel gradients; otherwise the
forward pass. The forms alternate within each repeat (`benchmarks.timing`). The table gives
milliseconds per call, GFLOP/s and the share of the measured peak (`benchmarks.roofline`),
and the total: every convolution of one call, each at the speed of its fastest form, against
the same all as `conv2d` (the most any choice of forms could save) and against the glow_tfp
workload itself timed in the same run. When the first comes near the last, the workload's
time is its convolutions' time, and those run at the rates in the table.
"""

from absl import app
from absl import flags

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import tensorflow as tf  # noqa: E402

from benchmarks import architectures  # noqa: E402
from benchmarks import cpu_isa  # noqa: E402
from benchmarks import peers  # noqa: E402
from benchmarks import report  # noqa: E402
from benchmarks import roofline  # noqa: E402
from benchmarks import timing  # noqa: E402
from benchmarks import workloads  # noqa: E402

_ARCHITECTURE = flags.DEFINE_enum("conv_architecture", "28x28x1",
                                  list(architectures.ARCHITECTURES), "Architecture.")
_WORKLOAD = flags.DEFINE_enum("conv_workload", "log_prob", list(workloads.WORKLOADS),
                              "Workload whose batch size and passes are timed.")
_REPEATS = flags.DEFINE_integer("conv_repeats", 3, "Repeats (forms alternate within each).",
                                lower_bound=1)
_SECONDS = flags.DEFINE_float("conv_seconds", 0.5, "Seconds per form per repeat.",
                              lower_bound=0.0)
_OUT_DIR = flags.DEFINE_string("conv_out_dir", "benchmarks/results", "Where results go.")


def conv2d(x, kernel):
  return tf.nn.conv2d(x, kernel, strides=1, padding="SAME")


def matmul(x, kernel):
  """A 1x1 convolution as one GEMM over every pixel."""
  shape = tf.shape(x)
  out = tf.matmul(tf.reshape(x, [-1, kernel.shape[2]]), kernel[0, 0])
  return tf.reshape(out, tf.concat([shape[:-1], [kernel.shape[3]]], axis=0))


def im2col(x, kernel):
  """A 3x3 "SAME" convolution as nine shifted copies of `x` and one GEMM."""
  height, width, channels = x.shape[1:]
  padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  patches = tf.concat([padded[:, dy:dy + height, dx:dx + width]
                       for dy in range(3) for dx in range(3)], axis=-1)
  out = tf.matmul(tf.reshape(patches, [-1, 9 * channels]),
                  tf.reshape(kernel, [9 * channels, kernel.shape[3]]))
  return tf.reshape(out, [-1, height, width, kernel.shape[3]])


def shifted(x, kernel):
  """A 3x3 "SAME" convolution as one GEMM to all nine taps, then shifted adds."""
  height, width, channels = x.shape[1:]
  out_channels = kernel.shape[3]
  taps = tf.reshape(tf.transpose(kernel, [2, 0, 1, 3]), [channels, 9 * out_channels])
  per_tap = tf.reshape(tf.matmul(tf.reshape(x, [-1, channels]), taps),
                       [-1, height, width, 9 * out_channels])
  padded = tf.pad(per_tap, [[0, 0], [1, 1], [1, 1], [0, 0]])
  # Output pixel (i, j) takes tap (dy, dx) from input pixel (i + dy - 1, j + dx - 1),
  # which sits at (i + dy, j + dx) in the padded per-tap products.
  return tf.add_n([padded[:, dy:dy + height, dx:dx + width,
                          (3 * dy + dx) * out_channels:(3 * dy + dx + 1) * out_channels]
                   for dy in range(3) for dx in range(3)])


FORMS = {"conv2d": conv2d, "matmul": matmul, "im2col": im2col, "shifted": shifted}


def forms_for(kernel_size, in_channels, out_channels):
  """The forms worth timing: im2col copies the input 9 times, shifted the output, so each
  is tried only where that side is the narrower one."""
  if kernel_size == 1:
    return ("conv2d", "matmul")
  return ("conv2d", "im2col" if in_channels <= out_channels else "shifted")


def call(form, x, kernel, gradients):
  """A zero-argument `tf.function` call of `form`, with input and kernel gradients if asked."""
  upstream = tf.random.stateless_normal(x.shape[:-1] + kernel.shape[-1:], [0, 2])

  @tf.function
  def forward():
    return FORMS[form](x, kernel)

  @tf.function
  def forward_and_gradients():
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      out = FORMS[form](x, kernel)
    return tape.gradient(out, [x, kernel], output_gradients=upstream)

  return forward_and_gradients if gradients else forward


def measure(arch, workload, repeats, seconds, peak_batch=roofline.PEAK_BATCH):
  """{"layers", "batch", "peak" (FLOP/s), "model_ms"} of `workload` at `arch`.

  `peak_batch` sizes the peak's convolution (smaller only for tests).
  """
  batch = workloads.batch_size(workload, arch)
  gradients = workload == "train"
  passes = roofline.PASSES[workload]
  results = []
  for name, size, a, b, height, width, count in roofline.convolutions(arch.config):
    x = tf.random.stateless_uniform([batch, height, width, a], [0, 0]) - 0.5
    kernel = tf.random.stateless_normal([size, size, a, b], [0, 1]) * 0.05
    fns = {form: call(form, x, kernel, gradients) for form in forms_for(size, a, b)}
    for fn in fns.values():
      fn()
    times = timing.alternate(fns, repeats, timing.calls_lasting(fns, seconds))
    flops = passes * batch * roofline.conv_flops(height, width, size, a, b)
    results.append({"layer": name, "kernel_size": size, "in": a, "out": b,
                    "height": height, "width": width, "count": count, "flops": flops,
                    "ms": {form: 1e3 * timing.median(t) for form, t in times.items()}})
  return {"layers": results, "batch": batch, "peak": roofline.peak_conv_flops(peak_batch),
          "model_ms": _model_ms(arch, workload, repeats, seconds)}


def _model_ms(arch, workload, repeats, seconds):
  """Milliseconds per call of glow_tfp's `workload` at `arch`."""
  model = peers.build_initialized(peers.SYSTEMS["glow_tfp"], arch)
  fn = workloads.make(workload, arch, model, jit_compile=False)
  fn()
  times = timing.alternate({"model": fn}, repeats, timing.calls_lasting({"model": fn}, seconds))
  return 1e3 * timing.median(times["model"])


def markdown(result, arch_name, workload):
  """The result as Markdown lines: environment, the per-layer table and the total."""
  peak = result["peak"]
  rows, total, as_conv2d = [], 0.0, 0.0
  for layer in result["layers"]:
    best = min(layer["ms"], key=layer["ms"].get)
    total += layer["count"] * layer["ms"][best]
    as_conv2d += layer["count"] * layer["ms"]["conv2d"]
    cells = []
    for form in ("conv2d", "matmul", "im2col", "shifted"):
      ms = layer["ms"].get(form)
      if ms is None:
        cells.append("")
        continue
      rate = layer["flops"] / (ms / 1e3)
      text = f"{ms:.2f} ({rate / 1e9:.0f}, {100 * rate / peak:.0f}%)"
      cells.append(f"**{text}**" if form == best else text)
    shape = (f"{layer['kernel_size']}x{layer['kernel_size']} {layer['in']} -> {layer['out']} "
             f"at {layer['height']}x{layer['width']}")
    rows.append([layer["layer"], shape, str(layer["count"])] + cells)
  passes = "forward, input and kernel gradients" if workload == "train" else "forward"
  onednn = result["onednn"]
  lines = [f"# Convolutions of {arch_name}, {workload} ({passes})", ""]
  lines += report.environment_lines(result["environment"])
  lines += ["", f"oneDNN: ISA {onednn['onednn_isa']}, convolutions by "
            f"{onednn['convolution']}; TF_ENABLE_ONEDNN_OPTS={onednn['TF_ENABLE_ONEDNN_OPTS']}, "
            f"ONEDNN_MAX_CPU_ISA={onednn['ONEDNN_MAX_CPU_ISA']}.", "",
            f"Batch {result['batch']}. Peak: {peak / 1e9:.0f} GFLOP/s. Cells: ms per call "
            "(GFLOP/s, % of peak); the fastest form in bold.", ""]
  lines += report.table(["layer", "convolution", "per pass", "conv2d", "matmul", "im2col",
                         "shifted"], rows)
  lines += ["", f"Every convolution of one call at its fastest form: {total:.1f} ms "
            f"({as_conv2d / total:.3f}x faster than all as conv2d, {as_conv2d:.1f} ms); the "
            f"glow_tfp {workload} call, timed in the same run: {result['model_ms']:.1f} ms "
            f"({100 * total / result['model_ms']:.0f}%)."]
  return lines


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  arch_name, workload = _ARCHITECTURE.value, _WORKLOAD.value
  result = dict(measure(architectures.ARCHITECTURES[arch_name], workload, _REPEATS.value,
                        _SECONDS.value), environment=report.environment(),
                onednn=cpu_isa.probe())
  lines = markdown(result, arch_name, workload)
  print("\n".join(lines))
  for path in report.write(result, lines, _OUT_DIR.value,
                           f"conv_layers_{arch_name}_{workload}"):
    print(f"wrote {path}")


if __name__ == "__main__":
  app.run(main)
