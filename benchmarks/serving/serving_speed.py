"""Served log_prob images/s against TensorFlow's thread settings and oneDNN, through REST.

  python -m benchmarks.serving.serving_speed
  python -m benchmarks.serving.serving_speed --serving_speed_threads=0/0,2/1,1/2/2 \\
      --serving_speed_onednn=1,0 --serving_speed_concurrency=1,4,16 \\
      --serving_speed_batches=1,64 --serving_speed_rounds=3

Exports a model of `--serving_speed_preset` (untrained, initialised on random images: the
arithmetic, not the weights, sets the speed), starts one `python -m serving.server` per
setting (intra_op/inter_op threads, and the parts each request's batch is cut into when a
third number is given, x oneDNN on/off), all at once and idle but for the one
measured, and in each round measures every setting in turn (the order reversed every other
round) at every concurrency and batch size with `serving.load_test`: images/s of row-format
log_prob requests of random images. Reports the median over rounds as a Markdown table, and
each setting's median ratio to the first setting within the same round (on a shared machine
the ratios are steadier than the absolute numbers).

Flags are prefixed, since benchmark and training modules are imported together in tests.
"""

import contextlib
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging

from glow_tfp import execution

# An entry point: TensorFlow reads the oneDNN choice as it loads, so before the imports
# below load it.
execution.prefer_onednn()

import glow_tfp  # noqa: E402
from benchmarks.serving import export_speed  # noqa: E402
from serving import load_test  # noqa: E402
from serving import saved_model  # noqa: E402

_PRESET = flags.DEFINE_enum("serving_speed_preset", "mnist", sorted(glow_tfp.PRESETS),
                            "GlowConfig preset of the served model.")
_THREADS = flags.DEFINE_list(
    "serving_speed_threads", ["0/0", "1/1", "2/1", "1/2", "2/2"],
    "Thread settings compared, each intra_op/inter_op (0: TensorFlow's choice), or "
    "intra_op/inter_op/parts to serve a model exported with batch_parts=parts.")
_ONEDNN = flags.DEFINE_list("serving_speed_onednn", ["1", "0"],
                            "TF_ENABLE_ONEDNN_OPTS values compared.")
_CONCURRENCY = flags.DEFINE_list("serving_speed_concurrency", ["1", "4", "16"],
                                 "Concurrent clients.")
_BATCHES = flags.DEFINE_list("serving_speed_batches", ["1", "64"], "Images per request.")
_IMAGES = flags.DEFINE_integer(
    "serving_speed_images", 128, "Images per measurement (at least one request per client).",
    lower_bound=1)
_ROUNDS = flags.DEFINE_integer("serving_speed_rounds", 3, "Rounds (medians reported).",
                               lower_bound=1)

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@flags.validator("serving_speed_threads", message="--serving_speed_threads: give "
                 "intra_op/inter_op pairs of integers >= 0, each optionally followed by "
                 "/parts >= 1, such as 0/0,2/1,1/2/2.")
def _check_threads(values):
  return all(re.fullmatch(r"\d+/\d+(/[1-9]\d*)?", v) for v in values)


@flags.validator("serving_speed_onednn", message="--serving_speed_onednn: give 0s and 1s.")
def _check_onednn(values):
  return all(v in ("0", "1") for v in values)


@flags.multi_flags_validator(["serving_speed_concurrency", "serving_speed_batches"],
                             message="--serving_speed_concurrency and --serving_speed_batches "
                             "must be integers >= 1.")
def _check_sizes(values):
  return all(v.isdigit() and int(v) >= 1 for name in values for v in values[name])


def parse_threads(threads):
  """(intra_op, inter_op, batch parts) of a `--serving_speed_threads` entry."""
  intra, inter, *parts = threads.split("/")
  return intra, inter, int(parts[0]) if parts else 1


def setting_name(threads, onednn):
  intra, inter, parts = parse_threads(threads)
  cut = f", {parts} parts" if parts > 1 else ""
  return f"threads {intra}/{inter}{cut}, oneDNN {'on' if onednn == '1' else 'off'}"


@contextlib.contextmanager
def started_server(base_path, threads, onednn, log_path):
  """Starts `serving.server` on `base_path` (model "glow") with the threads of `threads`;
  yields a function that waits until it is ready and returns its REST predict URL."""
  intra, inter, _ = parse_threads(threads)
  command = [sys.executable, "-m", "serving.server", "--model_name=glow",
             f"--model_base_path={base_path}", "--rest_api_port=0", "--port=0",
             "--file_system_poll_wait_seconds=0", f"--tensorflow_intra_op_parallelism={intra}",
             f"--tensorflow_inter_op_parallelism={inter}"]
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn, TF_CPP_MIN_LOG_LEVEL="2",
             PYTHONPATH=_ROOT)
  with open(log_path, "wb") as log:
    # Unbuffered: `_rest_url` waits with select(), which cannot see lines that a buffered
    # reader has already pulled in with the line before.
    process = subprocess.Popen(command, cwd=_ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=log, bufsize=0)
  try:
    yield lambda: f"{_rest_url(process, log_path)}/v1/models/glow:predict"
  finally:
    process.terminate()
    process.wait(timeout=60)


