"""Saliency models: the interface (sdsp / centre / learned), metrics against pysaliency, losses,
map validation and files, the folder-pair dataset, training a learned model on a synthetic task
(held-out gain over the centre prior), weights round trip, and CLI errors (exit 2, one line)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from jaxcomp import cli
from jaxcomp import saliency
from jaxcomp.errors import UserError
from jaxcomp.nets import weights
from jaxcomp.saliency import data
from jaxcomp.saliency import evaluation
from jaxcomp.saliency import learned
from jaxcomp.saliency import losses

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "saliency")
NEEDS_VGG16 = pytest.mark.skipif(
    not weights.available(("vgg16",)),
    reason=f"pretrained weights not cached in {weights.cache_dir()} (run `jaxcomp weights fetch`)")
SIZE = 64


@pytest.fixture(autouse=True)
def _only_saliency_commands(monkeypatch):
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.saliency.cli",))


def synthetic(n, seed, size=SIZE, fixations_per_image=12):
  """Blocky textured backgrounds with one saturated disc at a random place.

  Ground truth: a Gaussian blob on the disc (sigma = radius), max 1; fixations drawn from it.
  Returns images [n, size, size, 3] uint8, maps [n, size, size] float32, fixations bool.
  """
  rng = np.random.default_rng(seed)
  images = np.empty((n, size, size, 3), np.uint8)
  maps = np.empty((n, size, size), np.float32)
  fixations = np.zeros((n, size, size), bool)
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
  for i in range(n):
    blocks = np.kron(rng.normal(size=(size // 8, size // 8, 3)), np.ones((8, 8, 1)))
    base = rng.uniform(0.3, 0.6) + 0.08 * blocks + 0.05 * rng.normal(size=(size, size, 3))
    r = rng.uniform(0.07, 0.14) * size
    cy, cx = rng.uniform(r + 2, size - r - 2, size=2)
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    colour = np.eye(3)[rng.integers(3)] * 0.7 + 0.3 * rng.uniform(size=3)
    images[i] = np.round(np.clip(np.where(disc[..., None], colour, base), 0, 1) * 255)
    g = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    maps[i] = g / g.max()
    fixations[i].flat[rng.choice(size * size, fixations_per_image, p=(g / g.sum()).ravel())] = 1
  return images, maps, fixations


def write_split(root, images, maps, fixations):
  """PNG folders images/, maps/ (8 bit), fixations/ (0/255) under root; returns their paths."""
  dirs = [os.path.join(root, d) for d in ("images", "maps", "fixations")]
  for d in dirs:
    os.makedirs(d, exist_ok=True)
  for i in range(len(images)):
    Image.fromarray(images[i]).save(os.path.join(dirs[0], f"im{i:03d}.png"))
    Image.fromarray(np.round(maps[i] * 255).astype(np.uint8)).save(
        os.path.join(dirs[1], f"im{i:03d}.png"))
    Image.fromarray(fixations[i].astype(np.uint8) * 255).save(
        os.path.join(dirs[2], f"im{i:03d}.png"))
  return dirs


def run_cli(argv, capsys):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


# ---------------------------------------------------------------- metrics


def test_metrics_match_pysaliency_fixture():
  inputs = np.load(os.path.join(FIXTURES, "maps.npz"))
  with open(os.path.join(FIXTURES, "expected.json")) as f:
    expected = json.load(f)
  assert expected["source"].startswith("pysaliency")
  per_image = {k: [] for k in evaluation.METRICS}
  for pred, target, fix in zip(inputs["predictions"], inputs["targets"], inputs["fixations"]):
    for name, value in evaluation.image_metrics(pred, target, fix).items():
      per_image[name].append(value)
  for name in evaluation.METRICS:
    np.testing.assert_allclose(per_image[name], expected["per_image"][name], rtol=1e-9,
                               atol=1e-12, err_msg=name)
  # pysaliency's dataset AUC-Judd / NSS with average='image' = the mean of the per-image values.
  for name in ("auc_judd", "nss"):
    np.testing.assert_allclose(np.mean(per_image[name]), expected["dataset"][name], rtol=1e-9)
  # Jitter only matters where values tie: the tie-free maps agree with pysaliency's default.
  np.testing.assert_allclose(per_image["auc_judd"][0], expected["per_image"]["auc_judd_jitter"][0],
                             rtol=1e-9)


def test_metrics_hand_computed():
  s = np.array([[0.9, 0.1], [0.5, 0.2]])
  f = np.array([[1, 0], [0, 1]])
  # Thresholds 0.9 -> (fp 0, hit 1/2), 0.2 -> (fp 1/2, hit 1): area 0.5 * 0.75 + 0.5 * 1.
  assert evaluation.auc_judd(s, f) == pytest.approx(0.875)
  std = np.sqrt(np.mean((s - 0.425) ** 2))
  assert evaluation.nss(s, f) == pytest.approx((0.475 - 0.225) / 2 / std)
  assert evaluation.cc(s, s) == pytest.approx(1.0)
  assert evaluation.cc(s, -s) == pytest.approx(-1.0)
  assert evaluation.cc(np.ones((2, 2)), s) == 0.0
  assert evaluation.sim(s, s) == pytest.approx(1.0)
  assert evaluation.sim([[1.0, 0.0]], [[0.0, 1.0]]) == 0.0
  assert evaluation.kld(s, s) == pytest.approx(0.0, abs=1e-12)
  assert evaluation.kld([[1.0, 1.0]], [[1.0, 0.0]]) == pytest.approx(np.log(2.0))
  perfect = np.array([[1.0, 0.0], [0.0, 1.0]])
  assert evaluation.auc_judd(perfect, f) == pytest.approx(1.0)
  # Fixated values are the only thresholds: the lowest map gives one point (1, 1), area 1/2.
  assert evaluation.auc_judd(1 - perfect, f) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="no fixated"):
    evaluation.auc_judd(s, np.zeros((2, 2)))
  with pytest.raises(ValueError, match="shapes differ"):
    evaluation.cc(s, np.ones((3, 2)))


def test_losses_agree_with_metrics_and_have_gradients():
  inputs = np.load(os.path.join(FIXTURES, "maps.npz"))
  target = inputs["targets"][:2].astype(np.float32)
  fix = inputs["fixations"][:2]
  logits = jnp.asarray(np.log(inputs["predictions"][:2] + 0.05), jnp.float32)
  log_p = jax.nn.log_softmax(logits.reshape(2, -1), -1).reshape(logits.shape)
  p = np.exp(np.asarray(log_p, np.float64))

  def loss(logits, fix):
    lp = jax.nn.log_softmax(logits.reshape(2, -1), -1).reshape(logits.shape)
    total, parts = losses.combined(lp, target, fix, weights_)
    return total, (parts, losses.kl(lp, target), losses.cc(lp, target), losses.nss(lp, fix))

  weights_ = losses.parse_weights("kl=1,cc=0.5,nss=0.1")
  grad_fn = jax.jit(jax.grad(loss, has_aux=True))
  grad, (_, kl, cc, nss) = grad_fn(logits, fix)
  for k in range(2):
    assert float(kl[k]) == pytest.approx(evaluation.kld(p[k], target[k]), rel=1e-4)
    assert float(cc[k]) == pytest.approx(evaluation.cc(p[k], target[k]), abs=1e-4)
    assert float(nss[k]) == pytest.approx(evaluation.nss(p[k], fix[k]), abs=1e-4)
  assert weights_ == {"kl": 1.0, "cc": 0.5, "nss": 0.1}
  assert losses.parse_weights("kl+cc") == {"kl": 1.0, "cc": 1.0}
  for bad in ("kl=x", "foo", "kl=-1", "kl=0", ""):
    with pytest.raises(ValueError):
      losses.parse_weights(bad)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) > 0
  # No fixations anywhere: NSS term 0, no NaN (same compiled function).
  grad, (parts, _, _, nss) = grad_fn(logits, np.zeros_like(fix))
  assert float(parts["nss"]) == 0.0 and np.all(np.asarray(nss) == 0)
  assert np.all(np.isfinite(grad))


# ---------------------------------------------------------------- interface, maps, files


def test_builtin_models_interface():
  images, _, _ = synthetic(1, seed=5)
  x = jnp.asarray(images, jnp.float32) / 255.0
  model = saliency.load("sdsp")
  assert model.name == "sdsp" and model.params is None
  out = model(x)
  assert out.shape == (1, SIZE, SIZE) and out.dtype == jnp.float32
  np.testing.assert_array_equal(out, saliency.sdsp(x))
  np.testing.assert_array_equal(saliency.saliency(x), out)
  centre = saliency.load("centre")
  assert centre.name == "centre" and centre.params is None
  c = jax.jit(centre.apply)(None, jnp.zeros((2, 40, 36, 3)))
  assert c.shape == (2, 40, 36) and float(c.min()) == 0.0 and float(c.max()) == 1.0
  assert float(c[0, 20, 18]) > float(c[0, 0, 0])
  assert centre(jnp.zeros((1, 1, 1, 3))).shape == (1, 1, 1)
  for m in (out, c):
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
    model(jnp.zeros((2, 8, 8)))


def test_load_errors(tmp_path):
  with pytest.raises(UserError, match="unknown saliency model"):
    saliency.load("nope")
  with pytest.raises(UserError, match="weights folder"):
    saliency.load("learned:")
  with pytest.raises(UserError, match="does not exist"):
    saliency.load(f"learned:{tmp_path / 'absent'}")
  with pytest.raises(UserError, match="saliency.json: missing"):
    saliency.load(str(tmp_path))
  (tmp_path / "saliency.json").write_text("{not json")
  with pytest.raises(UserError, match="not JSON"):
    saliency.load(f"learned:{tmp_path}")
  (tmp_path / "saliency.json").write_text(json.dumps({"format": "other"}))
  with pytest.raises(UserError, match="not a jaxcomp-saliency-learned file"):
    saliency.load(str(tmp_path))


def test_validate_maps():
  ok = saliency.validate_maps(np.full((2, 4, 5), 0.5), (2, 4, 5, 3))
  assert ok.dtype == np.float32 and ok.shape == (2, 4, 5)
  np.testing.assert_array_equal(saliency.validate_maps([[1.0 + 1e-6, -1e-6]], (1, 2)), [[1, 0]])
  with pytest.raises(UserError, match=r"shape \(2, 4, 5\) does not match the expected \(2, 4, 6\)"):
    saliency.validate_maps(np.zeros((2, 4, 5)), (2, 4, 6))
  with pytest.raises(UserError, match=r"\[B, H, W\] or \[H, W\]"):
    saliency.validate_maps(np.zeros((1, 2, 4, 5)))
  with pytest.raises(UserError, match="NaN or infinite"):
    saliency.validate_maps(np.array([[0.5, np.nan]]))
  with pytest.raises(UserError, match=r"in \[0, 1\].*divide by 255"):
    saliency.validate_maps(np.array([[0, 255]], np.uint8))
  with pytest.raises(UserError, match=r"in \[0, 1\], got \[-0.5"):
    saliency.validate_maps(np.array([[-0.5, 0.5]]))
  with pytest.raises(UserError, match="empty"):
    saliency.validate_maps(np.zeros((0, 3)))


def test_read_map_bit_depths(tmp_path):
  values = np.array([[0, 128, 255]], np.uint8)
  Image.fromarray(values).save(tmp_path / "a.png")
  np.testing.assert_allclose(saliency.read_map(tmp_path / "a.png"), values / 255.0, atol=1e-7)
  wide = np.array([[0, 32768, 65535]], np.uint16)
  Image.fromarray(wide).save(tmp_path / "b.png")
  assert Image.open(tmp_path / "b.png").mode.startswith("I")
  np.testing.assert_allclose(saliency.read_map(tmp_path / "b.png"), wide / 65535.0, atol=1e-7)
  Image.fromarray(np.array([[True, False]])).save(tmp_path / "c.png")
  np.testing.assert_array_equal(saliency.read_map(tmp_path / "c.png"), [[1, 0]])
  Image.fromarray(np.stack([values] * 3, -1)).save(tmp_path / "gray_rgb.jpg", quality=100)
  assert saliency.read_map(tmp_path / "gray_rgb.jpg", size=(1, 3)).shape == (1, 3)
  with pytest.raises(UserError, match=r"shape \(1, 3\) does not match the expected \(3, 1\)"):
    saliency.read_map(tmp_path / "a.png", size=(3, 1))
  colour = np.zeros((1, 3, 3), np.uint8)
  colour[..., 0] = 200
  Image.fromarray(colour).save(tmp_path / "colour.png")
  with pytest.raises(UserError, match="must be grayscale"):
    saliency.read_map(tmp_path / "colour.png")
  (tmp_path / "junk.png").write_bytes(b"not a png")
  with pytest.raises(UserError, match="cannot read saliency map"):
    saliency.read_map(tmp_path / "junk.png")


def test_dataset_pairing_and_errors(tmp_path):
  images, maps, fixations = synthetic(3, seed=3, size=16)
  img_dir, map_dir, fix_dir = write_split(tmp_path / "ok", images, maps, fixations)
  samples = data.pair_files(img_dir, map_dir, fix_dir)
  assert [s.stem for s in samples] == ["im000", "im001", "im002"]
  ds = data.load_resized(samples, 32)
  assert ds.images.shape == (3, 32, 32, 3) and ds.maps.shape == (3, 32, 32)
  # Each fixated pixel survives resizing (16 -> 32 maps pixels one to one).
  assert ds.fixations.sum() == fixations.sum()
  os.makedirs(tmp_path / "empty")
  with pytest.raises(UserError, match="empty saliency dataset"):
    data.pair_files(tmp_path / "empty", map_dir)
  os.remove(os.path.join(map_dir, "im001.png"))
  with pytest.raises(UserError, match="have no maps.*im001"):
    data.pair_files(img_dir, map_dir)
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(map_dir, "im001.jpg"))
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(map_dir, "extra.png"))
  with pytest.raises(UserError, match="have no image.*extra"):
    data.pair_files(img_dir, map_dir)
  os.remove(os.path.join(map_dir, "extra.png"))
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(map_dir, "im001.png"))
  with pytest.raises(UserError, match="appears twice"):
    data.pair_files(img_dir, map_dir)
  os.remove(os.path.join(map_dir, "im001.png"))
  Image.fromarray(np.zeros((12, 16), np.uint8)).save(os.path.join(map_dir, "im001.jpg"))
  with pytest.raises(UserError, match="map is 16x12 but its image .* is 16x16"):
    data.load_resized(data.pair_files(img_dir, map_dir), 32)
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(os.path.join(fix_dir, "im000.png"))
  with pytest.raises(UserError, match="no fixated pixel"):
    data.load_sample(data.pair_files(img_dir, map_dir, fix_dir)[0])


# ---------------------------------------------------------------- learned model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A learned model trained with the CLI (random VGG16) on 48 synthetic images; 16 held out."""
  root = tmp_path_factory.mktemp("saliency")
  train_dirs = write_split(root / "train", *synthetic(48, seed=1))
  val_dirs = write_split(root / "val", *synthetic(16, seed=2))
  out = root / "model"
  code = cli.main(["saliency", "train", "--images", train_dirs[0], "--maps", train_dirs[1],
                   "--fixations", train_dirs[2], "--out", str(out), "--size", str(SIZE),
                   "--steps", "40", "--batch", "8", "--lr", "3e-3", "--backbone", "random",
                   "--log-every", "10", "--logdir", str(root / "tb"), "--val-images",
                   val_dirs[0], "--val-maps", val_dirs[1], "--val-fixations", val_dirs[2]])
  assert code == 0
  return {"root": root, "train": train_dirs, "val": val_dirs, "out": out}


