"""A model's versions on disk, loaded as servables, and the manager that keeps them served.

Everything the server knows of a model comes from its SavedModel: the signatures, each
input's dtype and shape (from the SignatureDefs), which signatures have the batch dimension
first, and which scalar input counts examples (`signatures.EXAMPLE_COUNTS_FILE`).
"""

import json
import os
import threading

from absl import logging
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from . import errors
from . import signatures
from . import version_policy
from . import warmup
from .errors import RequestError


class Servable:
  """One loaded version of a model: its signatures, their SignatureDefs and input specs.

  `request_log`: the model's `serving.request_log.RequestLog`, None when it logs nothing.
  """

  def __init__(self, path, version, request_log=None):
    self.version = version
    self.request_log = request_log
    self._model = tf.saved_model.load(path)
    self.signatures = dict(self._model.signatures)
    # Every SignatureDef (also TensorFlow's own, such as the init op), as TF Serving lists.
    self.signature_defs = _signature_defs(path)
    counts = _example_counts(path)
    self.input_specs = {name: _input_specs(self.signature_defs[name], counts.get(name))
                        for name in self.signatures}
    self.batchable = {name for name in self.signatures
                      if _batch_first(self.signature_defs[name])}
    self._warm_up(path)

  def _warm_up(self, path):
    """Replays the version's warm-up file (`serving.warmup`), so that no request pays for
    TensorFlow's first-call work; a record that fails fails the load.

    Without the file, runs every signature once on `warmup.example_inputs` of one example;
    a signature that refuses them is left cold, with a warning.
    """
    requests = warmup.read_requests(path, self.input_specs)
    for index, (name, arrays) in enumerate(requests):
      try:
        self.predict(name, arrays)
      except tf.errors.OpError as e:
        raise ValueError(f"{warmup.WARMUP_FILE} record {index} (signature {name}) failed: "
                         f"{errors.op_error_message(e)}") from None
    if requests:
      logging.info("Warmed up version %d with the %d requests of %s.", self.version,
                   len(requests), warmup.WARMUP_FILE)
      return
    for name, specs in self.input_specs.items():
      try:
        self.predict(name, warmup.example_inputs(specs, 1))
      except tf.errors.OpError as e:
        logging.warning("Warm-up of signature %s failed: %s", name, e.message)

  def predict(self, signature_name, arrays):
    """Runs a signature on numpy inputs; returns {output name: numpy array}."""
    fn = self.signatures[signature_name]
    outputs = fn(**{name: tf.constant(value) for name, value in arrays.items()})
    return {name: value.numpy() for name, value in sorted(outputs.items())}


def _signature_defs(path):
  """{name: SignatureDef proto} of the SavedModel's (only) MetaGraph."""
  proto = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
    proto.ParseFromString(f.read())
  return dict(proto.meta_graphs[0].signature_def)


def _example_counts(path):
  """{signature name: its example-count input}, as the exporter declared (none if absent)."""
  file = os.path.join(path, signatures.EXAMPLE_COUNTS_FILE)
  if not tf.io.gfile.exists(file):
    return {}
  with tf.io.gfile.GFile(file) as f:
    return json.load(f)


def _input_specs(signature_def, count_input):
  specs = [signatures.InputSpec(name, tf.dtypes.as_dtype(info.dtype).as_numpy_dtype,
                                tf.TensorShape(info.tensor_shape).as_list(),
                                counts_examples=name == count_input)
           for name, info in sorted(signature_def.inputs.items())]
  if count_input is not None and not any(
      spec.counts_examples and not spec.shape and spec.dtype.kind in "iu" for spec in specs):
    raise ValueError(f"{signatures.EXAMPLE_COUNTS_FILE} names {count_input!r} as the "
                     f"example count of a signature without such a scalar integer input.")
  return specs


def _batch_first(signature_def):
  """Whether every input and output of a signature has the batch dimension first."""
  infos = list(signature_def.inputs.values()) + list(signature_def.outputs.values())
  shapes = [tf.TensorShape(info.tensor_shape) for info in infos]
  return all(shape.rank and shape[0] is None for shape in shapes)


