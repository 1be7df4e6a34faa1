"""The training loop end to end: checkpoints, resumption, preemption, NaN stop, export, errors."""

import glob
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.codec import export
from jaxcomp.errors import UserError
from jaxcomp.train import checkpoint, input_pipeline, train
from train_fixtures import tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _params(state):
  return jax.device_get(state.params)


def _max_diff(a, b):
  return max(jax.tree.leaves(jax.tree.map(lambda x, y: float(np.max(np.abs(x - y))), a, b)))


def _stop_after(monkeypatch, batches, action):
  """Makes the pipeline run `action()` when batch number `batches` + 1 is requested."""
  real = input_pipeline.host_batches

  def host_batches(*args, **kwargs):
    for k, batch in enumerate(real(*args, **kwargs)):
      if k == batches:
        action()
      yield batch

  monkeypatch.setattr(input_pipeline, "host_batches", host_batches)


@pytest.fixture(scope="module")
def full_run(photos, tmp_path_factory):
  """An uninterrupted 6-step run with validation: (workdir, final params)."""
  workdir = str(tmp_path_factory.mktemp("full"))
  config = tiny_config(photos)
  config.eval.every_steps = 6
  config.eval.patch_size = 64
  config.eval.metrics = "psnr,ssim"
  return workdir, _params(train.train_and_evaluate(config, workdir))


@pytest.mark.slow
def test_run_writes_checkpoints_config_and_tensorboard_events(full_run):
  workdir, _ = full_run
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  assert checkpoint.read_config(workdir)["N"] == 8
  events = b"".join(open(f, "rb").read() for f in glob.glob(os.path.join(workdir, "events*")))
  for tag in (b"train/loss", b"train/bpp", b"train/distortion", b"train/lr", b"eval/psnr",
              b"eval/ssim", b"eval/bpp"):
    assert tag in events


@pytest.mark.slow
def test_killed_and_restarted_run_equals_uninterrupted_run(full_run, photos, tmp_path, monkeypatch):
  workdir = str(tmp_path / "killed")
  config = tiny_config(photos)

  def kill():
    raise KeyboardInterrupt("killed")

  _stop_after(monkeypatch, 4, kill)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir)
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["3"]
  monkeypatch.undo()
  resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == 6
  diff = _max_diff(_params(resumed), full_run[1])
  print(f"max |params(killed at 4, resumed from 3) - params(uninterrupted)|: {diff:.3g}")
  assert diff <= 1e-6


@pytest.mark.slow
def test_preemption_signal_saves_and_stops(photos, tmp_path, monkeypatch):
  workdir = str(tmp_path / "preempted")
  _stop_after(monkeypatch, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
  state = train.train_and_evaluate(tiny_config(photos, checkpoint_every_steps=100), workdir)
  assert int(state.step) == 2
  assert os.listdir(os.path.join(workdir, "checkpoints")) == ["2"]


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(full_run, photos, tmp_path):
  workdir = str(tmp_path / "nan")
  shutil.copytree(full_run[0], workdir)
  config = tiny_config(photos, num_train_steps=9, lmbda=float("nan"))
  with pytest.raises(train.DivergedError, match="NaN/Inf at step 7.*checkpoint is step 6"):
    train.train_and_evaluate(config, workdir, allow_config_change=True)  # lmbda differs
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]


@pytest.mark.slow
def test_export_then_fine_tune_from_the_exported_model(full_run, photos, tmp_path, capsys):
  out = str(tmp_path / "model")
  assert cli.main(["export", "--workdir", full_run[0], "--out", out]) == 0
  assert "exported step 6" in capsys.readouterr().out
  _, variables, config = export.load(out)
  assert (config["N"], config["M"]) == (8, 12)
  assert variables["quantiles"]["entropy_bottleneck"]["z"].shape == (8, 3)
  assert _max_diff(variables["params"], full_run[1]) == 0.0
  tuned = train.train_and_evaluate(
      tiny_config(photos, init_from=out, num_train_steps=1, learning_rate=0.0),
      str(tmp_path / "tuned"))
  assert _max_diff(_params(tuned), full_run[1]) == 0.0


@pytest.mark.slow
def test_user_errors(full_run, photos, tmp_path, capsys):
  with pytest.raises(UserError, match="data directory not found"):
    train.train_and_evaluate(tiny_config(str(tmp_path / "none")), str(tmp_path / "a"))
  with pytest.raises(UserError, match="another model"):
    train.train_and_evaluate(tiny_config(photos, N=16), full_run[0])
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match="no usable images"):
    train.train_and_evaluate(tiny_config(str(tmp_path / "empty")), str(tmp_path / "b"))
  assert cli.main(["export", "--workdir", str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1
  assert not os.path.exists(tmp_path / "m")


def test_unregistered_distortion_is_a_clear_error():
  with pytest.raises(UserError, match="unknown metric 'no_such_metric'"):
    train.create_distortion("no_such_metric")


def test_bad_config_arg_is_one_line_error(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "jaxcomp.train", "--config=configs/hyperprior.py:q9",
       f"--workdir={tmp_path}"], cwd=REPO, capture_output=True, text=True,
      env={**os.environ, "PYTHONPATH": REPO}, check=False)
  assert result.returncode == 2
  assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
  assert "unknown config argument 'q9'" in result.stderr


@pytest.mark.slow
def test_fine_tune_with_a_registered_metric(full_run, photos, tmp_path):
  config = tiny_config(photos, init_from=full_run[0], distortion="ssim", lmbda=3.3,
                       learning_rate=1e-5, num_train_steps=1)
  tuned = train.train_and_evaluate(config, str(tmp_path / "ssim"))
  assert int(tuned.step) == 1
  diff = _max_diff(_params(tuned), full_run[1])
  assert 0.0 < diff < 1e-3


def test_fine_tune_config_needs_init_from(photos, tmp_path):
  config = tiny_config(photos)
  config.init_required = True
  with pytest.raises(UserError, match="init_from"):
    train.train_and_evaluate(config, str(tmp_path / "x"))