@pytest.mark.slow
def test_training_lowers_loss_and_writes_weights(trained):
  with open(trained["out"] / "saliency.json") as f:
    record = json.load(f)
  assert record["format"] == learned.FORMAT
  assert record["config"]["backbone"] == "random:0" and record["config"]["input_size"] == SIZE
  meta = record["meta"]
  assert meta["final_loss"] < meta["first_loss"] - 0.3, meta
  assert meta["feature_cache"] and meta["n_train"] == 48
  assert meta["n_val"] == 16 and set(meta["val_metrics"]) == set(evaluation.METRICS)
  assert sorted(os.listdir(trained["out"])) == ["saliency.json", "saliency.safetensors"]
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(trained["root"] / "tb"))


@pytest.mark.slow
def test_learned_beats_centre_prior_on_held_out(trained, capsys):
  val = trained["val"]
  code, out, _ = run_cli(["saliency", "eval", "--model", f"sdsp,centre,learned:{trained['out']}",
                          "--images", val[0], "--maps", val[1], "--fixations", val[2], "--json"],
                         capsys)
  assert code == 0
  lines = out.strip().splitlines()
  assert lines[0].split()[:3] == ["model", "AUC-Judd", "CC"]
  result = json.loads(lines[-1])
  assert result["n"] == 16 and result["fixations"] is True
  learned_ = result["results"][f"learned:{trained['out']}"]
  centre = result["results"]["centre"]
  print(json.dumps(result["results"], indent=1))  # figures for the report (pytest -s)
  assert learned_["cc"] > centre["cc"] + 0.3
  assert learned_["auc_judd"] > centre["auc_judd"] + 0.08
  assert learned_["nss"] > centre["nss"] + 0.8
  assert learned_["sim"] > centre["sim"] + 0.15
  assert learned_["kld"] < centre["kld"] - 0.5