class ModelManager:
  """Keeps the versions its policy chooses loaded; `poll` brings them in line with the disk.

  Version states follow TF Serving: a version being loaded is LOADING, a served one
  AVAILABLE, an unloaded or failed one END (a failed one with its error). New versions load
  before old ones unload, so the model stays available; one that failed is not tried again.

  Args:
    name: the model's name in requests.
    base_path: the directory of its integer version subdirectories.
    policy: a `serving.version_policy` (default: the latest version).
    request_log: a `serving.request_log.RequestLog` its versions write sampled requests
      to; None: none.
  """

  def __init__(self, name, base_path, policy=None, request_log=None):
    self.name = name
    self.base_path = base_path
    self.policy = policy or version_policy.latest()
    self.request_log = request_log
    self._lock = threading.Lock()
    self._served = {}
    self._states = {}

  def __contains__(self, model_name):
    return model_name == self.name

  @property
  def served_versions(self):
    return sorted(self._served)

  def get(self, model_name, version=None):
    """The servable a request names (None: the latest), or RequestError NOT_FOUND."""
    served = self._served
    wanted = max(served, default=None) if version is None else version
    if model_name != self.name or wanted not in served:
      raise errors.not_found(model_name, version)
    return served[wanted]

  def status(self, model_name, version=None):
    """TF Serving's GetModelStatusResponse in its JSON mapping; RequestError NOT_FOUND."""
    if model_name != self.name:
      raise errors.not_found(model_name, version)
    with self._lock:
      states = dict(self._states)
    if version is not None:
      if version not in states:
        raise RequestError(f"Could not find version {version} of model {self.name}",
                           errors.NOT_FOUND)
      states = {version: states[version]}
    if not states:
      raise RequestError(f"Could not find any versions of model {self.name}",
                         errors.NOT_FOUND)
    return {"model_version_status": [
        {"version": str(v), "state": state,
         "status": {"error_code": "UNKNOWN" if error else "OK", "error_message": error}}
        for v, (state, error) in sorted(states.items(), reverse=True)]}

  def poll(self):
    """Loads the versions the policy wants and unloads the others."""
    loadable = self._loadable_versions()
    served = dict(self._served)
    for version in sorted(self.policy(loadable) - set(served)):
      servable = self._load(version)
      if servable is None:
        loadable.discard(version)
      else:
        served[version] = servable
    wanted = self.policy(loadable)
    unloaded = set(served) - wanted
    with self._lock:
      self._served = {v: s for v, s in served.items() if v in wanted}
      for version in unloaded:
        self._states[version] = ("END", "")
    for version in sorted(unloaded):
      logging.info("Unloaded version %d of %s.", version, self.name)

  def _load(self, version):
    """The servable of `version`, None (and its state END with the error) if it fails."""
    self._set_state(version, "LOADING")
    try:
      servable = Servable(os.path.join(self.base_path, str(version)), version,
                          self.request_log)
    except Exception as e:  # any failure to load leaves the served versions in place.
      logging.error("Loading version %d of %s failed: %s", version, self.name, e)
      self._set_state(version, "END", f"Loading failed: {e}")
      return None
    self._set_state(version, "AVAILABLE")
    logging.info("Serving version %d of %s.", version, self.name)
    return servable

  def _set_state(self, version, state, error=""):
    with self._lock:
      self._states[version] = (state, error)

  def _loadable_versions(self):
    """Versions on disk with a saved_model.pb that have not failed to load."""
    if not tf.io.gfile.isdir(self.base_path):
      return set()
    with self._lock:
      failed = {v for v, (_, error) in self._states.items() if error}
    names = (name.rstrip("/") for name in tf.io.gfile.listdir(self.base_path))
    return {int(name) for name in names if name.isdigit() and int(name) not in failed
            and tf.io.gfile.exists(os.path.join(self.base_path, name, "saved_model.pb"))}
