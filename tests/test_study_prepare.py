"""`jaxcomp study prepare`: matched-rate stimuli from models and anchors, golden pairs, manifest."""

import csv
import json
import math
import os
import re

import numpy as np
from PIL import Image
import pytest

from coding_models import export_model
from jaxcomp import cli
from jaxcomp.codec import export
from jaxcomp.errors import UserError
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
  model_b = export_model(tmp_path / "m2", M=32)  # decodes differently from model_a
  out = tmp_path / "study"
  argv = ["study", "prepare", "--images", images, "--model", f"mse={model_a},{model_b}",
          "--anchors", "jpeg-420,webp", "--rates", "low=2,high=3", "--crop", "64x48",
          "--out", str(out), "--trials-per-subject", "4", "--golden-every", "2",
          "--rate-tolerance", "1"]  # the tiny models reach 0.67 and 0.83 bpp
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


def test_parse_model_by_rate_point_or_as_a_set():
  assert prepare.parse_model("mse=a,zoo:b") == ("mse", ["a", "zoo:b"], None)
  assert prepare.parse_model("mse=low:zoo:b,high:runs/x") == (
      "mse", ["zoo:b", "runs/x"], ["low", "high"])
  for spec, message in (("mse=low:a,b", "every model as LABEL:DIR or none"),
                        ("mse=low:a,low:b", "rate low given twice"),
                        ("mse=low:a,high:a", "one model (a) for two rates (low, high)"),
                        ("mse=", "expected NAME=")):
    with pytest.raises(UserError, match=re.escape(message)):
      prepare.parse_model(spec)


def test_assign_gives_distinct_stimuli_in_rate_order():
  # Both targets are nearest to the 1.9 bpp point: the lower rate gets the lower point.
  assert prepare.assign([(0.7, "a"), (1.9, "b")], [("low", 2.0), ("high", 3.0)]) == {
      "low": 0, "high": 1}
  # Rates given high first still get files in rate order; the 3.1 point serves high.
  assert prepare.assign([(1.0, "a"), (2.1, "b"), (3.1, "c")], [("high", 3.0), ("low", 2.0)]) == {
      "high": 2, "low": 1}
  # Two points decoding to the same pixels ("a") never serve two rates.
  assert prepare.assign([(1.0, "a"), (2.0, "a"), (5.0, "c")], [("low", 1.0), ("high", 2.0)]) in (
      {"low": 0, "high": 2}, {"low": 1, "high": 2})
  assert prepare.assign([(1.0, "a"), (2.0, "a")], [("low", 1.0), ("high", 2.0)]) is None


@pytest.fixture(scope="module")
def rate_models(tmp_path_factory):
  """(images folder, low model, high model): test models at about 0.67 and 0.83 bpp on the
  64x48 crops; the low one's model.json carries a training record."""
  root = tmp_path_factory.mktemp("rate_models")
  low, high = export_model(root / "low"), export_model(root / "high", M=32)
  path = os.path.join(low, export.CONFIG_FILE)
  with open(path, encoding="utf-8") as f:
    config = json.load(f)
  config["training"] = {"distortion": "mse", "lambda": 0.0018, "quality": 1, "init_from": None,
                        "init_fingerprint": None, "steps": 7, "num_train_steps": 7}
  with open(path, "w", encoding="utf-8") as f:
    json.dump(config, f)
  return _images(str(root / "images")), low, high


def _match_argv(rate_models, out, anchors_spec, *extra):
  images, low, high = rate_models
  return ["study", "prepare", "--images", images, "--model", f"mse=low:{low},high:{high}",
          "--match-to", "mse", "--anchors", anchors_spec, "--crop", "64x48", "--out", str(out),
          *extra]


