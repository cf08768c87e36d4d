"""The served models by name: each request goes to its model's `servable.ModelManager`."""

from . import errors


class Registry:
  """Answers `get` and `status` for several models, NOT_FOUND for any other name."""

  def __init__(self, managers):
    self.managers = {manager.name: manager for manager in managers}

  def __contains__(self, model_name):
    return model_name in self.managers

  def _manager(self, model_name, version):
    manager = self.managers.get(model_name)
    if manager is None:
      raise errors.not_found(model_name, version)
    return manager

  def get(self, model_name, version=None):
    """The servable a request names (None: the latest), or RequestError NOT_FOUND."""
    return self._manager(model_name, version).get(model_name, version)

  def status(self, model_name, version=None):
    """TF Serving's GetModelStatusResponse in its JSON mapping; RequestError NOT_FOUND."""
    return self._manager(model_name, version).status(model_name, version)

  def poll(self):
    """Brings every model's served versions in line with its files and version policy."""
    for manager in self.managers.values():
      manager.poll()

  def poll_forever(self, interval, stop):
    while not stop.wait(interval):
      self.poll()
