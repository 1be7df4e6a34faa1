"""`jaxcomp calibrate` (jaxcomp/train/calibrate.py): the search, the cache, one real probe, errors."""

import json
import math
import os
import sys

import numpy as np
import pytest
from PIL import Image

from jaxcomp import cli
from jaxcomp.train import calibrate, lambda_table, train

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def power_law(scale=0.3, slope=0.35):
  """A monotone synthetic bpp(lambda) = scale * lambda^slope, counting its calls."""
  calls = []

  def bpp(lmbda):
    calls.append(lmbda)
    return scale * lmbda ** slope

  return bpp, calls


@pytest.mark.parametrize("slope, start", [(0.35, 1.0), (0.1, 0.01), (0.9, 50.0), (0.3, 1e-4)])
def test_search_reaches_the_target_of_a_monotone_rate(slope, start):
  bpp, calls = power_law(slope=slope)
  target = bpp(0.2)  # the answer is lambda = 0.2
  calls.clear()
  result = calibrate.search(bpp, target, start, tolerance=0.03, max_probes=6)
  assert result["converged"]
  assert abs(result["bpp"] / target - 1) <= 0.03
  assert abs(math.log(result["lambda"] / 0.2)) <= math.log(1.03) / slope + 1e-9
  assert len(calls) == len(result["probes"]) <= 6
  assert result["probes"][0][0] == calibrate.round_lambda(start)


def test_search_stops_at_max_probes_and_returns_the_closest():
  bpp, calls = power_law(slope=0.02)  # nearly flat: the target is out of reach in 3 probes
  target = 2 * bpp(1.0)
  calls.clear()
  result = calibrate.search(bpp, target, 1.0, tolerance=0.03, max_probes=3)
  assert len(calls) == 3 and not result["converged"]
  closest = min(result["probes"], key=lambda p: abs(math.log(p[1] / target)))
  assert result["lambda"] == closest[0] and result["error"] < 0


def test_first_probe_within_tolerance_is_the_only_one():
  bpp, calls = power_law()
  target = bpp(0.5) * 1.02
  calls.clear()
  result = calibrate.search(bpp, target, 0.5, tolerance=0.03)
  assert calls == [0.5] and result["converged"] and result["lambda"] == 0.5


def test_next_lambda_interpolates_inside_a_bracket_and_caps_steps():
  inside = calibrate.next_lambda([(1.0, 0.1), (4.0, 0.2)], 0.15, 1.0)
  assert 1.0 < inside < 4.0
  capped = calibrate.next_lambda([(1.0, 0.1)], 100.0, 1.0, prior_slope=0.3)
  assert capped == pytest.approx(calibrate.MAX_FACTOR, rel=1e-3)
  # a falling secant (noise) is not trusted: the prior slope steps instead
  falling = calibrate.next_lambda([(1.0, 0.1), (2.0, 0.09)], 0.12, 1.0, prior_slope=0.5)
  assert falling == pytest.approx(calibrate.round_lambda((0.12 / 0.1) ** 2), rel=1e-3)


def _photos(folder, count, size=128, seed=0):
  rng = np.random.default_rng(seed)
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    base = rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((size, size), Image.BILINEAR)
    image.save(os.path.join(folder, f"img{i:02d}.png"))
  return folder


def test_batch_keeps_the_pixels_per_step_and_splits_over_devices():
  scale = calibrate.Scale(batch_size=4, patch_size=64)
  assert calibrate.batch_for(scale, 64) == 4
  assert calibrate.batch_for(scale, 192) == 1  # MS-SSIM's crops
  assert calibrate.batch_for(scale, 128) == 1
  assert calibrate.batch_for(scale, 64, devices=8) == 8
  assert calibrate.batch_for(calibrate.Scale(batch_size=12), 64, devices=8) == 16


def test_split_holds_out_the_last_photos(tmp_path):
  data = _photos(str(tmp_path / "data"), 5, size=64)
  train_dir, val = calibrate.split_data(data, str(tmp_path / "out"), holdout=2)
  assert sorted(os.listdir(train_dir)) == ["img00.png", "img01.png", "img02.png"]
  assert [os.path.basename(v) for v in val] == ["img03.png", "img04.png"]


def test_a_cached_probe_is_not_run_again(tmp_path, monkeypatch):
  data = _photos(str(tmp_path / "data"), 3, size=64)
  train_dir, val = calibrate.split_data(data, str(tmp_path / "out"), holdout=1)
  cal = calibrate.Calibrator(str(tmp_path / "out"), train_dir, val, val_size=64,
                             scale=calibrate.Scale(steps=3))
  parent = calibrate.load_parent("low", "zoo:hyperprior-small-q1")
  folder = cal.probe_dir(parent, "ssim", 0.5)
  os.makedirs(folder)
  with open(os.path.join(folder, "probe.json"), "w") as f:
    json.dump({"lambda": 0.5, "bpp": 0.2, "bpp_likelihood": 0.19, "seconds": 1.0,
               "model": None}, f)

  def no_training(*args, **kwargs):
    raise AssertionError("a cached probe was fine-tuned again")

  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  record = cal.probe(parent, "ssim", 0.5)
  assert record["cached"] and record["bpp"] == 0.2
  result = cal.calibrate(parent, "ssim", 0.2, tolerance=0.03, hint={"ratio": 0.5 / cal.finetune.LAMBDAS["ssim"][1]})
  assert result["lambda"] == 0.5 and result["converged"] and len(result["probes"]) == 1
  # another scale, metric or lambda is another probe
  assert cal.probe_dir(parent, "ssim", 0.51) != folder
  assert cal.probe_dir(parent, "gmsd", 0.5) != folder
  other = calibrate.Calibrator(str(tmp_path / "out"), train_dir, val, val_size=64,
                               scale=calibrate.Scale(steps=4))
  assert other.probe_dir(parent, "ssim", 0.5) != folder


