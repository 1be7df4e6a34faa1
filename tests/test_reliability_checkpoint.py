"""Issue 17 item 1: a corrupted checkpoint is never used silently.

Checkpoints are written with the real manager (no training step: a freshly initialised tiny
state), then corrupted on disk as a user's failing disk would: the newest one must be skipped
with a warning naming it, export must use the newest intact one, and no intact checkpoint at all
is one line. `export` refuses non-finite weights.
"""

import glob
import os

import jax
import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.codec import export
from jaxcomp.errors import UserError
from jaxcomp.train import checkpoint, config_lib, step, train

pytestmark = pytest.mark.slow


def _config():
  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.N, config.M = 8, 12
  return config


@pytest.fixture(scope="module")
def fresh_state():
  config = _config()
  model = train.build_model(config.arch, config.N, config.M)
  tx, _ = train.create_optimizer(config)
  return step.create_state(model, jax.random.PRNGKey(0), image_size=(64, 64), optimizer=tx)


def _workdir(tmp_path, state, steps=(3, 6)):
  """A workdir with config.json and checkpoints at `steps` (params differ per step)."""
  workdir = str(tmp_path / "run")
  checkpoint.write_config(workdir, _config())
  manager = checkpoint.create_manager(workdir, keep=5)
  for s in steps:
    params = jax.tree.map(lambda p, s=s: np.asarray(p) + s, state.params)
    checkpoint.save(manager, state.replace(params=params, step=np.asarray(s, np.int32)),
                    {"next_example": 8 * s, "seed": 0})
  checkpoint.finish(manager)
  return workdir


def _damage(workdir, step_number, how):
  """Damages the largest array file of a checkpoint's state item."""
  files = [f for f in glob.glob(os.path.join(workdir, "checkpoints", str(step_number), "state",
                                             "**", "*"), recursive=True) if os.path.isfile(f)]
  target = max(files, key=os.path.getsize)
  data = bytearray(open(target, "rb").read())
  if how == "flip":  # 64 flipped bytes in the middle, as in the report
    middle = len(data) // 2
    for i in range(middle, middle + 64):
      data[i] ^= 0xFF
  else:
    data = data[:len(data) // 3]
  with open(target, "wb") as f:
    f.write(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate"])
def test_corrupt_newest_checkpoint_falls_back_with_a_warning(tmp_path, fresh_state, how, capsys):
  workdir = _workdir(tmp_path, fresh_state)
  _damage(workdir, 6, how)
  manager = checkpoint.create_manager(workdir, keep=5)
  state, data = checkpoint.restore(manager, fresh_state)
  checkpoint.finish(manager)
  assert int(state.step) == 3 and data == {"next_example": 24, "seed": 0}
  leaf = jax.tree.leaves(state.params)[0]
  assert np.allclose(np.asarray(leaf), np.asarray(jax.tree.leaves(fresh_state.params)[0]) + 3)
  err = capsys.readouterr().err
  assert "checkpoints/6 is corrupt" in err
  # The corrupt one is set aside, so the resumed run can save step 6 again.
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3"]
  assert os.listdir(os.path.join(workdir, "corrupt_checkpoints"))[0].startswith("6-")


def test_export_uses_the_newest_intact_checkpoint(tmp_path, fresh_state, capsys):
  workdir = _workdir(tmp_path, fresh_state)
  _damage(workdir, 6, "flip")
  out = str(tmp_path / "model")
  assert cli.main(["export", "--workdir", workdir, "--out", out]) == 0
  captured = capsys.readouterr()
  assert "exported step 3" in captured.out and "checkpoints/6 is corrupt" in captured.err
  params = export.load(out)[1]["params"]
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(params))


def test_no_intact_checkpoint_is_one_line(tmp_path, fresh_state, capsys):
  workdir = _workdir(tmp_path, fresh_state)
  _damage(workdir, 3, "flip")
  _damage(workdir, 6, "truncate")
  assert cli.main(["export", "--workdir", workdir, "--out", str(tmp_path / "m")]) == 2
  err = capsys.readouterr().err.splitlines()
  assert err[-1].startswith("error: no intact checkpoint") and "Traceback" not in "".join(err)
  assert not os.path.exists(tmp_path / "m")
  manager = checkpoint.create_manager(workdir, keep=5)
  with pytest.raises(UserError, match="no intact checkpoint"):
    checkpoint.restore(manager, fresh_state)
  checkpoint.finish(manager)


def test_non_finite_weights_are_refused(tmp_path, fresh_state, capsys):
  nan_params = jax.tree.map(lambda p: np.full(np.shape(p), np.nan, np.float32),
                            fresh_state.params)
  workdir = _workdir(tmp_path, fresh_state.replace(params=nan_params), steps=(1,))
  assert cli.main(["export", "--workdir", workdir, "--out", str(tmp_path / "m")]) == 2
  assert "non-finite" in capsys.readouterr().err
  variables = {"params": jax.tree.map(np.array, fresh_state.params)}
  variables["params"]["g_a"]["layer_0"]["kernel"][0, 0, 0, 0] = np.inf
  with pytest.raises(UserError, match="non-finite weights"):
    export.save(str(tmp_path / "m2"), "bmshj2018-hyperprior", 8, 12, variables)
  assert not os.path.exists(tmp_path / "m2")