@pytest.mark.slow
def test_learned_weights_round_trip_and_interface(trained, tmp_path):
  model = saliency.load(f"learned:{trained['out']}")
  assert model.name == f"learned:{os.path.normpath(trained['out'])}"
  again = saliency.load(str(trained["out"]))
  images, _, _ = synthetic(1, seed=9)
  x = jnp.asarray(images, jnp.float32) / 255.0
  out = model(x)
  assert out.shape == (1, SIZE, SIZE) and float(out.min()) == 0.0 and float(out.max()) == 1.0
  np.testing.assert_array_equal(again(x), out)
  # Any size: the model works at its 64 x 64 and resizes the map back.
  small = model.apply(model.params, x[:, 10:13, 20:25])
  assert small.shape == (1, 3, 5) and float(small.min()) == 0.0 and float(small.max()) == 1.0
  # Save / load keeps every tensor; a changed tensor shape or NaN is refused.
  params, config, meta = learned.load(trained["out"])
  learned.save(tmp_path / "copy", params, config, meta)
  np.testing.assert_array_equal(saliency.load(str(tmp_path / "copy"))(x), out)
  from safetensors.numpy import load_file, save_file  # pylint: disable=g-import-not-at-top
  tensors = load_file(str(tmp_path / "copy" / learned.WEIGHTS_FILE))
  bad = dict(tensors, **{"logits/bias": np.full((1,), np.nan, np.float32)})
  save_file(bad, str(tmp_path / "copy" / learned.WEIGHTS_FILE))
  with pytest.raises(UserError, match="NaN"):
    learned.load(tmp_path / "copy")
  bad = dict(tensors, **{"logits/bias": np.zeros((2,), np.float32)})
  save_file(bad, str(tmp_path / "copy" / learned.WEIGHTS_FILE))
  with pytest.raises(UserError, match=r"wrong shape \['logits/bias'\]"):
    learned.load(tmp_path / "copy")


