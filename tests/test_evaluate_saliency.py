"""Rate maps and salient-region statistics: `jaxcomp.codec.ratemap`, `jaxcomp eval --saliency`."""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name

import json
import os

import numpy as np
import pytest
from PIL import Image

from coding_models import fixture_image, state_dict
from jaxcomp import cli, saliency
from jaxcomp.codec import compressai_import, export, models, padding, ratemap
from jaxcomp.coding import compression, container
from jaxcomp.evaluate import results, saliency_stats
from jaxcomp.saliency import sdsp


@pytest.fixture(autouse=True)
def _only_evaluate_commands(monkeypatch):
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.evaluate.cli",))


@pytest.fixture(scope="module")
def loaded(hyperprior_dir):
  model, variables, _ = export.load(hyperprior_dir)
  return model, variables


@pytest.mark.slow
def test_rate_map_sums_to_the_model_rate_and_to_the_file(loaded, hyperprior):
  model, variables = loaded
  image = fixture_image("kite_96x80.png")[:64, :64]
  out = model.apply(variables, image[None].astype(np.float32) / 255.0, training=False)
  maps = ratemap.latent_rate_maps(out["likelihoods"], (64, 64))
  total = float(models.rate_bits(out["likelihoods"])[0])
  assert maps["y"].shape == maps["z"].shape == (1, 64, 64)
  assert float(np.sum(maps["y"]) + np.sum(maps["z"])) == pytest.approx(total, rel=1e-5)
  for name, block in (("y", 16), ("z", 64)):
    bits = -np.log2(np.asarray(out["likelihoods"][name], np.float64)).sum(-1)
    assert float(np.sum(maps[name])) == pytest.approx(float(bits.sum()), rel=1e-5)
    # Constant over each latent's block.
    m = np.asarray(maps[name])[0]
    assert np.allclose(m, np.repeat(np.repeat(m[::block, ::block], block, 0), block, 1))
  convenience = ratemap.model_rate_map(model, variables, image)
  assert convenience.shape == (64, 64)
  np.testing.assert_allclose(convenience, np.asarray(maps["y"] + maps["z"])[0], rtol=1e-5)
  # The model's estimate is the real bitstream's size (within the coder's 1%, header excluded).
  real = 8 * (len(compression.compress(hyperprior, image[None])[0]) - container.OVERHEAD_BYTES)
  assert abs(real - convenience.sum()) <= 0.01 * convenience.sum()


