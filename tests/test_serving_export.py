"""SavedModel export: signatures equal the live model, TF Serving layout, no glow_tfp needed."""

import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import glow_tfp
from glow_tfp import likelihood
from glow_tfp import ood
from glow_tfp import workdir as workdir_lib
from serving import saved_model
from serving import warmup
from tests.checks import assert_close, perturb, random_images, special_images

REPO = pathlib.Path(__file__).resolve().parents[1]
SHAPE = (8, 8, 2)
CLASSES = 3


def tiny_model(num_classes=CLASSES, seed=0):
  """A class-conditional model initialised on data, then moved off its initial values."""
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=8, num_classes=num_classes)
  model = glow_tfp.Glow(config, seed=seed)
  labels = tf.range(8) % num_classes if num_classes else None
  model.initialize(random_images((8,) + SHAPE, seed=seed), labels)
  perturb(model, scale=0.05, seed=seed)
  return model


def uint8_images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n,) + SHAPE).astype(np.uint8)


def live_log_likelihood(model, images, labels):
  draws = likelihood.default_draws(model.config)
  return model.log_likelihood(images, labels, noise=draws).numpy()


def run_python(args, cwd=REPO, env=None):
  return subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=240)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  model = tiny_model()
  reference = ood.reference_statistics(model, uint8_images(12, seed=3))
  path = saved_model.export_version(model, str(tmp_path_factory.mktemp("exports")), "glow",
                                    reference=reference)
  return model, path, tf.saved_model.load(path)


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_log_prob_signature_equals_live_model(exported, batch_size):
  model, _, loaded = exported
  images = uint8_images(batch_size, seed=batch_size)
  labels = np.arange(batch_size, dtype=np.int32) % CLASSES
  out = loaded.signatures["log_prob"](images=tf.constant(images), labels=tf.constant(labels))
  expected = live_log_likelihood(model, images, labels)
  assert_close(out["log_likelihood"].numpy(), expected, rtol=1e-5)
  assert_close(out["bits_per_dim"].numpy(), glow_tfp.bits_per_dim(expected, model.config.num_dims),
               rtol=1e-5)


def test_served_log_likelihoods_are_probabilities_the_same_in_any_batch(exported):
  _, _, loaded = exported
  images = special_images(SHAPE)
  labels = np.arange(len(images), dtype=np.int32) % CLASSES
  whole = loaded.signatures["log_prob"](images=tf.constant(images), labels=tf.constant(labels))
  assert np.all(whole["log_likelihood"].numpy() <= 0.0)
  assert np.all(whole["bits_per_dim"].numpy() >= 0.0)
  for i in range(len(images)):
    one = loaded.signatures["log_prob"](images=tf.constant(images[i:i + 1]),
                                        labels=tf.constant(labels[i:i + 1]))
    assert_close(one["log_likelihood"].numpy(), whole["log_likelihood"].numpy()[i:i + 1], rtol=1e-5)


def test_label_minus_one_serves_the_likelihood_under_the_class_mixture(exported):
  model, _, loaded = exported
  images, labels = uint8_images(4, seed=3), np.array([-1, 2, -1, 0], np.int32)
  out = loaded.signatures["log_prob"](images=tf.constant(images), labels=tf.constant(labels))
  draws = likelihood.default_draws(model.config)
  expected = np.where(labels < 0, model.log_likelihood(images, noise=draws).numpy(),
                      live_log_likelihood(model, images, np.maximum(labels, 0)))
  assert_close(out["log_likelihood"].numpy(), expected, rtol=1e-5)


def test_serving_default_is_log_prob(exported):
  _, _, loaded = exported
  images, labels = tf.constant(uint8_images(3)), tf.constant([0, 1, 2])
  default = loaded.signatures["serving_default"](images=images, labels=labels)
  log_prob = loaded.signatures["log_prob"](images=images, labels=labels)
  np.testing.assert_array_equal(default["log_likelihood"], log_prob["log_likelihood"])


