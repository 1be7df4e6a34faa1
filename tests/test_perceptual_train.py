"""LPIPS-style heads: statistics = lpips.py, files, ranking network, the compression 2AFC
builder, training on hidden-rule judges (held-out improvement), and `dpl:<path>` as a metric
and as a codec training loss."""

import dataclasses
import functools
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.errors import UserError
from jaxcomp.perceptual import build
from jaxcomp.metrics import dpl_heads
from jaxcomp.perceptual import twoafc
# only_perceptual_commands is an autouse fixture: importing it applies it here.
from perceptual_fixtures import NEEDS_WEIGHTS, SAMPLE, vgg

pytestmark = pytest.mark.usefixtures("only_perceptual_commands")

PHOTOS = "/work/shared/data/photos"
NEEDS_PHOTOS = pytest.mark.skipif(not os.path.isdir(PHOTOS), reason=f"{PHOTOS} not present")


def test_uniform_heads():
  for w, c in zip(dpl_heads.uniform_heads(), dpl_heads.CHANNELS):
    assert w.shape == (c,)
    np.testing.assert_allclose(jnp.sum(w), 1.0, rtol=1e-6)


def test_dist2logit_shapes():
  import jax  # pylint: disable=g-import-not-at-top
  net = dpl_heads.Dist2Logit()
  params = net.init(jax.random.PRNGKey(0), jnp.zeros((1,)), jnp.zeros((1,)))
  shapes = [p["kernel"].shape for p in params["params"].values()]
  assert shapes == [(5, 32), (32, 32), (32, 1)]
  assert net.apply(params, jnp.ones((6,)), jnp.zeros((6,))).shape == (6,)


def test_heads_save_load(tmp_path):
  w = [np.arange(c, dtype=np.float32) / c for c in dpl_heads.CHANNELS]
  dpl_heads.save(tmp_path / "h", w, {"init": "uniform"})
  back, meta = dpl_heads.load(tmp_path / "h")
  assert meta["init"] == "uniform" and meta["format"] == dpl_heads.FORMAT
  for a, b in zip(w, back):
    np.testing.assert_array_equal(a, b)
  w[2][0] = -1.0
  dpl_heads.save(tmp_path / "neg", w, {})
  with pytest.raises(UserError, match="non-negative"):
    dpl_heads.load(tmp_path / "neg")
  with pytest.raises(UserError, match="missing"):
    dpl_heads.load(tmp_path / "nothing")


@NEEDS_PHOTOS
def test_build_cli_without_judges(tmp_path, capsys):
  out = tmp_path / "split"
  assert cli.main(["perceptual", "build", "--photos", PHOTOS, "--out", str(out),
                   "--triplets", "3"]) == 0
  assert "no judges yet" in capsys.readouterr().out
  assert sorted(os.listdir(out)) == ["info.json", "p0", "p1", "ref"]
  with open(out / "info.json") as f:
    rows = json.load(f)["triplets"]
  assert len(rows) == 3 and all(r["p0"] != r["p1"] for r in rows)
  with pytest.raises(UserError, match="judge.*missing"):
    twoafc.load_split(out)


@NEEDS_WEIGHTS
def test_patches_too_small_forvgg():
  from jaxcomp.perceptual import train  # pylint: disable=g-import-not-at-top
  small = np.zeros((2, 8, 8, 3), np.uint8)
  split = twoafc.Split(small, small, small, np.zeros(2, np.float32), ("a", "b"))
  with pytest.raises(UserError, match="at least 16x16"):
    train.split_stats(vgg(), split)


@functools.lru_cache(maxsize=None)
def _hidden_rule_split():
  split, _ = build.build_split(PHOTOS, 96, seed=1)
  return dataclasses.replace(split, judge=build.synthetic_judges(split, seed=1))


