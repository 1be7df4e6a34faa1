"""`jaxcomp perceptual train` as a training loop: LPIPS's learning-rate schedule, seeded batches,
one device = several devices (pmap), resume from orbax checkpoints = an uninterrupted run,
TensorBoard scalars, backbone fine-tuning saved beside the heads and used by `dpl:<path>`, and
one-line errors for bad flags. Patches: the 8-triplet BAPPS sample cropped to 16x16 (the
smallest size the VGG16 taps take), to keep VGG16's compilation and runs short."""

import dataclasses
import functools
import os
import struct

import jax
import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.errors import UserError
from jaxcomp.metrics import dpl_heads
from jaxcomp.perceptual import train
from jaxcomp.perceptual import twoafc
# only_perceptual_commands is an autouse fixture: importing it applies it here.
from perceptual_fixtures import NEEDS_WEIGHTS, SAMPLE, vgg

pytestmark = pytest.mark.usefixtures("only_perceptual_commands")


@functools.lru_cache(maxsize=None)
def _small():
  """The sample's 8 triplets cropped to their central 16x16."""
  split = twoafc.load_split(SAMPLE)
  crop = lambda a: np.ascontiguousarray(a[:, 24:40, 24:40])
  return dataclasses.replace(split, ref=crop(split.ref), p0=crop(split.p0), p1=crop(split.p1))