def test_signatures_have_dynamic_batch_and_the_documented_names(exported):
  _, _, loaded = exported
  names = {name: sorted(fn.structured_input_signature[1])
           for name, fn in loaded.signatures.items()}
  assert names == {
      "serving_default": ["images", "labels"], "log_prob": ["images", "labels"],
      "sample": ["labels", "num_samples", "seed", "temperature"],
      "encode": ["images", "labels"], "decode": ["labels", "latent_0", "latent_1"],
      "score": ["images"]}
  for name in ("log_prob", "encode", "decode", "score"):
    fn = loaded.signatures[name]
    for spec in list(fn.structured_input_signature[1].values()) + list(
        fn.structured_outputs.values()):
      assert spec.shape[0] is None, (name, spec)


def test_sample_signature_is_seeded_and_equals_live_model(exported):
  model, _, loaded = exported
  sample = loaded.signatures["sample"]
  args = dict(num_samples=tf.constant(4), temperature=tf.constant(0.7),
              seed=tf.constant(11, tf.int64), labels=tf.constant([0, 1, 2, 0]))
  first, second = sample(**args)["images"], sample(**args)["images"]
  assert first.dtype == tf.uint8 and first.shape == (4,) + SHAPE
  np.testing.assert_array_equal(first, second)
  live = glow_tfp.to_images(model.sample(4, 0.7, labels=args["labels"], seed=11))
  np.testing.assert_array_equal(first, live)
  other = sample(**dict(args, seed=tf.constant(12, tf.int64)))["images"]
  assert np.any(first.numpy() != other.numpy())


def test_encode_then_decode_gives_the_images_back(exported):
  model, _, loaded = exported
  images, labels = uint8_images(5), tf.constant([2, 1, 0, 1, 2])
  latents = loaded.signatures["encode"](images=tf.constant(images), labels=labels)
  live = model.encode(glow_tfp.to_model_space(images), labels)
  for level, z in enumerate(live):
    assert_close(latents[f"latent_{level}"], z, rtol=1e-6)
  decoded = loaded.signatures["decode"](labels=labels, **latents)["images"]
  np.testing.assert_array_equal(decoded, images)


@pytest.mark.parametrize("signature, args, message", [
    ("sample", dict(num_samples=-1, temperature=1.0), "num_samples must be >= 0"),
    ("sample", dict(num_samples=2, temperature=-1.0), "temperature must be a finite number"),
    ("sample", dict(num_samples=2, temperature=float("nan")),
     "temperature must be a finite number"),
    ("sample", dict(num_samples=2, temperature=float("inf")),
     "temperature must be a finite number"),
    ("log_prob", dict(labels=[0, 3]), "labels must be < num_classes"),
    ("log_prob", dict(labels=[0, -2]), r"labels must be >= -1 \(-1: class unknown\)"),
    ("encode", dict(labels=[0, -1]), "labels must be >= 0"),
    ("log_prob", dict(labels=[0]), "different batch sizes"),
])
def test_signatures_reject_bad_values(exported, signature, args, message):
  _, _, loaded = exported
  if signature == "sample":
    inputs = dict(num_samples=tf.constant(args["num_samples"]),
                  temperature=tf.constant(args["temperature"]),
                  seed=tf.constant(0, tf.int64), labels=tf.zeros([2], tf.int32))
  else:
    inputs = dict(images=tf.constant(uint8_images(2)), labels=tf.constant(args["labels"]))
  with pytest.raises(tf.errors.InvalidArgumentError, match=message):
    loaded.signatures[signature](**inputs)


def test_decode_rejects_non_finite_latents(exported):
  _, _, loaded = exported
  latents = loaded.signatures["encode"](images=tf.constant(uint8_images(1)),
                                        labels=tf.constant([0]))
  bad = latents["latent_0"].numpy()
  bad[0, 0, 0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="latent_0 has NaN"):
    loaded.signatures["decode"](latent_0=tf.constant(bad), latent_1=latents["latent_1"],
                                labels=tf.constant([0]))