def _rest_url(process, log_path, timeout=900):
  """The base URL the server prints when it is ready."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and process.poll() is None:
    if select.select([process.stdout], [], [], 1.0)[0]:
      match = re.search(r"(http://127\.0\.0\.1:\d+)/", process.stdout.readline().decode())
      if match:
        return match[1]
  process.kill()
  with open(log_path) as log:
    raise RuntimeError(f"The server did not start: {log.read()[-3000:]}")


def images_per_s(url, body, batch, concurrency, images):
  """Served images/s of `body` (a log_prob request of `batch` images)."""
  load_test.run(url, body, 1, 1)  # This batch size's first run sets up its kernels.
  result = load_test.run(url, body, concurrency, max(concurrency, images // batch))
  if result["errors"]:
    raise RuntimeError(f"{result['errors']} requests failed at {url}.")
  return result["requests_per_s"] * batch


def measure(base_paths, config, settings, concurrencies, batches, images, rounds, log_dir):
  """{(setting, concurrency, batch): [images/s, one per round]}; settings in turn per round.

  base_paths: {batch parts: the served model's directory (of `config`, exported with that
  many parts)}; settings: [(threads "intra/inter[/parts]", onednn "0" or "1")]; log_dir:
  where the servers' logs go.
  """
  bodies = {b: load_test.log_prob_body(config.image_shape, b, config.num_classes > 0,
                                       config.num_classes, seed=b) for b in batches}
  results = {}
  with contextlib.ExitStack() as stack:
    # All start at once (loading overlaps), then each is waited for.
    ready = {s: stack.enter_context(started_server(
        base_paths[parse_threads(s[0])[2]], *s, os.path.join(log_dir, f"server{i}.log")))
             for i, s in enumerate(settings)}
    urls = {s: wait() for s, wait in ready.items()}
    for round_ in range(rounds):
      for setting in settings if round_ % 2 == 0 else reversed(settings):
        for c in concurrencies:
          for b in batches:
            rate = images_per_s(urls[setting], bodies[b], b, c, images)
            results.setdefault((setting, c, b), []).append(rate)
            logging.info("round %d, %s, %d clients, batch %d: %.1f images/s", round_,
                         setting_name(*setting), c, b, rate)
  return results


def export(config, export_base, batch_parts):
  """Exports one untrained model of `config` as version 1 of "glow" per number of batch
  parts, the same weights in each; returns {parts: its base path}."""
  model = export_speed.build_model(config)
  paths = {}
  for parts in sorted(set(batch_parts)):
    paths[parts] = os.path.join(export_base, f"parts{parts}", "glow")
    saved_model.export_version(model, os.path.dirname(paths[parts]), "glow",
                               batch_parts=parts)
  return paths


def markdown(results, settings, concurrencies, batches):
  """Median images/s per cell, and in brackets the median per-round ratio to settings[0]."""
  columns = [(c, b) for b in batches for c in concurrencies]
  lines = ["| setting | " + " | ".join(f"batch {b}, {c} clients" for c, b in columns) + " |",
           "| --- |" + " --- |" * len(columns)]
  for s in settings:
    cells = []
    for c, b in columns:
      rates, base = results[(s, c, b)], results[(settings[0], c, b)]
      ratio = statistics.median(r / r0 for r, r0 in zip(rates, base))
      cells.append(f"{statistics.median(rates):.0f} ({ratio:.2f})")
    lines.append(f"| {setting_name(*s)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  settings = [(t, o) for o in _ONEDNN.value for t in _THREADS.value]
  concurrencies = [int(c) for c in _CONCURRENCY.value]
  batches = [int(b) for b in _BATCHES.value]
  with tempfile.TemporaryDirectory() as tmp:
    config = glow_tfp.GlowConfig.preset(_PRESET.value)
    paths = export(config, tmp, [parse_threads(t)[2] for t in _THREADS.value])
    results = measure(paths, config, settings, concurrencies, batches, _IMAGES.value,
                      _ROUNDS.value, tmp)
  print(markdown(results, settings, concurrencies, batches))


if __name__ == "__main__":
  app.run(main)