def _scalars(workdir):
  """{tag: [(step, value)]} from the TensorBoard event files in `workdir` (TFRecord framing)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  out = {}
  for name in sorted(os.listdir(workdir)):
    if "tfevents" not in name:
      continue
    with open(os.path.join(workdir, name), "rb") as f:
      data = f.read()
    at = 0
    while at < len(data):
      (length,) = struct.unpack("<Q", data[at:at + 8])
      event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
      at += 12 + length + 4
      for value in event.summary.value:
        out.setdefault(value.tag, []).append((event.step, value.simple_value))
  return out


def test_lr_schedule_constant_then_linear_to_zero():
  schedule = train.lr_schedule(1e-3, 10, 4)
  lrs = [float(schedule(t)) for t in range(10)]
  np.testing.assert_allclose(lrs, [1e-3] * 6 + [1e-3, 7.5e-4, 5e-4, 2.5e-4], rtol=1e-6)
  np.testing.assert_allclose([float(train.lr_schedule(1e-3, 10, 0)(t)) for t in (0, 9)], 1e-3)
  assert train.default_decay_steps(1000) == 500
  with pytest.raises(UserError, match="--decay-steps"):
    train.lr_schedule(1e-3, 10, 11)


def test_batches_are_seeded_epochs():
  n, batch = 7, 3
  steps = [train.batch_indices(n, batch, 5, s) for s in range(7)]  # 21 positions = 3 epochs
  flat = np.concatenate(steps)
  for epoch in range(3):
    assert sorted(flat[epoch * n:(epoch + 1) * n]) == list(range(n))
  np.testing.assert_array_equal(train.batch_indices(n, batch, 5, 4), steps[4])
  assert not np.array_equal(np.concatenate([train.batch_indices(n, batch, 6, s)
                                            for s in range(3)]), flat[:9])


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_one_device_equals_several_devices():
  split = _small()
  assert len(jax.local_devices()) >= 4, "tests/conftest.py forces 8 CPU devices"
  runs = [train.fit(vgg(), split, dpl_heads.uniform_heads(), steps=5, batch=6, lr=1e-2,
                    decay_steps=2, devices=devices, log=lambda line: None)
          for devices in (jax.local_devices()[:1], jax.local_devices()[:4])]  # 4 x 2, 2 padded
  moved = max(float(np.max(np.abs(w - u)))
              for w, u in zip(runs[0].heads, dpl_heads.uniform_heads()))
  assert moved > 1e-3
  for a, b in zip(runs[0].heads, runs[1].heads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  for a, b in zip(jax.tree.leaves(runs[0].rank), jax.tree.leaves(runs[1].rank)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  assert runs[0].loss == pytest.approx(runs[1].loss, rel=1e-5)


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_resumed_run_equals_uninterrupted_run(tmp_path):
  fit, val = _small(), _small().subset(slice(0, 4))
  common = dict(batch=6, lr=1e-2, decay_steps=0, seed=3, devices=jax.local_devices()[:4],
                log=lambda line: None)
  whole = train.fit(vgg(), fit, dpl_heads.uniform_heads(), steps=6, **common)
  workdir = str(tmp_path / "run")
  lines = []
  first = train.fit(vgg(), fit, dpl_heads.uniform_heads(), steps=3, workdir=workdir,
                    checkpoint_every=2, val=val, eval_every=2, log_every=1,
                    **dict(common, log=lines.append))
  assert first.step == 3 and sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "3"]
  assert "ETA" in lines[1] and "steps/s" in lines[1]
  assert any(line.startswith("step 2: held-out 2AFC") for line in lines)
  resumed = train.fit(vgg(), fit, dpl_heads.uniform_heads(), steps=6, workdir=workdir,
                      **dict(common, log=lines.append))
  assert f"resuming from step 3 in {workdir}" in lines
  assert resumed.step == 6
  for a, b in zip(whole.heads, resumed.heads):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  for a, b in zip(jax.tree.leaves(whole.rank), jax.tree.leaves(resumed.rank)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
  scalars = _scalars(workdir)
  assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 6]
  assert {s for s, _ in scalars["eval/2afc"]} == {0, 2, 3}
  np.testing.assert_allclose([v for _, v in scalars["train/lr"]], 1e-2, rtol=1e-6)
  assert all(0.0 <= v <= 1.0 for _, v in scalars["train/2afc"])
  with pytest.raises(UserError, match="another training run.*batch"):
    train.fit(vgg(), fit, dpl_heads.uniform_heads(), steps=6, workdir=workdir,
              **dict(common, batch=2))


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_train_backbone_cli_saves_backbone_for_dpl(tmp_path, capsys):
  from jaxcomp.metrics import dpl  # pylint: disable=g-import-not-at-top
  from jaxcomp.metrics import registry  # pylint: disable=g-import-not-at-top
  data, out, workdir = str(tmp_path / "small"), str(tmp_path / "heads"), str(tmp_path / "run")
  twoafc.write_split(data, _small())
  assert cli.main(["perceptual", "train", "--data", data, "--out", out, "--steps", "2",
                   "--batch", "2", "--lr", "1e-3", "--train-backbone", "--val", data,
                   "--workdir", workdir, "--checkpoint-every", "1", "--eval-every", "1",
                   "--log-every", "1"]) == 0
  printed = capsys.readouterr().out
  assert "step 1: held-out 2AFC" in printed
  assert "held-out 2AFC (8 triplets): lpips heads" in printed and "trained heads + backbone" in printed
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["1", "2"]
  assert sorted(os.listdir(out)) == sorted([dpl_heads.HEADS_FILE, dpl_heads.META_FILE,
                                            dpl_heads.BACKBONE_FILE])
  params = dpl.load_params(out)
  pretrained = vgg()["params"]
  change = max(float(np.max(np.abs(params["vgg"]["params"][k]["kernel"]
                                   - pretrained[k]["kernel"]))) for k in pretrained)
  assert 0 < change < 0.1
  metric = registry.loss(f"dpl:{out}")
  x = twoafc.load_split(data).p0.astype(np.float32) / 255
  y = twoafc.load_split(data).ref.astype(np.float32) / 255
  np.testing.assert_allclose(metric.loss(x, x), 0.0, atol=1e-6)
  ones = np.ones(x.shape[:3], np.float32)
  np.testing.assert_allclose(metric.weighted_loss_fn(metric.params, x, y, ones), metric.loss(x, y),
                             rtol=1e-5)
  frozen = {"vgg": vgg(), "lin": params["lin"]}
  assert not np.allclose(metric(x, y), metric.compute(frozen, x, y), rtol=1e-6)


def test_backbone_file_is_checked(tmp_path):
  bad = {"params": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 8), np.float32),
                               "bias": np.zeros((8,), np.float32)}}}
  dpl_heads.save(tmp_path / "h", dpl_heads.uniform_heads(), {}, backbone=bad)
  lin, meta = dpl_heads.load(tmp_path / "h")
  assert meta["backbone"] == dpl_heads.BACKBONE_FILE and len(lin) == 5
  with pytest.raises(UserError, match="Conv_0/kernel must have shape"):
    dpl_heads.load_backbone(tmp_path / "h", meta)
  dpl_heads.save(tmp_path / "plain", dpl_heads.uniform_heads(), {})
  assert dpl_heads.load_backbone(tmp_path / "plain", dpl_heads.load(tmp_path / "plain")[1]) is None


@pytest.mark.parametrize("flags, message", [
    (["--decay-steps", "11"], "--decay-steps must be between 0 and --steps"),
    (["--checkpoint-every", "5"], "--checkpoint-every needs --workdir"),
    (["--eval-every", "5"], "--eval-every needs --val"),
    (["--log-every", "0"], "--log-every must be at least 1"),
    (["--lr", "0"], "--lr must be positive"),
])
def test_bad_train_flags(tmp_path, capsys, flags, message):
  assert cli.main(["perceptual", "train", "--data", str(tmp_path), "--out",
                   str(tmp_path / "h"), "--steps", "10"] + flags) == 2
  err = capsys.readouterr().err
  assert err.startswith(f"error: {message}") and err.count("\n") == 1
  assert not os.path.exists(tmp_path / "h")