_BLOCKED_LOAD = textwrap.dedent("""
    import importlib.abc, json, sys

    class Block(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("glow_tfp", "tensorflow_probability"):
          raise ModuleNotFoundError(f"{name} is blocked in this process")
        return None

    sys.meta_path.insert(0, Block())
    try:
      import glow_tfp
      sys.exit("glow_tfp was importable")
    except ImportError:
      pass
    import numpy as np
    import tensorflow as tf
    # The serving side must work here too: the servable, the client and the load test. The
    # server is a program of its own (its --model_name is TF Serving's, default "default"):
    # test_packaging checks that it loads neither glow_tfp's library nor TFP.
    import serving.client, serving.load_test, serving.servable
    loaded = tf.saved_model.load(sys.argv[1])
    images = np.load(sys.argv[2])
    labels = tf.range(len(images)) % 3
    out = loaded.signatures["log_prob"](images=tf.constant(images), labels=labels)
    served = serving.servable.Servable(sys.argv[1], version=1).predict(
        "log_prob", {"images": images, "labels": labels.numpy()})
    blocked = [m for m in sys.modules if m.split(".")[0] in ("glow_tfp", "tensorflow_probability")]
    print(json.dumps({"log_likelihood": out["log_likelihood"].numpy().tolist(),
                      "served": served["log_likelihood"].tolist(), "loaded_modules": blocked}))
""")


def test_loads_where_glow_tfp_and_tfp_cannot_be_imported(exported, tmp_path):
  model, path, _ = exported
  images = uint8_images(7, seed=3)
  np.save(tmp_path / "images.npy", images)
  (tmp_path / "load.py").write_text(_BLOCKED_LOAD)
  env = dict(os.environ, PYTHONPATH=str(REPO))
  result = run_python(["load.py", path, "images.npy"], cwd=tmp_path, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  answer = json.loads(result.stdout.strip().splitlines()[-1])
  assert answer["loaded_modules"] == []
  expected = live_log_likelihood(model, images, tf.range(7) % CLASSES)
  assert_close(answer["log_likelihood"], expected, rtol=1e-5)
  assert_close(answer["served"], expected, rtol=1e-5)


def test_saved_model_cli_lists_the_signatures(exported):
  _, path, _ = exported
  cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
  result = subprocess.run([str(cli), "show", "--dir", path, "--all"], capture_output=True,
                          text=True, timeout=240)
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ("serving_default", "log_prob", "sample", "encode", "decode", "score"):
    assert f"signature_def['{name}']" in result.stdout
  assert "shape: (-1, 8, 8, 2)" in result.stdout
  score = result.stdout[result.stdout.index("signature_def['score']"):]
  assert re.search(r"outputs\['is_ood'\] tensor_info:\s+dtype: DT_BOOL\s+shape: \(-1\)",
                   score)


def test_versions_count_up_and_staging_directories_disappear(tmp_path):
  model = tiny_model(num_classes=0)
  base = str(tmp_path)
  assert saved_model.export_version(model, base, "m") == os.path.join(base, "m", "1")
  assert saved_model.export_version(model, base, "m", version=5).endswith("/m/5")
  assert saved_model.export_version(model, base, "m").endswith("/m/6")
  assert sorted(os.listdir(tmp_path / "m")) == ["1", "5", "6"]
  assert saved_model.versions(os.path.join(base, "m")) == [1, 5, 6]
  with pytest.raises(FileExistsError, match="Version 5 of model 'm' already exists"):
    saved_model.export_version(model, base, "m", version=5)


@pytest.mark.parametrize("name", ["", ".", "..", "../evil", "a/b", "/abs", "-x", "a" * 129])
def test_invalid_model_names_are_refused(tmp_path, name):
  with pytest.raises(ValueError, match="Invalid model name"):
    saved_model.export_version(tiny_model(num_classes=0), str(tmp_path), name)


@pytest.mark.parametrize("version", [0, -1, 1.5, True])
def test_invalid_versions_are_refused(tmp_path, version):
  with pytest.raises(ValueError, match="`version` must be a positive integer"):
    saved_model.export_version(tiny_model(num_classes=0), str(tmp_path), "m", version)


def test_uninitialised_model_is_refused(tmp_path):
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=8)
  with pytest.raises(ValueError, match="not initialised"):
    saved_model.export_saved_model(glow_tfp.Glow(config), str(tmp_path / "x"))


