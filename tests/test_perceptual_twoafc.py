"""2AFC data and scoring: BAPPS loader errors, the score against lpips' `score_2afc_dataset`
(fixtures from scripts/make_perceptual_fixtures.py), and `jaxcomp perceptual score`."""

import json
import os
import shutil

import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.errors import UserError
from jaxcomp.perceptual import twoafc
# only_perceptual_commands is an autouse fixture: importing it applies it here.
from perceptual_fixtures import FIXTURES, NEEDS_WEIGHTS, SAMPLE

pytestmark = pytest.mark.usefixtures("only_perceptual_commands")


def _fixture(name):
  with open(os.path.join(FIXTURES, name)) as f:
    return json.load(f)


def test_score_equals_lpips_score_2afc_dataset():
  ref = _fixture("score.json")
  d0, d1 = np.asarray(ref["d0"], np.float32), np.asarray(ref["d1"], np.float32)
  assert np.sum(d0 == d1) > 0  # ties are exercised
  assert twoafc.score_2afc(d0, d1, ref["judge"]) == pytest.approx(ref["score"], abs=1e-12)


def test_score_and_ceiling_by_hand():
  assert twoafc.score_2afc([1, 2, 3], [2, 1, 3], [0.0, 0.25, 1.0]) == pytest.approx(
      (1.0 + 0.25 + 0.5) / 3)
  assert twoafc.human_ceiling([0.0, 0.5, 1.0]) == pytest.approx((1 + 0.5 + 1) / 3)


def test_load_split_fixture():
  split = twoafc.load_split(SAMPLE)
  assert split.ref.shape == split.p0.shape == split.p1.shape == (8, 64, 64, 3)
  assert split.ref.dtype == np.uint8
  np.testing.assert_allclose(split.judge, _fixture("lpips.json")["judge"])
  sub = split.subset(np.array([1, 3]))
  assert len(sub) == 2 and sub.names == (split.names[1], split.names[3])


def test_write_split_round_trip(tmp_path):
  split = twoafc.load_split(SAMPLE).subset(slice(0, 3))
  twoafc.write_split(tmp_path / "s", split)
  back = twoafc.load_split(tmp_path / "s")
  for k in ("ref", "p0", "p1", "judge"):
    np.testing.assert_array_equal(getattr(back, k), getattr(split, k))


def _copy(tmp_path):
  path = tmp_path / "split"
  shutil.copytree(SAMPLE, path)
  return path


def test_missing_judge_files(tmp_path):
  path = _copy(tmp_path)
  shutil.rmtree(path / "judge")
  with pytest.raises(UserError, match="judge.*missing"):
    twoafc.load_split(path)
  os.makedirs(path / "judge")
  with pytest.raises(UserError, match="no judge files"):
    twoafc.load_split(path)


def test_mismatched_counts(tmp_path):
  path = _copy(tmp_path)
  os.remove(path / "p1" / sorted(os.listdir(path / "p1"))[0])
  with pytest.raises(UserError, match="file counts differ.*p1/ 7"):
    twoafc.load_split(path)


def test_images_of_different_sizes(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = _copy(tmp_path)
  name = sorted(os.listdir(path / "p0"))[2]
  Image.new("RGB", (64, 48)).save(path / "p0" / name)
  with pytest.raises(UserError, match="image sizes differ.*64x48"):
    twoafc.load_split(path)


def test_bad_judge_value(tmp_path):
  path = _copy(tmp_path)
  name = sorted(os.listdir(path / "judge"))[0]
  np.save(path / "judge" / name, np.array([1.5]))
  with pytest.raises(UserError, match="one number in"):
    twoafc.load_split(path)


def test_cli_error_is_one_line(tmp_path, capsys):
  path = _copy(tmp_path)
  shutil.rmtree(path / "judge")
  assert cli.main(["perceptual", "score", "--data", str(path), "--metrics", "psnr"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1


def test_cli_score_classical_metrics(capsys):
  assert cli.main(["perceptual", "score", "--data", SAMPLE, "--metrics", "psnr,mse,ssim",
                   "--json"]) == 0
  out = capsys.readouterr().out.strip().splitlines()
  result = json.loads(out[-1])
  assert result["n"] == 8
  assert result["human_ceiling"] == pytest.approx(_fixture("lpips.json")["human_ceiling"])
  # PSNR (a similarity, negated) and MSE (a distance) rank pairs identically.
  assert result["scores"]["psnr"] == pytest.approx(result["scores"]["mse"])
  assert out[0].startswith("metric") and len(out) == 5


@pytest.mark.slow
@NEEDS_WEIGHTS
def test_lpips_score_equals_lpips_package(capsys):
  ref = _fixture("lpips.json")
  from jaxcomp.metrics import registry  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import score  # pylint: disable=g-import-not-at-top
  split = twoafc.load_split(SAMPLE)
  metric = registry.get("lpips")
  np.testing.assert_allclose(score.distances(metric, split.ref, split.p0, 8), ref["d0"],
                             atol=1e-4)
  np.testing.assert_allclose(score.distances(metric, split.ref, split.p1, 8), ref["d1"],
                             atol=1e-4)
  assert cli.main(["perceptual", "score", "--data", SAMPLE, "--metrics", "lpips",
                   "--json"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["scores"]["lpips"] == pytest.approx(ref["score"], abs=1e-12)
