"""Fine-tuning that just works: config files found from any directory, a crop size per metric,
the trained metric validated, and exported models that say how they were made."""

import json
import os

import jax
import numpy as np
import pytest

from jaxcomp.codec import export, models
from jaxcomp.errors import UserError
from jaxcomp.train import checkpoint, config_files, main, step, train
from train_fixtures import CONFIGS, load_config_file

pytestmark = pytest.mark.usefixtures("fast_compile")


def test_config_file_found_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  shipped = os.path.join(CONFIGS, "finetune.py")
  for spec in ("configs/finetune.py:lpips,q3", "finetune.py:lpips,q3", "finetune:lpips,q3"):
    assert config_files.resolve(spec) == f"{shipped}:lpips,q3"
  assert config_files.resolve("hyperprior") == os.path.join(CONFIGS, "hyperprior.py")
  own = tmp_path / "configs" / "finetune.py"  # a file relative to the current directory wins
  own.parent.mkdir()
  own.write_text("")
  assert config_files.resolve("configs/finetune.py:mse") == "configs/finetune.py:mse"
  assert config_files.resolve_argv(["prog", "--config", "zoo:base", "--config.seed=1"]) == [
      "prog", "--config", os.path.join(CONFIGS, "zoo.py") + ":base", "--config.seed=1"]
  with pytest.raises(UserError, match="no config file 'nothere.py' .*shipped configs: .*finetune"):
    config_files.resolve("nothere.py:q3")


def test_unknown_config_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(SystemExit) as exit_info:
    main.parse_flags(["jaxcomp train", "--config=configs/nothere.py:q3", "--workdir=w"])
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: --config: no config file 'configs/nothere.py'")
  assert len(err.strip().splitlines()) == 1


def test_crop_size_per_metric_and_trained_metric_validated():
  module = load_config_file("finetune")
  tiny = {name: module.get_config(f"{name},tiny") for name in module.DISTORTIONS}
  assert tiny["ms_ssim"].patch_size == 192 and tiny["ms_ssim"].eval.patch_size >= 161
  assert all(c.patch_size == 64 for n, c in tiny.items() if n != "ms_ssim")
  for name, config in tiny.items():
    assert name in config.eval.metrics.split(","), name
    assert config.patch_size >= module.MIN_SIZES.get(name, 0) and config.patch_size % 64 == 0
  full = module.get_config("ms_ssim,q3")
  assert full.patch_size == 256 and full.eval.metrics == "all"


def test_too_small_crops_stop_at_start_naming_the_minimum():
  distortion, params = train.create_distortion("ms_ssim")
  with pytest.raises(UserError, match=r"config.patch_size=64 .*at least 161x161"):
    train.check_patch_size(distortion, params, 64)
  train.check_patch_size(distortion, params, 192)
  train.check_patch_size(*train.create_distortion("mse"), 64)


@pytest.mark.slow
def test_exported_model_records_how_it_was_made(tmp_path):
  parent = tmp_path / "parent"
  parent.mkdir()
  (parent / export.FINGERPRINT_FILE).write_text("ab12\n")
  config = {"distortion": "ms_ssim", "lmbda": 8.73, "quality": 3, "init_from": str(parent),
            "num_train_steps": 100}
  record = checkpoint.training_record(config, 40)
  assert record == {"distortion": "ms_ssim", "lambda": 8.73, "quality": 3,
                    "init_from": str(parent), "init_fingerprint": "ab12", "steps": 40,
                    "num_train_steps": 100}
  assert checkpoint.training_record({"lmbda": 0.0018, "quality": 1}, 7)["init_from"] is None
  model = models.build("bmshj2018-hyperprior", 8, 12)
  params = step.create_state(model, jax.random.PRNGKey(0)).params
  variables = jax.device_get(models.refit_quantiles({"params": params}))
  export.save(str(tmp_path / "model"), "bmshj2018-hyperprior", 8, 12, variables, training=record)
  with open(tmp_path / "model" / export.CONFIG_FILE) as f:
    written = json.load(f)
  assert written["training"] == record
  # The record describes the weights; it does not change decoding, so not the fingerprint.
  bare = {k: v for k, v in written.items() if k != "training"}
  arrays = {"w": np.ones(3, np.float32)}
  assert export.fingerprint(written, arrays, {}) == export.fingerprint(bare, arrays, {})