def make_workdir(path, seed=0):
  """A training workdir whose checkpoint holds `model` and a different `ema_model`."""
  model, ema = tiny_model(num_classes=0, seed=seed), tiny_model(num_classes=0, seed=seed + 1)
  workdir_lib.save_config(str(path), model.config)
  checkpoint = tf.train.Checkpoint(model=model, ema_model=ema)
  tf.train.CheckpointManager(checkpoint, workdir_lib.checkpoint_dir(str(path)),
                             max_to_keep=1).save()
  workdir_lib.save_reference_images(str(path), uint8_images(6), np.zeros(6, np.int32))
  return model, ema


def test_export_cli_writes_the_ema_weights_as_the_next_version(tmp_path):
  model, ema = make_workdir(tmp_path / "work")
  (tmp_path / "exports" / "glow" / "3").mkdir(parents=True)
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--export_base={tmp_path / 'exports'}", "--model_name=glow",
                       "--batch_parts=2", "--ood_false_positive_rate=0.2"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "glow/4" in result.stdout
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "glow" / "4"))
  images = uint8_images(4)
  served = loaded.signatures["log_prob"](images=tf.constant(images))["log_likelihood"]
  assert_close(served, live_log_likelihood(ema, images, None), rtol=1e-5)
  assert not np.allclose(served, live_log_likelihood(model, images, None), atol=1e-2)
  # The 6 reference images: 3 fit the threshold at F = 0.2 (too few: its largest score), the
  # other 3 measure it.
  reference = ood.reference_statistics(ema, uint8_images(6), false_positive_rate=0.2)
  stored = {name: variable.numpy() for name, variable in loaded.reference_statistics.items()}
  assert stored["target_false_positive_rate"] == np.float32(0.2)
  for name, value in reference.as_dict().items():
    assert_close(stored[name], value, rtol=1e-5, err_msg=name)
  out = loaded.signatures["score"](images=tf.constant(images))
  np.testing.assert_array_equal(out["ood_false_positive_rate"],
                                np.full(4, reference.heldout_false_positive_rate))
  assert "false-positive rate 0.2 from 3 fit images; measured on the 3 other" in result.stdout
  assert "Warning: under 4 fit images" in result.stdout


def test_export_cli_refuses_a_false_positive_rate_outside_zero_to_one_half(tmp_path):
  # The rule itself is tested value by value in tests/test_ood.py; here, that the flag has it.
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path}",
                       f"--export_base={tmp_path}", "--ood_false_positive_rate=0.6"])
  assert result.returncode != 0
  assert "--ood_false_positive_rate must be a fraction in (0, 0.5]" in result.stderr
  assert not list(tmp_path.iterdir())


def test_model_cut_into_parts_exports_the_whole_batch_results(exported, tmp_path):
  model, _, _ = exported
  loaded = tf.saved_model.load(saved_model.export_saved_model(
      tiny_model(), str(tmp_path / "parts"), batch_parts=3))
  for batch in (1, 2, 7):
    images = uint8_images(batch, seed=batch)
    labels = np.arange(batch, dtype=np.int32) % CLASSES
    out = loaded.signatures["log_prob"](images=tf.constant(images), labels=tf.constant(labels))
    assert_close(out["log_likelihood"].numpy(), live_log_likelihood(model, images, labels),
                 rtol=1e-5)
  labels = tf.constant([0, 1, 2, 0, 1])
  sampled = loaded.signatures["sample"](num_samples=tf.constant(5), temperature=tf.constant(0.7),
                                        seed=tf.constant(4, tf.int64), labels=labels)["images"]
  np.testing.assert_array_equal(sampled, glow_tfp.to_images(model.sample(5, 0.7, labels=labels,
                                                                         seed=4)))