def test_rate_map_crops_the_padding_like_x_hat():
  rng = np.random.default_rng(0)
  height, width = 70, 150  # padded to 128 x 192, top/left padding 29 / 21
  (top, _), (left, _) = padding.padding_for(height, width)
  likelihoods = {"y": rng.uniform(0.01, 1.0, (2, 8, 12, 5)).astype(np.float32),
                 "z": rng.uniform(0.01, 1.0, (2, 2, 3, 4)).astype(np.float32)}
  maps = ratemap.latent_rate_maps(likelihoods, (height, width))
  rows = np.arange(height)[:, None] + top
  cols = np.arange(width)[None, :] + left
  for name, block in (("y", 16), ("z", 64)):
    bits = -np.log2(likelihoods[name].astype(np.float64)).sum(-1)
    expected = bits[:, rows // block, cols // block] / block**2
    np.testing.assert_allclose(np.asarray(maps[name]), expected, rtol=1e-5)
  total = ratemap.rate_map(likelihoods, (height, width))
  np.testing.assert_allclose(np.asarray(total), np.asarray(maps["y"] + maps["z"]), rtol=1e-6)
  # Bits over the padding are dropped: less than the total, more than none.
  all_bits = np.asarray(models.rate_bits(likelihoods))
  assert np.all(np.asarray(total).sum(axis=(1, 2)) < all_bits)
  with pytest.raises(ValueError, match="do not tile"):
    ratemap.rate_map({"y": likelihoods["y"]}, (200, 150))


def test_salient_region_is_an_exact_quantile_with_central_ties():
  saliency = np.linspace(0.0, 1.0, 8 * 10).reshape(8, 10)
  region = saliency_stats.salient_region(saliency, 0.25)
  assert region.sum() == 20 and region[-2:].all() and not region[:-2].any()
  flat = saliency_stats.salient_region(np.zeros((9, 9)), 1 / 81)
  assert flat.sum() == 1 and flat[4, 4]
  binary = np.zeros((10, 10))
  binary[:, :5] = 1.0
  half = saliency_stats.salient_region(binary, 0.2)
  assert half.sum() == 20 and not half[:, 5:].any()
  assert half[4:6, 4].all()  # the positives nearest the centre come first
  assert saliency_stats.salient_region(binary, 0.999).sum() == 99
  for bad in (0.0, 1.0, -0.5):
    with pytest.raises(ValueError, match="within"):
      saliency_stats.salient_region(saliency, bad)


def test_region_statistics_by_hand():
  original = np.zeros((4, 4, 3), np.uint8)
  decoded = original.copy()
  decoded[:2] = 51  # error 0.2 inside (top half), 0 outside
  decoded[2:, :, 0] = 255  # error 1 in one channel of three outside
  region = np.zeros((4, 4), bool)
  region[:2] = True
  quality = saliency_stats.quality(original, decoded, region)
  assert quality["psnr_salient"] == pytest.approx(10 * np.log10(1 / 0.04))
  assert quality["psnr_nonsalient"] == pytest.approx(10 * np.log10(3.0))
  rate = np.ones((4, 4))
  rate[:2] = 3.0
  stats = saliency_stats.rates(rate, region)
  assert stats == pytest.approx({"salient_bits_share": 0.75, "bpp_salient": 3.0,
                                 "bpp_nonsalient": 1.0})


@pytest.fixture(scope="module")
def saliency_input_dir(tmp_path_factory):
  """The 16/24 test model with a fourth g_a input channel (the sdsp map), exported."""
  variables, n, m = compressai_import.convert(
      "bmshj2018-hyperprior", state_dict("bmshj2018-hyperprior", 16, 24))
  kernel = np.asarray(variables["params"]["g_a"]["layer_0"]["kernel"])
  extra = np.random.default_rng(0).normal(0, 10 * kernel.std(), kernel.shape[:2] + (1, n))
  variables["params"]["g_a"]["layer_0"]["kernel"] = np.concatenate(
      [kernel, extra.astype(np.float32)], axis=2)
  path = str(tmp_path_factory.mktemp("models") / "saliency_input")
  export.save(path, "bmshj2018-hyperprior", n, m, variables,
              saliency={"model": "sdsp", "input": True, "hyper_input": False})
  return path


@pytest.mark.slow
def test_model_rate_map_takes_the_encoders_saliency(saliency_input_dir, tmp_path, capsys):
  model, variables, _ = export.load(saliency_input_dir)
  image = fixture_image("kite_96x80.png")[:64, :64]
  with pytest.raises(ValueError, match="takes a saliency map"):
    ratemap.model_rate_map(model, variables, image)
  encoder_map = np.asarray(sdsp(image[None].astype(np.float32) / 255.0))
  with_map = ratemap.model_rate_map(model, variables, image, encoder_map)
  without = ratemap.model_rate_map(model, variables, image, np.zeros_like(encoder_map))
  assert abs(with_map.sum() - without.sum()) > 1e-3 * with_map.sum()
  # jaxcomp eval gives the model its own saliency model's map (here sdsp, as in model.json),
  # whatever --saliency defines the region with.
  folder = tmp_path / "images"
  folder.mkdir()
  Image.fromarray(image).save(folder / "a.png")
  out = tmp_path / "r.json"
  assert cli.main(["eval", "--model", saliency_input_dir, "--images", str(folder), "--out",
                   str(out), "--metrics", "psnr", "--saliency", "centre"]) == 0
  capsys.readouterr()
  table = json.loads(out.read_text())["per_image"]["a.png"]
  region = saliency_stats.salient_region(
      np.asarray(saliency.load("centre")(image[None].astype(np.float32) / 255.0))[0])
  expected = saliency_stats.rates(with_map, region)
  for key, value in expected.items():
    assert table[key][0] == pytest.approx(value, rel=1e-5), key


def _write_images(folder):
  folder.mkdir()
  kite = fixture_image("kite_96x80.png")
  Image.fromarray(kite[:64, :64]).save(folder / "a.png")
  Image.fromarray(kite[8:72, 4:84]).save(folder / "b.png")  # 64 x 80: padded
  return {"a.png": kite[:64, :64], "b.png": kite[8:72, 4:84]}


@pytest.mark.slow
def test_eval_saliency_with_model_and_anchor(tmp_path, capsys, hyperprior, hyperprior_dir,
                                             loaded):
  originals = _write_images(tmp_path / "images")
  out, maps = tmp_path / "r.json", tmp_path / "maps"
  assert cli.main(["eval", "--model", hyperprior_dir, "--name", "tiny", "--images",
                   str(tmp_path / "images"), "--out", str(out), "--anchors", "webp",
                   "--anchor-qualities", "30,80", "--metrics", "psnr", "--saliency", "sdsp",
                   "--salient-fraction", "0.3", "--rate-maps", str(maps)]) == 0
  stdout = capsys.readouterr().out
  assert "tiny: salient 30% of the pixels (sdsp), per point: bits share" in stdout
  assert "webp: salient 30% of the pixels (sdsp), per point: PSNR inside" in stdout
  document = json.loads(out.read_text())
  assert document["salient_region"] == {"saliency": "sdsp", "fraction": 0.3}
  model, variables = loaded
  for name, original in originals.items():
    table = document["per_image"][name]
    assert set(saliency_stats.KEYS) <= set(table)
    region = saliency_stats.salient_region(
        np.asarray(sdsp(original[None].astype(np.float32) / 255.0))[0], 0.3)
    rate = ratemap.model_rate_map(model, variables, original)
    expected = saliency_stats.rates(rate, region)
    for key, value in expected.items():
      assert table[key][0] == pytest.approx(value, rel=1e-4), key
    decoded = compression.decompress(hyperprior,
                                     compression.compress(hyperprior, original[None])[0])
    expected = saliency_stats.quality(original, decoded, region)
    for key, value in expected.items():
      assert table[key][0] == pytest.approx(value, abs=1e-6), key
    assert 0.0 < table["salient_bits_share"][0] < 1.0
    overlay = maps / "tiny" / f"{name[:-4]}.p0.png"
    assert Image.open(overlay).format == "PNG"
  assert document["results"]["psnr_salient"] == [pytest.approx(np.mean(
      [document["per_image"][n]["psnr_salient"][0] for n in originals]))]
  webp = json.loads((tmp_path / "r.webp.json").read_text())
  assert set(webp["results"]) == {"bpp", "psnr-rgb", "psnr_salient", "psnr_nonsalient",
                                  "encoding_time", "decoding_time"}
  assert webp["per_image"]["a.png"]["psnr_salient"][1] > webp["per_image"]["a.png"][
      "psnr_salient"][0]
  assert not (maps / "webp").exists()  # anchors have no rate map
  # The bit keys are not qualities; the region PSNRs are.
  assert "psnr_salient" in results.quality_keys(document)
  assert not set(saliency_stats.RATE_KEYS) & set(results.quality_keys(document))


def test_eval_saliency_from_maps_folder(tmp_path, capsys):
  originals = _write_images(tmp_path / "images")
  maps = tmp_path / "gt"
  maps.mkdir()
  # a: the right half is salient (8-bit PNG); b: a float map, the bottom rows most salient.
  left_right = np.zeros((64, 64), np.uint8)
  left_right[:, 32:] = 255
  Image.fromarray(left_right).save(maps / "a.png")
  np.save(maps / "b.npy", np.linspace(0, 1, 64)[:, None].repeat(80, 1).astype(np.float32))
  out = tmp_path / "r.json"
  assert cli.main(["eval", "--images", str(tmp_path / "images"), "--out", str(out), "--anchors",
                   "webp", "--anchor-qualities", "50", "--metrics", "psnr", "--saliency",
                   str(maps), "--salient-fraction", "0.5"]) == 0
  capsys.readouterr()
  document = json.loads(out.read_text())
  assert document["salient_region"]["saliency"] == f"maps in {maps}"
  decoded = np.asarray(Image.open(_webp(tmp_path, originals["a.png"], 50)).convert("RGB"))
  region = np.zeros((64, 64), bool)
  region[:, 32:] = True
  expected = saliency_stats.quality(originals["a.png"], decoded, region)
  table = document["per_image"]["a.png"]
  assert table["psnr_salient"][0] == pytest.approx(expected["psnr_salient"], abs=1e-6)
  assert table["psnr_nonsalient"][0] == pytest.approx(expected["psnr_nonsalient"], abs=1e-6)


def _webp(tmp_path, image, quality):
  path = str(tmp_path / "x.webp")
  Image.fromarray(image).save(path, quality=quality)
  return path


def test_eval_bad_saliency_maps(tmp_path, capsys):
  _write_images(tmp_path / "images")
  out = tmp_path / "r.json"

  def maps(name, a, b):
    folder = tmp_path / name
    folder.mkdir()
    for stem, array in (("a", a), ("b", b)):
      if array is not None:
        np.save(folder / f"{stem}.npy", array)
    return str(folder)

  good_a, good_b = np.zeros((64, 64), np.float32), np.zeros((64, 80), np.float32)
  nan = good_b.copy()
  nan[3, 3] = np.nan
  cases = [
      (maps("size", good_a, np.zeros((80, 64), np.float32)),
       "shape (80, 64) does not match the expected (64, 80)"),
      (maps("range", good_a, good_b + 1.5), "values must be in [0, 1], got [1.5, 1.5]"),
      (maps("nan", good_a, nan), "NaN or infinite"),
      (maps("missing", good_a, None), "no saliency map for b.png"),
      (maps("ints", good_a, np.zeros((64, 80), np.int32)), "must be a float array"),
      (str(tmp_path / "images" / "a.png"), "not a saliency model nor a folder"),
      ("nonsense", "unknown saliency model 'nonsense'"),
  ]
  png = maps("png", None, good_b)
  Image.fromarray(np.zeros((32, 32), np.uint8)).save(os.path.join(png, "a.png"))
  cases.append((png, "shape (32, 32) does not match the expected (64, 64)"))
  for spec, message in cases:
    argv = ["eval", "--images", str(tmp_path / "images"), "--out", str(out), "--anchors", "webp",
            "--metrics", "psnr", "--saliency", spec]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (spec, err)
    assert not out.exists()
  for argv, message in (
      (["--saliency", "sdsp", "--salient-fraction", "1.5"], "within (0, 1)"),
      (["--salient-fraction", "0.5"], "needs --saliency"),
      (["--saliency", "sdsp", "--rate-maps", str(tmp_path / "images" / "a.png")], "not a folder")):
    assert cli.main(["eval", "--images", str(tmp_path / "images"), "--out", str(out),
                     "--anchors", "webp", "--metrics", "psnr", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
