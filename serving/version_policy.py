"""Which of a model's versions on disk are served, as TF Serving's `model_version_policy`.

A policy maps the set of loadable versions to the set to serve:
  latest (the default): the `num_versions` highest (1 unless told);
  all: every version;
  specific: the listed versions that exist.
"""


def latest(num_versions=1):
  return lambda versions: set(sorted(versions)[-num_versions:])


def all_versions():
  return set


def specific(wanted):
  wanted = frozenset(wanted)
  return lambda versions: wanted & set(versions)


def from_proto(policy):
  """The policy a `ServableVersionPolicy` proto (from a model config file) describes."""
  kind = policy.WhichOneof("policy_choice")
  if kind == "all":
    return all_versions()
  if kind == "specific":
    if not policy.specific.versions:
      raise ValueError("A specific version policy needs at least one version.")
    return specific(policy.specific.versions)
  return latest(policy.latest.num_versions or 1)