def test_model_cut_into_parts_names_a_bad_label_in_every_signature(tmp_path):
  # Checked inside each part, the failing part cancelled its siblings and the request
  # sometimes got their CancelledError instead; repeats make that race show.
  loaded = tf.saved_model.load(saved_model.export_saved_model(
      tiny_model(), str(tmp_path / "parts"), batch_parts=4))
  labels = tf.constant([0, 1, 2, CLASSES, 0, 1, 2, 0])
  images = tf.constant(uint8_images(8))
  latents = loaded.signatures["encode"](images=images, labels=tf.zeros([8], tf.int32))
  calls = {
      "log_prob": dict(images=images),
      "encode": dict(images=images),
      "decode": dict(latents),
      "sample": dict(num_samples=tf.constant(8), temperature=tf.constant(0.7),
                     seed=tf.constant(0, tf.int64)),
  }
  for _ in range(10):
    for name, inputs in calls.items():
      with pytest.raises(tf.errors.InvalidArgumentError, match="labels must be < num_classes"):
        loaded.signatures[name](labels=labels, **inputs)


def test_export_cli_refuses_a_model_name_that_is_a_path(tmp_path):
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path}",
                       f"--export_base={tmp_path}", "--model_name=../up"])
  assert result.returncode != 0
  assert "--model_name names the model's directory" in result.stderr
  assert not (tmp_path.parent / "up").exists()


def test_score_signature_equals_the_library(exported):
  model, path, loaded = exported
  images = uint8_images(5, seed=9)
  images[0] = 0
  out = loaded.signatures["score"](images=tf.constant(images))
  reference = ood.reference_statistics(model, uint8_images(12, seed=3))
  expected = ood.score_images(model, images, None, reference)
  assert set(out) == set(ood.OUTPUTS + ood.CONDITIONAL_SCORES)
  for name in ood.SCORES + ood.CONDITIONAL_SCORES:
    assert_close(out[name].numpy(), expected[name], rtol=1e-4, err_msg=name)
  assert out["is_ood"].dtype == tf.bool and out["ood_false_positive_rate"].dtype == tf.float32
  np.testing.assert_array_equal(out["is_ood"], expected["is_ood"])
  assert out["is_ood"][0]  # the all-black image.
  np.testing.assert_array_equal(out["ood_false_positive_rate"],
                                np.full(5, reference.heldout_false_positive_rate))


def test_score_outputs_are_listed_with_their_dtypes(exported):
  _, _, loaded = exported
  outputs = loaded.signatures["score"].structured_outputs
  assert set(outputs) == set(ood.OUTPUTS + ood.CONDITIONAL_SCORES)
  for name, spec in outputs.items():
    assert spec.dtype == (tf.bool if name == "is_ood" else tf.float32), name
    assert spec.shape.as_list() == [None], name


def test_an_export_with_a_background_model_serves_its_likelihood_ratio(tmp_path):
  model, background = tiny_model(), tiny_model(num_classes=0, seed=5)
  export_and_compare_scores(model, tmp_path, ood.BACKGROUND_SCORES + ood.CONDITIONAL_SCORES,
                            background=background)


def export_and_compare_scores(model, tmp_path, tests, **extras):
  """Exports `model` with reference statistics measured with `extras` (a background model,
  templates), checks that `score` serves the library's scores and `tests`; the loaded
  SavedModel."""
  reference = ood.reference_statistics(model, uint8_images(12, seed=3), **extras)
  loaded = tf.saved_model.load(saved_model.export_version(
      model, str(tmp_path), "glow", reference=reference, **extras))
  images = uint8_images(5, seed=9)
  out = loaded.signatures["score"](images=tf.constant(images))
  expected = ood.score_images(model, images, None, reference, **extras)
  assert set(out) == set(ood.OUTPUTS + tests)
  for name in ood.SCORES + tests:
    assert_close(out[name].numpy(), expected[name], rtol=1e-4, err_msg=name)
  return loaded


def test_a_background_model_the_export_cannot_use_is_refused(tmp_path):
  model = tiny_model()
  images = uint8_images(12, seed=3)
  with_ratio = ood.reference_statistics(model, images,
                                        background=tiny_model(num_classes=0, seed=5))
  with pytest.raises(ValueError, match="pass the background model"):
    saved_model.export_version(model, str(tmp_path), "glow", reference=with_ratio)
  with pytest.raises(ValueError, match="must be unconditional"):
    saved_model.export_version(model, str(tmp_path), "glow", reference=with_ratio,
                               background=tiny_model(seed=5))
  without = ood.reference_statistics(model, images)
  with pytest.raises(ValueError, match="reference statistics measured with it"):
    saved_model.export_version(model, str(tmp_path), "glow", reference=without,
                               background=tiny_model(num_classes=0, seed=5))


