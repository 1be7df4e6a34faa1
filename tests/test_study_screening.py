"""Screening that works: server-measured response times, closed triangles in the adjacent design,
per-subject reasons, and `study simulate --study` on a small prepared study."""

import itertools
import json
import os

import pytest
import sqlalchemy as sa

from jaxcomp import cli
from jaxcomp.study import analysis, campaign, db, manifest, schedule, server
from jaxcomp.study import votes as votes_lib
from test_study_server import AUTH, GOOD, TOKEN, _png, make_study, votes_engine


def make_sim_study(folder, images=5, conditions=5, trials=15, golden_every=3):
  """A prepared PC study: `images` scenes of `conditions` conditions, one golden unit per image."""
  size = (16, 16)
  names = ["mse", "ssim", "lpips", "dists", "jpeg", "vsi"][:conditions]
  scenes, golden = [], []
  for k in range(images):
    image = f"img{k}"
    ref = _png(folder, f"stimuli/{image}/reference.png", 128, size)
    scenes.append({"id": f"{image}@low", "image": image, "rate": "low", "target_bpp": 0.25,
                   "reference": ref, "conditions": {
                       c: _png(folder, f"stimuli/{image}/low/{c}.png", 20 * j, size)
                       for j, c in enumerate(names)}})
    golden.append({"scene": f"{image}@golden", "reference": ref, "expected": "original",
                   "conditions": {"original": ref, "jpeg-q5": _png(
                       folder, f"stimuli/{image}/golden/jpeg-q5.png", 3, size)}})
  training = [{"scene": "img0@training", "reference": scenes[0]["reference"],
               "expected": "original", "conditions": {
                   "original": scenes[0]["reference"],
                   "jpeg-q10": _png(folder, "stimuli/img0/training/jpeg-q10.png", 5, size)}}]
  study = {"format": manifest.FORMAT, "version": manifest.VERSION, "title": "Simulated",
           "stimulus_size": list(size), "display": {"min_screen": [800, 600]},
           "design": {"name": "adjacent", "trials_per_subject": trials,
                      "golden_every": golden_every, "seed": 0},
           "show_reference": False, "scenes": scenes, "golden": golden, "training": training}
  os.makedirs(folder, exist_ok=True)
  manifest.write(study, folder)
  return str(folder)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
  engine = votes_engine(request.param, tmp_path)
  yield engine
  engine.dispose()


def _session(client):
  return client.post("/api/session", json={"consent": True, "display": GOOD}).json["session"]


def _run(client, engine, sid, claimed_ms, looked_s):
  """One whole session; before each vote the trial's serving time is moved `looked_s` back (a
  subject who looked that long)."""
  while True:
    data = client.get(f"/api/session/{sid}/next").json
    if data["done"]:
      return
    with db.transaction(engine) as conn:
      if looked_s:
        conn.execute(db.trials.update().where(db.trials.c.id == data["trial"]).values(
            served=db.trials.c.served - looked_s))
      trial = conn.execute(sa.select(db.trials).where(
          db.trials.c.id == data["trial"])).mappings().one()
    right = trial["expected"] in (None, trial["left"])  # Golden and training units right.
    response = client.post("/api/vote", json={"session": sid, "trial": data["trial"],
                                              "choice": "left" if right else "right",
                                              "response_ms": claimed_ms,
                                              "display": GOOD})
    assert response.status_code == 200, response.json


