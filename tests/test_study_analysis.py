"""`jaxcomp study analyze`: screening with logged reasons, scales, files, CLI errors."""

import itertools
import json
import os

import numpy as np
import pytest

from jaxcomp import cli
from jaxcomp.study import analysis, votes as votes_lib

CONDITIONS = ["a-jpeg", "b-mse", "c-ssim", "d-ms-ssim", "e-gmsd", "f-lpips", "g-dists"]
TRUE_JOD = {c: float(k) for k, c in enumerate(CONDITIONS)}
SCENES = ["kodim01@low", "kodim01@high", "kodim02@low"]


def _study_votes(seed=0):
  """Six careful subjects (full design), one random clicker, one golden failer, one hasty one."""
  rng = np.random.default_rng(seed)
  out = []
  subjects = [f"s{k}" for k in range(6)] + ["random", "blind", "hasty"]
  for subject in subjects:
    for scene in SCENES:
      for c1, c2 in itertools.combinations(CONDITIONS, 2):
        if subject == "random":
          first = rng.random() < 0.5
        else:
          right = rng.random() < 0.95
          first = (TRUE_JOD[c1] > TRUE_JOD[c2]) == right
        ms = 150.0 if subject == "hasty" else 900.0 + 100 * rng.random()
        out.append(votes_lib.Vote(subject, 1, scene, c1, c2, 1 if first else 2, response_ms=ms))
    for image in ("kodim01", "kodim02"):
      chose_original = subject != "blind"
      out.append(votes_lib.Vote(subject, 1, f"{image}@golden", "original", "jpeg-q5",
                                1 if chose_original else 2, kind="golden", expected="original",
                                response_ms=800.0))
  return out


def test_screening_rejects_with_reasons_and_keeps_careful_subjects():
  report = analysis.analyze(_study_votes(), options=analysis.Options(bootstrap=30))
  assert report["kept_subjects"] == [f"s{k}" for k in range(6)]
  reasons = {e["observer"]: e["reason"] for e in report["rejections"] if e["action"] == "rejected"}
  assert set(reasons) == {"random", "blind", "hasty"}
  assert reasons["blind"].startswith("golden units: failed 2 of 2")
  assert reasons["hasty"].startswith("too fast: 63 of 65")
  assert "zeta" in reasons["random"]
  assert any(e["action"] == "dropped votes" and e["observer"] == "hasty"
             for e in report["rejections"])
  for k in range(6):
    subject = report["subjects"][f"s{k}"]
    assert subject["complete_scenes"] == 3 and subject["zeta"] >= 0.5


def test_scene_scales_recover_the_order():
  report = analysis.analyze(_study_votes(), options=analysis.Options(bootstrap=30))
  scene = report["scenes"]["kodim01@low"]
  # The MSE model is the zero point and comes first; the others follow alphabetically.
  assert report["reference"] == {"condition": "b-mse", "why": "the MSE model"}
  ordered = ["b-mse"] + [c for c in CONDITIONS if c != "b-mse"]
  assert scene["conditions"] == ordered and scene["observers"] == 6
  assert scene["comparisons"] == 126 and scene["connected"]
  assert np.sum(scene["preference_matrix"]) == 126
  assert scene["jod"][0] == 0.0 and scene["jod_reference"] == "b-mse"
  for key in ("jod", "bradley_terry", "winning_frequency_normalised"):
    values = dict(zip(scene["conditions"], scene[key]))
    assert np.all(np.diff([values[c] for c in CONDITIONS]) > 0), key
  low, high = scene["jod_ci"]
  assert all(lo <= est <= hi for lo, est, hi in zip(low, scene["jod"], high))
  assert sum(scene["winning_frequency_normalised"]) == pytest.approx(1.0)
  assert list(report["rates"]) == ["low", "high"]  # by label without the study folder
  assert report["rates"]["low"]["conditions"]["g-dists"]["images"] == 2


def test_incomplete_design_uses_triad_rate():
  votes = [votes_lib.Vote("x", 1, "s@r", a, b, 1) for a, b in
           [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]]
  report = analysis.analyze(votes, analysis.Thresholds(min_triples=1),
                            analysis.Options(bootstrap=0))
  subject = report["subjects"]["x"]
  assert subject["zeta"] is None and subject["triad_rate"] == 1.0
  assert "circular-triad rate 1.000" in subject["reasons"][0]


def test_cli_analyze_json_and_csv(tmp_path, capsys):
  votes = _study_votes()
  export = {"votes": [{"observer": v.observer, "session": 1, "scene": v.scene,
                       "condition_1": v.condition_1, "condition_2": v.condition_2,
                       "selection": v.selection, "kind": v.kind, "expected": v.expected,
                       "response_ms": v.response_ms} for v in votes]}
  (tmp_path / "votes.json").write_text(json.dumps(export))
  out = tmp_path / "analysis"
  assert cli.main(["study", "analyze", str(tmp_path / "votes.json"), "--out", str(out),
                   "--bootstrap", "20", "--json"]) == 0
  captured = capsys.readouterr()
  assert json.loads(captured.out.strip().splitlines()[-1])["kept"] == 6
  assert "rejected: blind: golden units" in captured.err
  report = json.loads((out / "analysis.json").read_text())
  assert len(report["scenes"]) == 3
  assert sorted(os.listdir(out / "plots")) == sorted(
      ["rates.png"] + [f"scene_{s}.png" for s in SCENES])
  assert "blind,rejected" in (out / "rejections.csv").read_text()
  # The pwcmp CSV of the same votes has no golden units or times: only transitivity screens.
  (tmp_path / "votes.csv").write_text(votes_lib.to_csv(votes))
  assert cli.main(["study", "analyze", str(tmp_path / "votes.csv"), "--out",
                   str(tmp_path / "csv"), "--bootstrap", "0", "--no-plots"]) == 0
  report = json.loads((tmp_path / "csv" / "analysis.json").read_text())
  assert "blind" in report["kept_subjects"] and "random" not in report["kept_subjects"]