@pytest.mark.slow  # a training run (about 1 min on 2 cores: compiling the 8-device step)
def test_one_real_probe_end_to_end(tmp_path, capsys):
  """The command on a tiny scale: a 2-step fine-tune of the zoo's q1 model, real bitstreams."""
  data = _photos(str(tmp_path / "data"), 3, size=64)
  out = str(tmp_path / "out")
  rc = cli.main(["calibrate", "--parent", "low=zoo:hyperprior-small-q1", "--metrics", "mse",
                 "--data", data, "--out", out, "--steps", "2", "--batch-size", "1",
                 "--holdout", "1", "--val-size", "64", "--max-probes", "1", "--keep-models",
                 "--config.grad_clip_norm=0.5"])
  assert rc == 0
  lines = capsys.readouterr().out.splitlines()
  assert any("mse low probe 1: lambda 0.0018 ->" in line for line in lines), lines
  with open(os.path.join(out, "calibration.json")) as f:
    doc = json.load(f)
  result = doc["results"]["mse"]["low"]
  assert result["lambda"] == 0.0018 and len(result["probes"]) == 1
  assert result["target_bpp"] == doc["rates"]["low"]["parent_bpp"] > 0
  # the files carry a header and whole bytes: at 64x64 pixels tens of bytes over the estimate
  overhead_bytes = (result["bpp"] - result["bpp_likelihood"]) * 64 * 64 / 8
  assert 0 < overhead_bytes < 80, overhead_bytes
  with open(os.path.join(result["model"], "model.json")) as f:
    training = json.load(f)["training"]
  assert training["distortion"] == "mse" and training["lambda"] == 0.0018
  assert training["quality"] == 1 and training["steps"] == 2
  assert lambda_table.read(os.path.join(out, "lambdas.json")) == {"mse": {1: 0.0018}}
  assert not os.path.exists(os.path.join(os.path.dirname(result["model"]), "run"))
  # a rerun measures nothing again
  rc = cli.main(["calibrate", "--parent", "low=zoo:hyperprior-small-q1", "--metrics", "mse",
                 "--data", data, "--out", out, "--steps", "2", "--batch-size", "1",
                 "--holdout", "1", "--val-size", "64", "--max-probes", "1", "--keep-models",
                 "--config.grad_clip_norm=0.5"])
  assert rc == 0 and "cached" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--metrics", "mse,foo"], "unknown metric 'foo'"),
    (["--parent", "low"], "expected LABEL=VALUE"),
    (["--parent", "low=zoo:nope"], "unknown zoo model zoo:nope"),
    (["--parent", "low=/nonexistent"], "no exported model there"),
    (["--config.no_such_field=1"], "--config.no_such_field: no such config field"),
    (["--config.batch_size=many"], "expected a int"),
    (["--bogus"], "unrecognized argument '--bogus'"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--target", "high=0.2"], "--target high: no --parent with that label"),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
  data = _photos(str(tmp_path / "data"), 2, size=64)
  base = {"--parent": "low=zoo:hyperprior-small-q1", "--metrics": "mse"}
  argv = ["calibrate", "--data", data, "--out", str(tmp_path / "out")]
  for flag, value in base.items():
    if flag not in args:
      argv += [flag, value]
  rc = cli.main(argv + args)
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_validation_photos_must_be_held_out(tmp_path):
  data = _photos(str(tmp_path / "data"), 2, size=64)
  with pytest.raises(calibrate.UserError, match="shares 2 image"):
    calibrate.split_data(data, str(tmp_path / "out"), val_dir=data)


def test_finetune_config_reads_a_calibrated_table(tmp_path):
  sys.path.insert(0, CONFIGS)
  try:
    import finetune  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.remove(CONFIGS)
  table = tmp_path / "lambdas.json"
  table.write_text(json.dumps({"lpips": {"2": 0.5}}))
  assert finetune.get_config(f"lpips,q2,calibration={table}").lmbda == 0.5
  assert finetune.get_config("lpips,q2").lmbda == finetune.LAMBDAS["lpips"][2]  # default kept
  with pytest.raises(ValueError, match="no lambda for ssim q2"):
    finetune.get_config(f"ssim,q2,calibration={table}")
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"lpips": {"9": 0.5}}))
  with pytest.raises(ValueError, match="quality '9' is not 1..8"):
    finetune.get_config(f"lpips,q2,calibration={bad}")