@pytest.mark.slow
def test_predict_cli(trained, tmp_path, capsys):
  image = os.path.join(trained["val"][0], "im000.png")
  for spec in ("sdsp", str(trained["out"])):
    out = tmp_path / f"map_{len(spec)}.png"
    code, stdout, _ = run_cli(["saliency", "predict", "--model", spec, image, out], capsys)
    assert code == 0 and "wrote" in stdout
    smap = saliency.read_map(out, size=(SIZE, SIZE))
    assert smap.max() == 1.0 and smap.min() == 0.0


@pytest.mark.slow
def test_cli_bad_inputs_exit_2_one_line(trained, tmp_path, capsys):
  train, val = trained["train"], trained["val"]
  os.makedirs(tmp_path / "empty")
  mismatched = write_split(tmp_path / "mm", *synthetic(1, seed=4, size=16))
  Image.fromarray(np.zeros((8, 16), np.uint8)).save(os.path.join(mismatched[1], "im000.png"))
  cases = [
      (["saliency", "eval", "--images", tmp_path / "empty", "--maps", val[1]],
       "empty saliency dataset"),
      (["saliency", "eval", "--images", val[0], "--maps", train[1]], "have no image"),
      (["saliency", "eval", "--images", mismatched[0], "--maps", mismatched[1]],
       "map is 16x8 but its image"),
      (["saliency", "eval", "--model", "nope", "--images", val[0], "--maps", val[1]],
       "unknown saliency model"),
      (["saliency", "predict", "--model", tmp_path / "empty", os.path.join(val[0], "im000.png"),
        tmp_path / "o.png"], "saliency.json: missing"),
      (["saliency", "predict", os.path.join(val[0], "im000.png"), tmp_path / "o.bmp"],
       "must end in .png"),
      (["saliency", "train", "--images", val[0], "--maps", val[1], "--out", tmp_path / "w",
        "--loss", "kl=2,xx=1"], "unknown saliency loss"),
      (["saliency", "train", "--images", tmp_path / "empty", "--maps", val[1], "--out",
        tmp_path / "w", "--backbone", "random"], "empty saliency dataset"),
      (["saliency", "train", "--images", val[0], "--maps", val[1], "--out", tmp_path / "w",
        "--size", "8"], "--size must be at least 32"),
  ]
  for argv, message in cases:
    code, _, err = run_cli(argv, capsys)
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
  assert not os.path.exists(tmp_path / "w")


@pytest.mark.slow
@NEEDS_VGG16
def test_learned_with_imagenet_vgg16(trained, tmp_path):
  from jaxcomp.nets import vgg16  # pylint: disable=g-import-not-at-top
  params, config, meta = learned.load(trained["out"])
  config = dict(config, backbone="vgg16")
  learned.save(tmp_path / "w", params, config, meta)
  assert sorted(os.listdir(tmp_path / "w")) == ["saliency.json", "saliency.safetensors"]
  model = saliency.load(f"learned:{tmp_path / 'w'}")
  reference = vgg16.load_params()
  for a, b in zip(jax.tree.leaves(model.params["backbone"]), jax.tree.leaves(reference)):
    np.testing.assert_array_equal(a, b)