def test_match_to_gives_per_image_targets_within_tolerance(rate_models, tmp_path, capsys):
  out = tmp_path / "study"
  assert cli.main(_match_argv(rate_models, out, "webp")) == 0
  assert "within" in capsys.readouterr().out
  study, _ = manifest.load(str(out))
  assert study["rate_matching"] == {"rates": ["low", "high"], "match_to": "mse", "targets": None,
                                    "tolerance": 0.1}
  assert [p["rate"] for p in study["conditions"]["mse"]["points"]] == ["low", "high"]
  assert study["conditions"]["mse"]["points"][0]["training"]["lambda"] == 0.0018
  assert study["conditions"]["mse"]["points"][1]["training"] is None
  assert study["conditions"]["webp"]["kind"] == "anchor"
  for scene in study["scenes"]:
    stimuli = scene["stimuli"]
    assert sorted(stimuli) == ["mse", "webp"]
    assert stimuli["mse"]["bpp"] == pytest.approx(scene["target_bpp"], abs=1e-5)
    assert stimuli["mse"]["deviation"] == 0
    assert abs(stimuli["webp"]["bpp"] / scene["target_bpp"] - 1) <= 0.1
    assert stimuli["webp"]["deviation"] == pytest.approx(
        stimuli["webp"]["bpp"] / scene["target_bpp"] - 1, abs=1e-4)
  by_image = {}
  for scene in study["scenes"]:
    by_image.setdefault(scene["image"], []).append(scene["stimuli"]["webp"]["point"])
  assert all(len(set(points)) == 2 for points in by_image.values())  # no quality for two rates
  with open(out / "conditions.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 8 and {"target_bpp", "bpp", "deviation"} <= set(rows[0])
  for row in rows:
    assert float(row["deviation"]) == pytest.approx(
        float(row["bpp"]) / float(row["target_bpp"]) - 1, abs=1e-3)


def test_stimuli_off_target_are_refused_with_the_list(rate_models, tmp_path, capsys):
  out = tmp_path / "study"
  # At 64x48 a JPEG's header alone is ~1.8 bpp: it cannot come near 0.67 or 0.83 bpp; "copies"
  # has one model twice, one stimulus for two rates.
  low = rate_models[1]
  assert cli.main(_match_argv(rate_models, out, "jpeg-420,webp", "--model",
                              f"copies={low},{low}")) == 2
  err = capsys.readouterr().err.splitlines()
  listed = err[err.index(next(l for l in err if l.startswith("refused:"))) + 1:-1]
  assert listed[0] == "  photo_0 copies: only 1 distinct stimuli for 2 rates"
  assert re.fullmatch(r"  photo_0 low jpeg-420: 1\.\d{4} bpp, target 0\.6\d{3}, \+1\d\d\.\d% "
                      r"\(q=\d+\)", listed[1]), listed[1]
  assert len(listed) == 6 and all("%" in l for l in listed if " jpeg-420: " in l)
  assert {l.split()[0] + " " + l.split()[1] for l in listed if " jpeg-420: " in l} == {
      "photo_0 low", "photo_0 high", "photo_1 low", "photo_1 high"}
  assert err[-1].startswith("error: 4 stimuli outside ±10% of their image's target and 2 "
                            "conditions without distinct stimuli per rate")
  assert not out.exists()


def test_rate_point_errors_are_one_line(tmp_path, capsys):
  images = _images(str(tmp_path / "images"), 1)
  out = tmp_path / "study"
  base = ["study", "prepare", "--images", images, "--out", str(out)]
  for extra, message in (
      (["--model", "mse=low:a,high:b", "--match-to", "lpips"],
       "--match-to lpips: unknown condition (models given by rate point: mse)"),
      (["--model", "mse=a,b", "--match-to", "mse"], "--match-to mse: that model is not given by"),
      (["--model", "mse=low:a,high:b", "--match-to", "mse", "--rates", "low=1"], "not both"),
      (["--model", "mse=low:a,top:b"], "rate top is not one of the study's rates"),
      (["--model", "mse=low:a,high:b"], "no model for rate medium"),
      (["--rate-tolerance", "0"], "--rate-tolerance must be > 0")):
    assert cli.main(base + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
  assert not out.exists()