def test_an_export_with_templates_serves_their_test(tmp_path):
  model = tiny_model()
  templates = ood.fit_templates(model, uint8_images(16, seed=4), np.arange(16) % CLASSES,
                                per_class=2)
  loaded = export_and_compare_scores(model, tmp_path,
                                     ood.CONDITIONAL_SCORES + ood.TEMPLATE_SCORES,
                                     templates=templates)
  assert_close(loaded.templates["means"].numpy(), templates.means, rtol=1e-7)


def test_templates_the_export_cannot_use_are_refused(tmp_path):
  model = tiny_model()
  images = uint8_images(12, seed=3)
  templates = ood.fit_templates(model, uint8_images(16, seed=4), per_class=2)
  with pytest.raises(ValueError, match="3 tests; this export's score has 4"):
    saved_model.export_version(model, str(tmp_path), "glow", templates=templates,
                               reference=ood.reference_statistics(model, images))
  with pytest.raises(ValueError, match="4 tests, more than this export's score"):
    saved_model.export_version(
        model, str(tmp_path), "glow",
        reference=ood.reference_statistics(model, images, templates=templates))
  flat = ood.Templates(templates.means[:, :, :, :1], templates.stds[:, :, :, :1])
  with pytest.raises(ValueError, match="Template means must have shape"):
    saved_model.export_version(model, str(tmp_path), "glow", templates=flat,
                               reference=ood.reference_statistics(model, images))


@pytest.mark.parametrize("flag", [[], ["--notemplates"]])
def test_export_cli_fits_templates_on_the_training_images_it_finds(tmp_path, flag):
  _, ema = make_workdir(tmp_path / "work")
  training = uint8_images(16, seed=4)
  workdir_lib.save_training_images(str(tmp_path / "work"), training, np.zeros(16, np.int32))
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--export_base={tmp_path / 'exports'}", "--model_name=glow",
                       "--ood_false_positive_rate=0.2"] + flag)
  assert result.returncode == 0, result.stderr[-3000:]
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "glow" / "1"))
  out = loaded.signatures["score"](images=tf.constant(uint8_images(4)))
  if flag:
    assert "template_inconsistency" not in out
    assert "no style templates (--notemplates)" in result.stdout
    return
  assert "8 style templates from 16 training images" in result.stdout
  templates = ood.fit_templates(ema, training, np.zeros(16, np.int32))
  reference = ood.reference_statistics(ema, uint8_images(6), false_positive_rate=0.2,
                                       templates=templates)
  expected = ood.score_images(ema, uint8_images(4), None, reference, templates=templates)
  assert_close(out["template_inconsistency"].numpy(), expected["template_inconsistency"],
               rtol=1e-4)


def test_export_cli_takes_a_background_workdir(tmp_path):
  _, ema = make_workdir(tmp_path / "work")
  _, background_ema = make_workdir(tmp_path / "background", seed=5)
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--background_workdir={tmp_path / 'background'}",
                       f"--export_base={tmp_path / 'exports'}", "--model_name=glow",
                       "--ood_false_positive_rate=0.2"])
  assert result.returncode == 0, result.stderr[-3000:]
  loaded = tf.saved_model.load(str(tmp_path / "exports" / "glow" / "1"))
  images = uint8_images(4)
  draws = likelihood.default_draws(ema.config)
  expected = glow_tfp.bits_per_dim(ema.log_likelihood(images, noise=draws)
                                   - background_ema.log_likelihood(images, noise=draws),
                                   ema.config.num_dims)
  out = loaded.signatures["score"](images=tf.constant(images))
  assert_close(out["likelihood_ratio"].numpy(), expected, rtol=1e-4)


def test_export_cli_names_a_missing_background_workdir(tmp_path):
  make_workdir(tmp_path / "work")
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--background_workdir={tmp_path / 'nowhere'}",
                       f"--export_base={tmp_path / 'exports'}"])
  assert result.returncode != 0
  assert "serving.export: error:" in result.stderr and "nowhere" in result.stderr


