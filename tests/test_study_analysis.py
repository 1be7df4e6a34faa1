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
  assert scene["conditions"] == CONDITIONS and scene["observers"] == 6
  assert scene["comparisons"] == 126 and scene["connected"]
  assert np.sum(scene["preference_matrix"]) == 126
  assert scene["jod"][0] == 0.0 and scene["jod_reference"] == "a-jpeg"
  for key in ("jod", "bradley_terry", "winning_frequency_normalised"):
    assert np.all(np.diff(scene[key]) > 0), key
  low, high = scene["jod_ci"]
  assert all(lo <= est <= hi for lo, est, hi in zip(low, scene["jod"], high))
  assert sum(scene["winning_frequency_normalised"]) == pytest.approx(1.0)
  assert set(report["rates"]) == {"low", "high"}
  assert report["rates"]["low"]["g-dists"]["images"] == 2


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