@NEEDS_PHOTOS
def test_synthetic_judges_are_votes():
  judge = _hidden_rule_split().judge
  assert judge.shape == (96,) and set(np.unique(judge * build.OBSERVERS)) <= set(range(6))


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_channel_stats_reproduce_lpips():
  from jaxcomp.metrics import lpips  # pylint: disable=g-import-not-at-top
  split = twoafc.load_split(SAMPLE)
  x, y = split.p0.astype(np.float32) / 255, split.ref.astype(np.float32) / 255
  v01 = dpl_heads.lpips_heads()
  d = dpl_heads.distance_from_stats(dpl_heads.channel_stats(vgg(), x, y), v01)
  np.testing.assert_allclose(d, lpips.lpips(x, y, {"vgg": vgg(), "lin": v01}), rtol=1e-5)
  x1 = split.p1.astype(np.float32) / 255
  stats0, stats1 = dpl_heads.triplet_stats(vgg(), y, x, x1)  # one VGG16 pass for both pairs
  for got, want in ((stats0, dpl_heads.channel_stats(vgg(), x, y)),
                    (stats1, dpl_heads.channel_stats(vgg(), x1, y))):
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-7)


@pytest.mark.slow
@NEEDS_WEIGHTS
@NEEDS_PHOTOS
def test_training_improves_uniform_heads_on_held_out_split():
  from jaxcomp.perceptual import train  # pylint: disable=g-import-not-at-top
  split = _hidden_rule_split()
  fit, held_out = split.subset(slice(0, 64)), split.subset(slice(64, 96))
  stats0, stats1 = train.split_stats(vgg(), held_out)
  before = train.score_heads(dpl_heads.uniform_heads(), stats0, stats1, held_out.judge)
  lines = []
  trained, loss = train.train(vgg(), fit, dpl_heads.uniform_heads(), steps=200, batch=32, lr=1e-3,
                              seed=0, log=lines.append)
  after = train.score_heads(trained, stats0, stats1, held_out.judge)
  assert all(np.all(w >= 0) for w in trained)
  assert "steps/s" in lines[-1] and loss < 0.69
  assert after > before + 0.03, (before, after)


@pytest.mark.slow
@NEEDS_WEIGHTS
@NEEDS_PHOTOS
def test_train_cli_and_dpl_metric(tmp_path, capsys):
  from jaxcomp.metrics import registry  # pylint: disable=g-import-not-at-top
  data, out = tmp_path / "split", tmp_path / "heads"
  assert cli.main(["perceptual", "build", "--photos", PHOTOS, "--out", str(data),
                   "--triplets", "8", "--synthetic-judges"]) == 0
  assert cli.main(["perceptual", "train", "--data", str(data), "--out", str(out),
                   "--init", "lpips", "--steps", "3", "--batch", "4", "--val", str(data)]) == 0
  printed = capsys.readouterr().out
  assert "steps/s" in printed and "held-out 2AFC (8 triplets): lpips heads" in printed
  assert cli.main(["perceptual", "score", "--data", str(data),
                   "--metrics", f"dpl:{out},lpips", "--json"]) == 0
  scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["scores"]
  assert set(scores) == {f"dpl:{out}", "lpips"}
  metric = registry.loss(f"dpl:{out}")
  x = np.random.default_rng(0).random((8, 64, 64, 3), dtype=np.float32)
  assert metric.kind == "distance"
  np.testing.assert_allclose(metric.loss(x, x), 0.0, atol=1e-6)
  with pytest.raises(UserError, match="dpl:<path>"):
    registry.get("dpl:")


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_dpl_as_codec_training_loss(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from jaxcomp.train import config_lib  # pylint: disable=g-import-not-at-top
  from jaxcomp.train import train  # pylint: disable=g-import-not-at-top
  photos = tmp_path / "photos"
  os.makedirs(photos)
  rng = np.random.default_rng(0)
  for i in range(3):
    smooth = np.kron(rng.uniform(size=(10, 12, 3)), np.ones((8, 8, 1)))
    Image.fromarray((smooth * 255).astype(np.uint8)).save(photos / f"photo{i}.png")
  dpl_heads.save(tmp_path / "heads", dpl_heads.uniform_heads(), {"init": "uniform"})
  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.update(N=8, M=12, num_train_steps=2, checkpoint_every_steps=2, log_every_steps=1,
                batch_size=8, distortion=f"dpl:{tmp_path / 'heads'}", lmbda=1.0)
  config.data.dir = str(photos)
  config.eval.every_steps = 0
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    state = train.train_and_evaluate(config, str(tmp_path / "run"))
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
  assert int(state.step) == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(state.params)))