def test_cli_analyze_bad_csv_is_one_line_error(tmp_path, capsys):
  bad = tmp_path / "bad.csv"
  bad.write_text("observer,scene\nx,y\n")
  assert cli.main(["study", "analyze", str(bad), "--out", str(tmp_path / "o")]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
  assert not (tmp_path / "o").exists()


def _rated_votes(seed=1):
  """Four careful subjects, full design, two images at three rates; 'mse' is one condition."""
  rng = np.random.default_rng(seed)
  truth = {"dists": 1.0, "jpeg": -1.0, "mse": 0.0, "ssim": 0.5}
  out = []
  for subject in ("s0", "s1", "s2", "s3"):
    for scene in (f"{i}@{r}" for i in ("im1", "im2") for r in ("high", "low", "medium")):
      for c1, c2 in itertools.combinations(sorted(truth), 2):
        first = (truth[c1] > truth[c2]) == (rng.random() < 0.85)
        out.append(votes_lib.Vote(subject, 1, scene, c1, c2, 1 if first else 2,
                                  response_ms=900.0))
  return out


def _study_folder(tmp_path):
  """A prepared study's conditions.csv: targets that the labels' alphabet would misorder."""
  folder = tmp_path / "study"
  folder.mkdir()
  targets = {"high": 1.0, "low": 0.25, "medium": 0.5}
  lines = ["scene,image,rate,target_bpp,condition,codec,point,bpp,psnr,file,reference"]
  for image in ("im1", "im2"):
    for rate, target in targets.items():
      for k, condition in enumerate(("dists", "jpeg", "mse", "ssim")):
        bpp = target * (1 + 0.02 * k) * (1.1 if image == "im2" else 1.0)
        lines.append(f"{image}@{rate},{image},{rate},{target},{condition},{condition},q,"
                     f"{bpp:.5f},30,f.png,r.png")
  (folder / "conditions.csv").write_text("\n".join(lines) + "\n")
  return folder


def test_rates_low_to_high_mse_zero_intervals_and_bpp(tmp_path):
  from jaxcomp.study import summary  # pylint: disable=g-import-not-at-top

  assert summary.rate_order(["high", "low", "medium"]) == ["low", "medium", "high"]
  assert summary.rate_order(["b", "a"], {"a": 1.0, "b": 0.1}) == ["b", "a"]
  assert summary.rate_order(["1.0", "0.25"]) == ["0.25", "1.0"]
  assert summary.default_reference(["jpeg", "pretrain-mse", "ssim"])[0] == "pretrain-mse"
  assert summary.default_reference(["jpeg", "ssim"])[1].startswith("no MSE model")
  stimuli = summary.stimuli(str(_study_folder(tmp_path)))
  report = analysis.analyze(_rated_votes(), options=analysis.Options(bootstrap=20),
                            stimuli=stimuli)
  assert list(report["rates"]) == ["low", "medium", "high"]
  low = report["rates"]["low"]
  assert low["target_bpp"] == 0.25 and low["images"] == 2 and low["subjects"] == 4
  assert list(low["conditions"]) == ["mse", "dists", "jpeg", "ssim"]
  mse, dists = low["conditions"]["mse"], low["conditions"]["dists"]
  assert mse["jod"] == 0.0 and mse["jod_ci"] == [0.0, 0.0]
  for row in low["conditions"].values():
    for key in ("jod", "winning_frequency_normalised"):
      lo, hi = row[f"{key}_ci"]
      assert lo <= row[key] <= hi, (key, row)
  assert dists["jod"] > 0 > low["conditions"]["jpeg"]["jod"]
  # Achieved bpp: mean and range over the two images' stimuli.
  assert dists["bpp"] == pytest.approx(0.25 * 1.05) and dists["bpp_range"] == pytest.approx(
      [0.25, 0.275])
  assert report["scenes"]["im1@low"]["bpp"] == pytest.approx([0.25 * 1.04, 0.25, 0.25 * 1.02,
                                                              0.25 * 1.06])
  text = summary.markdown(report)
  assert text.index("### rate low (target 0.25 bpp)") < text.index("### rate medium") < (
      text.index("### rate high"))
  assert "| mse | 0.273 (0.260–0.286) | " in text and "0 (reference)" in text


def test_cli_analyze_with_study_folder(tmp_path, capsys):
  from jaxcomp.study import votes as votes_module  # pylint: disable=g-import-not-at-top

  (tmp_path / "votes.csv").write_text(votes_module.to_csv(_rated_votes()))
  folder = _study_folder(tmp_path)
  out = tmp_path / "analysis"
  assert cli.main(["study", "analyze", str(tmp_path / "votes.csv"), "--out", str(out),
                   "--study", str(folder), "--bootstrap", "10"]) == 0
  report = json.loads((out / "analysis.json").read_text())
  assert list(report["rates"]) == ["low", "medium", "high"]
  assert (out / "rates.md").read_text().startswith("Scores per rate")
  assert (out / "plots" / "rates.png").stat().st_size > 10_000
  for argv, message in ((["--study", str(tmp_path / "nowhere")], "--study: not a folder"),
                        (["--reference-condition", "vtm"], "reference condition 'vtm'")):
    assert cli.main(["study", "analyze", str(tmp_path / "votes.csv"), "--out",
                     str(tmp_path / "x"), "--bootstrap", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1
