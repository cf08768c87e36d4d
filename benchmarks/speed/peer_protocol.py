"""The line protocol between the benchmark and a system timed in its own process.

Standard library only: both the TensorFlow child (`benchmarks.speed.tf_peer`) and the PyTorch one
(`benchmarks/speed/torch_peer.py`, run under another Python as a script) serve it. The child
writes one JSON line describing itself, then answers each request line on its input:

  {"run": "train" | "log_prob" | "sample"} -> {"ok": true} once one call has finished
  {"quit": true} or end of input              -> returns

A failure is answered with {"error": "..."}. The parent times the calls, so every system is
measured by the same clock and the same loop.
"""

import json
import sys
import traceback

WORKLOADS = ("train", "log_prob", "sample")


def run_child(start):
  """Serves the protocol on stdin/stdout: `start()` returns (info dict, workloads object
  with one method per workload). Anything the child prints goes to stderr."""
  replies, sys.stdout = sys.stdout, sys.stderr  # stdout carries the protocol only.
  try:
    info, workloads = start()
    reply(replies, info)
    serve(workloads, sys.stdin, replies)
  except Exception as error:  # pylint: disable=broad-except  (reported to the parent)
    traceback.print_exc()
    reply(replies, {"error": f"{type(error).__name__}: {error}"})
    sys.exit(1)


def serve(workloads, requests, replies):
  """Answers each request line until {"quit": true} or the end of `requests`."""
  for line in requests:
    request = json.loads(line)
    if request.get("quit"):
      return
    if request.get("run") not in WORKLOADS:
      raise ValueError(f"A request runs one of {WORKLOADS}; got {request!r}.")
    getattr(workloads, request["run"])()
    reply(replies, {"ok": True})


def reply(replies, message):
  replies.write(json.dumps(message) + "\n")
  replies.flush()
