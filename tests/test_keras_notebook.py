"""notebooks/glow_keras.ipynb runs headless, in its quick setting, and shows its sample grid."""

import os

import nbclient
import nbformat
import numpy as np
import tensorflow as tf

NOTEBOOK = os.path.join(os.path.dirname(__file__), os.pardir, "notebooks", "glow_keras.ipynb")


def _image_outputs(notebook):
  return [output for cell in notebook.cells if cell.cell_type == "code"
          for output in cell.outputs if "image/png" in output.get("data", {})]


def test_saved_notebook_shows_its_sample_grid():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert all(cell.execution_count for cell in notebook.cells if cell.cell_type == "code")
  assert len(_image_outputs(notebook)) >= 2


def test_notebook_runs_headless_in_quick_mode(tmp_path, monkeypatch):
  monkeypatch.setenv("GLOW_KERAS_NOTEBOOK_QUICK", "1")
  monkeypatch.setenv("GLOW_KERAS_NOTEBOOK_OUTPUT", str(tmp_path))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=300, kernel_name="python3",
      resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}})
  client.execute()  # raises CellExecutionError if any cell fails
  assert len(_image_outputs(notebook)) >= 2
  grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "samples" / "samples_epoch0001.png")))
  assert grid.shape == (6 * 29 + 1, 6 * 29 + 1, 1)  # 6 x 6 digits of 28 pixels + padding
  assert np.asarray(grid).std() > 0
  assert (tmp_path / "glow.weights.h5").exists()