def test_export_without_reference_images_has_no_score_signature(tmp_path):
  loaded = tf.saved_model.load(
      saved_model.export_version(tiny_model(), str(tmp_path), "glow"))
  assert "score" not in loaded.signatures and "log_prob" in loaded.signatures


def test_export_cli_names_the_missing_reference_file_and_how_to_make_it(tmp_path):
  make_workdir(tmp_path / "work")
  os.remove(workdir_lib.reference_path(str(tmp_path / "work")))
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--export_base={tmp_path / 'exports'}"])
  assert result.returncode != 0
  assert "heldout_reference.npz" in result.stderr and "python -m train" in result.stderr


def test_export_cli_with_no_readable_checkpoint_stops_with_one_line_naming_it(tmp_path):
  make_workdir(tmp_path / "work")
  directory = workdir_lib.checkpoint_dir(str(tmp_path / "work"))
  os.remove(os.path.join(directory, "ckpt-1.index"))
  result = run_python(["-m", "serving.export", f"--workdir={tmp_path / 'work'}",
                       f"--export_base={tmp_path / 'exports'}"])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      f"serving.export: error: No checkpoint in {directory} reads back; tried 1: checkpoint "
      f"{directory}/ckpt-1 does not read back:")
  assert "Traceback" not in result.stderr


def _op_types(concrete_function):
  """Op types of a concrete function's graph and of every function it calls."""
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return {node.op for node in nodes}


def test_served_weights_are_computed_at_export_not_per_call(exported):
  _, _, loaded = exported
  for name in ("log_prob", "sample"):
    ops = _op_types(loaded.signatures[name])
    # W = P L U (band_part masks) and W^-1 (triangular solves) were folded into variables.
    assert not ops & {"MatrixBandPart", "MatrixTriangularSolve", "MatrixInverse"}, name


@pytest.mark.parametrize("permutation", ["conv", "shuffle"])
def test_other_channel_mixings_export_equal_to_the_library(tmp_path, permutation):
  config = glow_tfp.GlowConfig(image_shape=SHAPE, levels=2, steps_per_level=1,
                               hidden_channels=8, permutation=permutation)
  model = glow_tfp.Glow(config, seed=1)
  model.initialize(random_images((8,) + SHAPE, seed=1))
  perturb(model, scale=0.05, seed=1)
  loaded = tf.saved_model.load(saved_model.export_saved_model(model, str(tmp_path / "m")))
  images = uint8_images(5, seed=2)
  out = loaded.signatures["log_prob"](images=tf.constant(images))
  assert_close(out["log_likelihood"].numpy(), live_log_likelihood(model, images, None), rtol=1e-5)
  sampled = loaded.signatures["sample"](num_samples=tf.constant(3), temperature=tf.constant(0.7),
                                        seed=tf.constant(4, tf.int64))["images"]
  expected = glow_tfp.to_images(model.sample(3, 0.7, seed=4), config.n_bits)
  np.testing.assert_array_equal(sampled.numpy(), expected.numpy())


def test_the_warm_up_file_holds_a_request_per_signature_and_batch_size(exported):
  _, path, loaded = exported
  logs = [prediction_log_pb2.PredictionLog.FromString(record) for record in
          tf.data.TFRecordDataset(os.path.join(path, warmup.WARMUP_FILE)).as_numpy_iterator()]
  found = set()
  for log in logs:
    request = log.predict_log.request
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    size = (int(inputs["num_samples"]) if "num_samples" in inputs
            else len(next(iter(inputs.values()))))
    found.add((request.model_spec.signature_name, size))
    outputs = loaded.signatures[request.model_spec.signature_name](
        **{name: tf.constant(value) for name, value in inputs.items()})
    assert all(value.shape[0] == size for value in outputs.values())
  served = set(loaded.signatures) - {"serving_default"}
  assert len(logs) == len(found) == len(served) * len(warmup.BATCH_SIZES)
  assert found == {(name, size) for name in served for size in warmup.BATCH_SIZES}
