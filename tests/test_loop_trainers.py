"""The loop kit (jaxcomp.loop) and the trainers built on it (issue 16, "one loop kit"): the saliency
net and the perceptual heads run from their config files through `python -m jaxcomp.train`'s
dispatch, resume from their checkpoints exactly, and stop on NaN/Inf with one line."""

import logging
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.loop import batches, checkpoint, driver, progress, writers
from jaxcomp.metrics import dpl_heads
from jaxcomp.perceptual import train as perceptual_train
from jaxcomp.perceptual import twoafc
from jaxcomp.saliency import data
from jaxcomp.saliency import learned
from jaxcomp.saliency import train as saliency_train
from jaxcomp.train import config_files, main
from perceptual_fixtures import NEEDS_WEIGHTS, SAMPLE, vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------- the kit, without a model


def _loop(tmp_path, steps, nan_at=None, **kwargs):
  """A Loop over a fake step whose loss is 1/step (NaN at `nan_at`); returns (loop, lines,
  saved steps, evaluated steps)."""
  lines, saved, evaluated = [], [], []
  writer = writers.create(str(tmp_path))
  loop = driver.Loop(0, steps, lambda means, s, speed: (f"step {s} loss {means['loss']:.3f} "
                                                         f"{speed}", means),
                     log=lines.append, writer=writer, save=saved.append,
                     evaluate=lambda s: evaluated.append(s) or {"x": 1.0}, **kwargs)
  try:
    loop.run(lambda s: {"loss": math.nan if s == nan_at else 1.0 / s})
  finally:
    writer.close()
  return loop, lines, saved, evaluated


def test_loop_periodic_actions(tmp_path):
  loop, lines, saved, evaluated = _loop(tmp_path, 7, log_every=3, checkpoint_every=2,
                                        eval_every=4)
  assert [line.split()[1] for line in lines] == ["3", "6", "7"]
  assert lines[0].endswith("compiling") and "steps/s, ETA" in lines[1]
  assert saved == [2, 4, 6, 7] and evaluated == [4, 7] and loop.step == 7
  # the window of the line at step 6 is the steps since the flush at the checkpoint of step 4
  assert loop.last_means == {"loss": 1 / 7}
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))


def test_loop_nan_stop_is_one_line_naming_the_last_checkpoint(tmp_path):
  with pytest.raises(driver.DivergedError) as e:
    _loop(tmp_path, 9, nan_at=5, log_every=4, checkpoint_every=2, hint="; lower the lr")
  assert str(e.value) == ("loss became NaN/Inf at step 5; stopped (the last good checkpoint is "
                          "step 4); lower the lr")
  assert isinstance(e.value, UserError)


def test_progress_and_batches():
  assert progress.format_duration(3725) == "1h02m" and progress.format_duration(65) == "1m05s"
  assert progress.Progress.describe(math.nan, math.nan) == "compiling"
  order = np.concatenate([batches.batch_indices(5, 2, 0, s) for s in range(5)])  # 2 epochs
  assert sorted(order[:5]) == sorted(order[5:]) == list(range(5))


def test_config_record_refuses_another_run(tmp_path):
  workdir = str(tmp_path / "w")
  checkpoint.write_config(workdir, {"batch": 2, "lr": 1.0}, fixed=("batch",))
  checkpoint.write_config(workdir, {"batch": 2, "lr": 0.5}, fixed=("batch",))  # free field
  with pytest.raises(UserError, match="holds another training run \\(batch=2 vs batch=3\\)"):
    checkpoint.write_config(workdir, {"batch": 3, "lr": 0.5}, fixed=("batch",))
  assert checkpoint.read_config(workdir) == {"batch": 2, "lr": 0.5}


