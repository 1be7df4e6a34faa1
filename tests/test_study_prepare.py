"""`jaxcomp study prepare`: matched-rate stimuli from models and anchors, golden pairs, manifest."""

import csv
import math
import os

import numpy as np
from PIL import Image

from coding_models import export_model
from jaxcomp import cli
from jaxcomp.evaluate import anchors
from jaxcomp.study import manifest, prepare


def _images(folder, count=2, size=(80, 72)):
  os.makedirs(folder)
  yy, xx = np.mgrid[0:size[1], 0:size[0]]
  for k in range(count):
    rng = np.random.default_rng(k)
    base = np.stack([xx * 3 + 20 * k, yy * 3, (xx + yy) * 2], -1) % 256
    image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(os.path.join(folder, f"photo {k}.png"))
  return folder


def test_anchor_quality_is_nearest_to_the_target(tmp_path):
  image = np.asarray(Image.open(os.path.join(_images(str(tmp_path / "i"), 1), "photo 0.png")))
  anchor = anchors.get("jpeg-420")
  label, bpp, decoded = prepare.nearest_anchor_quality(anchor, image, 1.0, str(tmp_path))
  assert decoded.shape == image.shape
  quality = int(label[2:])
  for other in (quality - 1, quality + 1):
    if 1 <= other <= 100:
      path = str(tmp_path / "x.jpg")
      anchor.save(image, path, other)
      rate = 8 * os.path.getsize(path) / (image.shape[0] * image.shape[1])
      assert abs(math.log(bpp / 1.0)) <= abs(math.log(rate / 1.0)) + 1e-12


def test_prepare_writes_a_servable_study(tmp_path, capsys):
  images = _images(str(tmp_path / "images"))
  model_a = export_model(tmp_path / "m1")
  model_b = export_model(tmp_path / "m2", calibrated=False)
  out = tmp_path / "study"
  argv = ["study", "prepare", "--images", images, "--model", f"mse={model_a},{model_b}",
          "--anchors", "jpeg-420,webp", "--rates", "low=2,high=3", "--crop", "64x48",
          "--out", str(out), "--trials-per-subject", "4", "--golden-every", "2"]
  assert cli.main(argv) == 0
  study, folder = manifest.load(str(out))
  assert [s["id"] for s in study["scenes"]] == [
      "photo_0@low", "photo_0@high", "photo_1@low", "photo_1@high"]
  assert study["stimulus_size"] == [64, 48] and study["design"]["name"] == "adjacent"
  for scene in study["scenes"]:
    assert sorted(scene["conditions"]) == ["jpeg-420", "mse", "webp"]
    for path in scene["conditions"].values():
      with Image.open(os.path.join(folder, path)) as img:
        assert img.format == "PNG" and img.size == (64, 48)
  assert len(study["golden"]) == 2 and all(g["expected"] == "original" for g in study["golden"])
  assert len(study["training"]) == 2
  with open(out / "conditions.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 12
  jpeg_low = [r for r in rows if r["condition"] == "jpeg-420" and r["rate"] == "low"]
  assert all(abs(math.log(float(r["bpp"]) / 2.0)) < math.log(1.5) for r in jpeg_low)
  assert {r["point"] for r in rows if r["condition"] == "mse"} <= {model_a, model_b}
  assert "mse" in capsys.readouterr().err


def test_prepare_errors_are_one_line_and_write_nothing(tmp_path, capsys):
  images = _images(str(tmp_path / "images"), 1, size=(32, 32))
  out = tmp_path / "study"
  assert cli.main(["study", "prepare", "--images", images, "--anchors", "jpeg-420,webp",
                   "--crop", "64x48", "--out", str(out)]) == 2
  assert "smaller than the crop" in capsys.readouterr().err
  assert cli.main(["study", "prepare", "--images", images, "--anchors", "jpeg-420",
                   "--crop", "16x16", "--out", str(out)]) == 2
  assert "at least two" in capsys.readouterr().err
  assert cli.main(["study", "prepare", "--images", images, "--rates", "low",
                   "--out", str(out)]) == 2
  assert not out.exists()
