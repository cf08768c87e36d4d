"""The wheel: built from the checkout, installed elsewhere, imported outside the checkout."""

import configparser
import os
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_SOURCES = ("pyproject.toml", "README.md", "glow_tfp", "train", "serving")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(site directory, wheel path): the wheel built from a copy of the sources, installed."""
  tmp = tmp_path_factory.mktemp("packaging")
  source = tmp / "source"
  source.mkdir()
  for name in _SOURCES:
    if (_ROOT / name).is_dir():
      shutil.copytree(_ROOT / name, source / name,
                      ignore=shutil.ignore_patterns("__pycache__"))
    else:
      shutil.copy(_ROOT / name, source / name)
  _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"), str(source))
  wheel, = (tmp / "dist").glob("glow_tfp-*.whl")
  site = tmp / "site"
  _pip("install", "--no-deps", "--target", str(site), str(wheel))
  return site, wheel


def _pip(*args):
  subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True, capture_output=True,
                 cwd=_ROOT)


def _python_outside_checkout(site, code, tmp_path):
  env = {**os.environ, "PYTHONPATH": str(site)}
  return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, text=True,
                        capture_output=True, check=False)


def test_wheel_adds_one_top_level_package(installed):
  _, wheel = installed
  with zipfile.ZipFile(wheel) as archive:
    tops = {name.split("/")[0] for name in archive.namelist()
            if not name.split("/")[0].endswith(".dist-info")}
  assert tops == {"glow_tfp"}


def test_installed_library_imports_outside_the_checkout(installed, tmp_path):
  site, _ = installed
  done = _python_outside_checkout(site, (
      "import glow_tfp, glow_tfp.train.cli, glow_tfp.serving.server\n"
      "print(glow_tfp.__file__)\n"
      "print(glow_tfp.GlowConfig.preset('mnist').num_dims)\n"), tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  path, num_dims = done.stdout.split()
  assert pathlib.Path(path).is_relative_to(site)
  assert num_dims == "784"


_SCRIPTS = {"glow-train": "--preset", "glow-export": "--export_base",
            "glow-serve": "--rest_api_port", "glow-client": "--server"}


def test_wheel_declares_the_scripts(installed):
  _, wheel = installed
  with zipfile.ZipFile(wheel) as archive:
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
    parser = configparser.ConfigParser()
    parser.read_string(archive.read(info).decode())
  assert set(parser["console_scripts"]) == set(_SCRIPTS)


@pytest.mark.parametrize("script", sorted(_SCRIPTS))
def test_script_runs_from_the_installed_wheel(installed, tmp_path, script):
  site, _ = installed
  env = {**os.environ, "PYTHONPATH": str(site)}
  # absl's help flags exit with status 1 after printing every flag the script defines.
  done = subprocess.run([sys.executable, str(site / "bin" / script), "--helpfull"],
                        cwd=tmp_path, env=env, text=True, capture_output=True, check=False)
  assert done.returncode == 1, done.stderr[-2000:]
  assert _SCRIPTS[script] in done.stdout


def test_installed_serving_programs_share_their_flags(installed, tmp_path):
  site, _ = installed
  done = _python_outside_checkout(site, (
      "from absl import flags\n"
      "from glow_tfp.serving import client, export, load_test\n"
      "flags.FLAGS(['x', '--protocol=grpc', '--model_name=digits', '--workdir=w',\n"
      "             '--export_base=e'])\n"
      "print(client._CONNECTION['model_name'].value, export._MODEL_NAME.value,\n"
      "      load_test._CONNECTION['protocol'].value)\n"), tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split()[-3:] == ["digits", "digits", "grpc"]


# Records TF_ENABLE_ONEDNN_OPTS when `tensorflow` is first looked up, i.e. as it starts to load.
_WATCH_TENSORFLOW = """
import os, sys
seen = []
class Watch:
  def find_spec(self, name, path=None, target=None):
    if name == "tensorflow" and not seen:
      seen.append(os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
sys.meta_path.insert(0, Watch())
"""


@pytest.mark.parametrize("module", ["glow_tfp.train.__main__", "glow_tfp.serving.server",
                                    "glow_tfp.serving.export"])
def test_installed_application_sets_onednn_before_tensorflow_loads(installed, tmp_path,
                                                                  module, monkeypatch):
  site, _ = installed
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  done = _python_outside_checkout(site, _WATCH_TENSORFLOW + (
      "import glow_tfp\n"
      "assert 'tensorflow' not in sys.modules, 'import glow_tfp loaded TensorFlow'\n"
      f"import {module}\n"
      "print(seen)\n"), tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split()[-1] == "['1']"


def test_installed_server_loads_neither_the_library_nor_tfp(installed, tmp_path):
  site, _ = installed
  # glow_tfp.execution holds the thread defaults it shares with training, and no model.
  done = _python_outside_checkout(site, (
      "import sys\n"
      "import glow_tfp.serving.server\n"
      "print(sorted(m for m in sys.modules if m.startswith('tensorflow_probability')\n"
      "             or m.startswith('glow_tfp.') and m != 'glow_tfp.execution'\n"
      "             and not m.startswith('glow_tfp.serving')))\n"
  ), tmp_path)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split()[-1] == "[]"