def test_shipped_trainer_configs_and_bad_trainer(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert config_files.load("saliency_net:tiny").trainer == "saliency_net"
  assert config_files.load("configs/dpl_heads.py").trainer == "dpl_heads"
  assert "trainer" not in config_files.load("hyperprior:tiny")  # codec configs: the default
  config = config_files.load("saliency_net:tiny")
  config.trainer = "gan"
  with pytest.raises(UserError, match="^config.trainer must be one of codec, saliency_net, "
                                      "dpl_heads, not 'gan'$"):
    main.train_and_evaluate(config, str(tmp_path / "w"))


@pytest.mark.parametrize("spec, override, message", [
    ("saliency_net:tiny", {"num_train_steps": 0}, "config.num_train_steps must be at least 1"),
    ("saliency_net:tiny", {"learning_rate": -1.0}, "config.learning_rate must be positive"),
    ("saliency_net:tiny", {"data.images": ""}, "config.data.images and config.data.maps are "),
    ("saliency_net:tiny", {"loss": "nss=1"}, "config.loss: the NSS loss needs "
     "config.data.fixations"),
    ("dpl_heads:tiny", {"decay_steps": 9}, "config.decay_steps must be between 0 and "
     "config.num_train_steps \\(5\\), got 9"),
    ("dpl_heads:tiny", {"init": "vgg"}, "config.init must be lpips or uniform"),
])
def test_config_errors_name_the_field(tmp_path, spec, override, message):
  data = ({"data.images": str(tmp_path), "data.maps": str(tmp_path)} if "saliency" in spec
          else {"data.dir": str(tmp_path)})
  with pytest.raises(UserError, match=f"^{message}"):
    _run(spec, str(tmp_path / "w"), **dict(data, **override))
  assert not os.path.exists(tmp_path / "w")


def _run(spec, workdir, **fields):
  """main.train_and_evaluate of a shipped config with `fields` ('a.b' names) changed."""
  config = config_files.load(spec)
  config.update_from_flattened_dict(fields)
  return main.train_and_evaluate(config, workdir)


def _python_m_train(argv, cwd):
  """`python -m jaxcomp.train ARGV` in a fresh process from `cwd`; (returncode, stderr)."""
  result = subprocess.run([sys.executable, "-m", "jaxcomp.train"] + argv, cwd=cwd,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": REPO})
  return result.returncode, result.stderr


# ---------------------------------------------------------------- saliency net


def _saliency_data(root, n=6, size=32):
  """images/ and maps/ folders of `n` noise images with one bright square each (its map)."""
  rng = np.random.default_rng(0)
  dirs = [os.path.join(root, d) for d in ("images", "maps")]
  for d in dirs:
    os.makedirs(d)
  for i in range(n):
    image = (rng.uniform(0.2, 0.5, (size, size, 3)) * 255).astype(np.uint8)
    smap = np.zeros((size, size), np.uint8)
    y, x = rng.integers(0, size - 8, 2)
    image[y:y + 8, x:x + 8] = 255
    smap[y:y + 8, x:x + 8] = 255
    Image.fromarray(image).save(os.path.join(dirs[0], f"im{i}.png"))
    Image.fromarray(smap).save(os.path.join(dirs[1], f"im{i}.png"))
  return dirs


@pytest.mark.slow
def test_saliency_net_from_its_config_resumes_exactly(tmp_path, caplog):
  images, maps = _saliency_data(str(tmp_path / "data"))
  common = {"data.images": images, "data.maps": maps, "input_size": 32, "width": 8,
            "batch_size": 4, "checkpoint_every_steps": 2, "log_every_steps": 1}
  whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
  # the entry point, from another directory, with --config.<field> overrides
  code, err = _python_m_train(["--config=configs/saliency_net.py:tiny", f"--workdir={whole}",
                               "--config.num_train_steps=4"]
                              + [f"--config.{k}={v}" for k, v in common.items()],
                              cwd=str(tmp_path))
  assert code == 0, err
  assert "step 4/4  loss" in err and "steps/s, ETA" in err
  _run("saliency_net:tiny", part, num_train_steps=2, **common)
  assert sorted(os.listdir(os.path.join(part, "checkpoints"))) == ["2"]
  with caplog.at_level(logging.INFO):
    _run("saliency_net:tiny", part, num_train_steps=4, **common)
  assert f"resuming from step 2 in {part}" in caplog.text
  assert sorted(os.listdir(os.path.join(part, "checkpoints"))) == ["2", "4"]
  a, b = (learned.load(os.path.join(w, saliency_train.WEIGHTS_DIR))[0] for w in (whole, part))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(part))


@pytest.mark.slow
def test_saliency_nan_stops_with_one_line(tmp_path):
  images, maps = _saliency_data(str(tmp_path / "data"))
  dataset = data.load_resized(data.pair_files(images, maps), 32)
  config = learned.default_config(input_size=32, backbone="random:0", width=8)
  with pytest.raises(driver.DivergedError) as e:
    saliency_train.fit(dataset, config, steps=4, batch=4, lr=float("nan"), log_every=1,
                       workdir=str(tmp_path / "w"), checkpoint_every=1, log=lambda line: None)
  assert str(e.value) == ("loss became NaN/Inf at step 2; stopped (the last good checkpoint is "
                          "step 1); lower the learning rate (--lr, config.learning_rate)")
  assert os.listdir(tmp_path / "w" / "checkpoints") == ["1"]


# ---------------------------------------------------------------- perceptual heads


def _small_split(path):
  """The BAPPS sample's 8 triplets cropped to 16x16, written as a split folder."""
  split = twoafc.load_split(SAMPLE)
  crop = lambda a: np.ascontiguousarray(a[:, 24:40, 24:40])
  twoafc.write_split(path, twoafc.Split(crop(split.ref), crop(split.p0), crop(split.p1),
                                        split.judge, split.names))
  return path


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_dpl_heads_from_its_config_resumes_and_stops_on_nan(tmp_path, caplog):
  split = _small_split(str(tmp_path / "split"))
  common = {"data.dir": split, "learning_rate": 0.01, "decay_steps": 0}
  whole, part = str(tmp_path / "whole"), str(tmp_path / "part")
  _run("dpl_heads:tiny,uniform", whole, num_train_steps=4, **common)
  _run("dpl_heads:tiny,uniform", part, num_train_steps=2, **common)
  with caplog.at_level(logging.INFO):
    _run("dpl_heads:tiny,uniform", part, num_train_steps=4, **common)
  assert f"resuming from step 2 in {part}" in caplog.text
  assert sorted(os.listdir(os.path.join(part, "checkpoints"))) == ["2", "4"]
  a, b = (dpl_heads.load(os.path.join(w, perceptual_train.HEADS_DIR))[0] for w in (whole, part))
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
  with pytest.raises(driver.DivergedError) as e:
    perceptual_train.fit(vgg(), twoafc.load_split(split), dpl_heads.uniform_heads(), steps=3,
                         batch=4, lr=float("nan"), decay_steps=0, log_every=1,
                         log=lambda line: None)
  assert str(e.value) == ("loss became NaN/Inf at step 2; stopped (no checkpoint was saved); "
                          "lower the learning rate (--lr, config.learning_rate)")