def test_server_measures_response_time_and_flags_a_lying_bot(engine, tmp_path, capsys):
  study, folder = manifest.load(make_study(str(tmp_path / "study")))
  client = server.create_app(study, folder, engine, TOKEN).test_client()
  bot, person = _session(client), _session(client)
  _run(client, engine, bot, claimed_ms=2400, looked_s=0)  # Claims 2.4 s, answers at once.
  _run(client, engine, person, claimed_ms=200, looked_s=2.0)  # Claims 0.2 s, looked 2 s.
  export = client.get("/admin/export.json", headers=AUTH).json
  times = {}
  for v in export["votes"]:
    times.setdefault(v["observer"], []).append((v["response_ms"], v["server_ms"]))
  assert all(claimed == 2400 and measured < 300 for claimed, measured in times[bot])
  assert all(claimed == 200 and 2000 <= measured < 60000 for claimed, measured in times[person])
  (tmp_path / "export.json").write_text(json.dumps(export))
  out = tmp_path / "analysis"
  assert cli.main(["study", "analyze", str(tmp_path / "export.json"), "--out", str(out),
                   "--bootstrap", "0", "--no-plots", "--json"]) == 0
  report = json.loads((out / "analysis.json").read_text())
  assert report["kept_subjects"] == [person]
  speed = report["subjects"][bot]["tests"]["speed"]
  assert report["subjects"][bot]["rejected_by"] == ["speed"]
  assert speed["clock"] == "server" and speed["client_median_ms"] == 2400
  assert speed["server_median_ms"] < 300 and speed["fast_votes"] == speed["timed_votes"] == 8
  assert "by the server's clock" in report["subjects"][bot]["reasons"][0]
  assert "client-reported median 2400 ms" in capsys.readouterr().err
  # Both times are in the export, and the screening table names the test.
  assert f"| {bot} |" in (out / "screening.md").read_text()
  assert "rejected: speed" in (out / "screening.md").read_text()
  with engine.connect() as conn:
    assert conn.execute(sa.select(sa.func.count()).select_from(db.votes).where(
        db.votes.c.server_ms < 300)).scalar() == 10  # The bot's, training votes included.


def test_adjacent_design_gives_every_subject_closed_triangles(tmp_path):
  study, _ = manifest.load(make_sim_study(str(tmp_path / "study"), images=2, conditions=6,
                                          trials=12, golden_every=0))
  assert schedule.closed_triples(study) == 4
  engine = db.connect("sqlite://")
  truth = campaign.synthetic_truth(study, 4.0, 0)
  settings = campaign.Settings(per_type=3, types=("honest", "random"), concurrent=3)
  rows, _ = campaign.collect(study, truth, settings)
  engine.dispose()
  votes = votes_lib.from_rows(rows)
  for observer in {v.observer for v in votes}:
    main = [v for v in votes if v.observer == observer and v.kind == "main"]
    assert len(main) == 12
    for k in range(0, 12, 3):  # Blocks of three trials in one scene close a triangle.
      block = main[k:k + 3]
      assert len({v.scene for v in block}) == 1
      assert len({c for v in block for c in (v.condition_1, v.condition_2)}) == 3
  report = analysis.analyze(votes, analysis.Thresholds(min_triples=4),
                            analysis.Options(bootstrap=0))
  for subject in report["subjects"].values():
    assert subject["tests"]["transitivity"]["closed_triples"] == 4
    assert subject["tests"]["transitivity"]["applicable"]
  # The other designs plan none; a study too small for the test says so per subject.
  assert schedule.closed_triples(dict(study, design=dict(study["design"], name="random"))) == 0


