"""Issue 17 item 6: training data, config values, resumes with another config, workdir lock."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.train import checkpoint, config_lib, input_pipeline, train


def _config(**overrides):
  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.update(overrides)
  return config


@pytest.fixture()
def odd_folder(tmp_path):
  """good.png, a truncated PNG, a 16-bit grayscale PNG and a CMYK JPEG (all 80x96)."""
  rng = np.random.default_rng(0)
  good = (rng.uniform(size=(80, 96, 3)) * 255).astype(np.uint8)
  Image.fromarray(good).save(tmp_path / "good.png")
  Image.fromarray(good).save(tmp_path / "full.png")
  data = (tmp_path / "full.png").read_bytes()
  (tmp_path / "truncated.png").write_bytes(data[:len(data) // 2])
  os.remove(tmp_path / "full.png")
  Image.fromarray(np.full((80, 96), 128 * 257, np.uint16)).save(tmp_path / "gray16.png")
  Image.fromarray(good).convert("CMYK").save(tmp_path / "cmyk.jpg")
  return str(tmp_path)


def test_truncated_png_is_skipped_with_a_warning(odd_folder, caplog):
  with caplog.at_level(logging.WARNING):
    source = input_pipeline.ImageFolder(odd_folder, 64)
  assert [os.path.basename(p) for p in source.paths] == ["good.png", "gray16.png",
                                                         "truncated.png"]
  assert "cmyk.jpg: unsupported image mode CMYK" in caplog.text
  stream = input_pipeline.CropStream(source, 64, seed=0)
  with caplog.at_level(logging.WARNING):
    crops = stream.batch(0, 6)
  assert crops.shape == (6, 64, 64, 3) and np.all(np.isfinite(crops))
  assert "skipping unreadable image" in caplog.text and "truncated.png" in caplog.text


def test_sixteen_bit_gray_keeps_its_values(odd_folder):
  source = input_pipeline.ImageFolder(odd_folder, 64)
  gray = source[source.paths.index(os.path.join(odd_folder, "gray16.png"))]
  assert gray.shape == (80, 96, 3) and gray.dtype == np.uint8 and np.all(gray == 128)


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("num_train_steps", -5),
                                         ("patch_size", 0), ("keep_checkpoints", 0),
                                         ("checkpoint_every_steps", -1)])
def test_config_values_no_run_can_use(tmp_path, field, value):
  with pytest.raises(UserError, match=f"config.{field} must be a whole number"):
    train.train_and_evaluate(_config(**{field: value}), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.slow
def test_resume_with_another_config_is_refused_unless_allowed(tmp_path):
  workdir = str(tmp_path / "run")
  checkpoint.write_config(workdir, _config())
  checkpoint.write_config(workdir, _config(num_train_steps=800, log_every_steps=5))  # allowed
  for change in ({"batch_size": 16}, {"learning_rate": 3e-4}, {"seed": 7},
                 {"data": {"dir": "/elsewhere"}}):
    config = _config()
    config.update(change)
    with pytest.raises(UserError, match="holds a run with another config.*allow_config_change"):
      checkpoint.write_config(workdir, config)
  assert checkpoint.read_config(workdir)["batch_size"] == 8
  checkpoint.write_config(workdir, _config(batch_size=16), allow_changes=True)
  assert checkpoint.read_config(workdir)["batch_size"] == 16
  kept = [f for f in os.listdir(workdir) if f.startswith("config.") and f != "config.json"]
  assert len(kept) == 1


@pytest.mark.slow
def test_two_trainings_cannot_share_a_workdir(tmp_path):
  workdir = str(tmp_path / "run")
  first = checkpoint.lock_workdir(workdir)
  with pytest.raises(UserError, match=f"in use by another training \\(pid {os.getpid()}"):
    checkpoint.lock_workdir(workdir)
  first.close()
  checkpoint.lock_workdir(workdir).close()  # free again once the first run ends