def test_report_says_which_test_rejected_each_subject_and_when_one_does_not_apply():
  def vote(observer, pair, chosen, kind="main", expected=None, scene="s@low", ms=900.0):
    return votes_lib.Vote(observer, 1, scene, *pair, 1 if chosen == pair[0] else 2, kind=kind,
                          expected=expected, response_ms=ms, server_ms=ms)

  triangles = list(itertools.combinations("abcde", 3))  # 10: the default min_triples.
  votes = []
  for observer in ("careful", "cyclic", "blind", "short"):
    for k, (x, y, z) in enumerate(triangles[:2] if observer == "short" else triangles):
      scene = f"s{k}@low"
      if observer == "cyclic":  # x > y > z > x: every triangle circular.
        votes += [vote(observer, (x, y), x, scene=scene), vote(observer, (y, z), y, scene=scene),
                  vote(observer, (x, z), z, scene=scene)]
      else:
        votes += [vote(observer, (x, y), x, scene=scene), vote(observer, (y, z), y, scene=scene),
                  vote(observer, (x, z), x, scene=scene)]
    for image in ("i1", "i2"):
      chosen = "jpeg-q5" if observer == "blind" else "original"
      votes.append(vote(observer, ("original", "jpeg-q5"), chosen, "golden", "original",
                        f"{image}@golden"))
  report = analysis.analyze(votes, options=analysis.Options(bootstrap=0))
  subjects = report["subjects"]
  assert report["kept_subjects"] == ["careful", "short"]
  assert subjects["cyclic"]["rejected_by"] == ["transitivity"]
  assert subjects["cyclic"]["tests"]["transitivity"]["circular_triads"] == 10
  assert subjects["blind"]["rejected_by"] == ["golden"]
  assert subjects["blind"]["tests"]["golden"] == {"units": 2, "failed": 2, "max_failures": 0,
                                                  "rejected": True}
  short = subjects["short"]["tests"]["transitivity"]
  assert not short["applicable"]
  assert short["why"] == "transitivity test not applicable: subject has 2 closed triples, needs 10"
  assert {"observer": "short", "action": "not tested", "test": "transitivity",
          "reason": short["why"]} in report["rejections"]
  assert report["screening"] == {"subjects": 4, "kept": 2, "rejected_by": {
      "golden": 1, "transitivity": 1, "speed": 0}, "transitivity_not_applicable": 1}
  table = analysis.screening_markdown(report)
  assert "| cyclic | 0 of 2 | 10 | 10 (1.00) |" in table and "rejected: transitivity" in table
  assert "| short | 0 of 2 | 2 (not applicable) |" in table


def test_simulate_on_a_prepared_study_meets_the_screening_targets(tmp_path, capsys):
  folder = make_sim_study(str(tmp_path / "study"))
  out, plot = tmp_path / "sim.json", tmp_path / "tau.png"
  assert cli.main(["study", "simulate", "--study", folder, "--per-type", "10", "--out", str(out),
                   "--plot", str(plot), "--json"]) == 0
  captured = capsys.readouterr().out
  summary = json.loads(captured.strip().splitlines()[-1])
  assert summary["honest_kept"] >= 0.95 and summary["random_rejected"] >= 0.90
  assert summary["met"] and "truth synthetic" in captured
  report = json.loads(out.read_text())
  per_type = report["per_type"]
  assert per_type["inverted"]["kept"] == 0 and per_type["inverted"]["rejected_by"]["golden"] == 10
  assert per_type["too-fast"]["kept"] == 0 and per_type["too-fast"]["rejected_by"]["speed"] == 10
  assert per_type["honest"]["closed_triples"]["min"] == 5  # 15 trials: 5 closed triangles.
  kept = report["tau"]["kept"]
  assert kept["tau"][-1] > 0.5 and kept["comparisons"] == sorted(kept["comparisons"])
  assert report["tau"]["unscreened"]["tau"][-1] < kept["tau"][-1]
  assert plot.stat().st_size > 0
  # Given true scores: the file's, validated; bad input is a one-line error.
  truth = {"mse": 0, "ssim": 1, "lpips": 2, "dists": 3}
  (tmp_path / "truth.json").write_text(json.dumps(truth))
  assert cli.main(["study", "simulate", "--study", folder, "--truth",
                   str(tmp_path / "truth.json")]) == 2
  assert "lacks a score for jpeg" in capsys.readouterr().err
  assert cli.main(["study", "simulate", "--truth", str(tmp_path / "truth.json")]) == 2
  assert "only with --study" in capsys.readouterr().err
  assert cli.main(["study", "simulate", "--study", folder, "--types", "honest,lazy"]) == 2
  assert capsys.readouterr().err.startswith("error: --types")
