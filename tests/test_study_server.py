"""`jaxcomp study serve`: the vote server's rules, through Flask's test client and SQLite.

Also `make_study`, a tiny prepared study (shared with the browser test).
"""

import csv
import io
import json
import os

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from jaxcomp import cli
from jaxcomp.study import db, manifest, server

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD = {"screen_w": 1920, "screen_h": 1080, "window_w": 1900, "window_h": 1000,
        "device_pixel_ratio": 1, "one_to_one": True}


def _png(folder, relative, value, size):
  path = os.path.join(folder, relative)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  rng = np.random.default_rng(value)
  image = np.clip(rng.normal(value, 20, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
  Image.fromarray(image).save(path)
  return relative


def make_study(folder, design="adjacent", trials=6, golden_every=3, size=(64, 48),
               min_screen=(1024, 700), conditions=("jpeg", "mse", "ssim", "lpips")):
  """Writes a study folder with 2 scenes of 4 conditions, 2 golden and 2 training units."""
  scenes = []
  for image in ("imgA", "imgB"):
    ref = _png(folder, f"stimuli/{image}/reference.png", 128, size)
    scenes.append({"id": f"{image}@low", "image": image, "rate": "low", "target_bpp": 0.25,
                   "reference": ref, "conditions": {
                       c: _png(folder, f"stimuli/{image}/low/{c}.png", 40 * k, size)
                       for k, c in enumerate(conditions)}})
  golden = [{"scene": f"{image}@golden", "reference": scenes[0]["reference"],
             "expected": "original", "conditions": {
                 "original": scenes[0]["reference"],
                 "jpeg-q5": _png(folder, f"stimuli/{image}/golden/jpeg-q5.png", 3, size)}}
            for image in ("imgA", "imgB")]
  training = [{"scene": "imgA@training", "reference": scenes[0]["reference"],
               "expected": "original", "conditions": {
                   "original": scenes[0]["reference"],
                   "jpeg-q10": _png(folder, "stimuli/imgA/training/jpeg-q10.png", 5, size)}},
              {"scene": "imgA@training", "reference": scenes[0]["reference"],
               "expected": "jpeg-q50", "conditions": {
                   "jpeg-q5": golden[0]["conditions"]["jpeg-q5"],
                   "jpeg-q50": _png(folder, "stimuli/imgA/training/jpeg-q50.png", 9, size)}}]
  study = {"format": manifest.FORMAT, "version": manifest.VERSION, "title": "Test study",
           "stimulus_size": list(size), "display": {"min_screen": list(min_screen)},
           "design": {"name": design, "trials_per_subject": trials, "golden_every": golden_every,
                      "seed": 0},
           "show_reference": False, "scenes": scenes, "golden": golden, "training": training}
  os.makedirs(folder, exist_ok=True)
  manifest.write(study, folder)
  return str(folder)


POSTGRES = os.environ.get("JAXCOMP_STUDY_POSTGRES_URL")


def reset_postgres():
  """A `db.connect` engine on $JAXCOMP_STUDY_POSTGRES_URL with the study's tables made anew."""
  scratch = db.open_engine(POSTGRES)
  db.metadata.drop_all(scratch)
  scratch.dispose()
  return db.connect(POSTGRES)


def votes_engine(backend, tmp_path):
  """A fresh votes database: SQLite in tmp_path, or PostgreSQL when $JAXCOMP_STUDY_POSTGRES_URL
  names a scratch database (skips the test otherwise)."""
  if backend == "postgresql":
    if not POSTGRES:
      pytest.skip("set JAXCOMP_STUDY_POSTGRES_URL=postgresql+psycopg://... to test PostgreSQL")
    return reset_postgres()
  return db.connect(f"sqlite:///{tmp_path / 'votes.db'}")


@pytest.fixture(params=["sqlite", "postgresql"])
def study_app(request, tmp_path):
  """(test client, engine, manifest) on SQLite, and on PostgreSQL when
  $JAXCOMP_STUDY_POSTGRES_URL names an empty scratch database (its tables are dropped)."""
  engine = votes_engine(request.param, tmp_path)
  study, folder = manifest.load(make_study(str(tmp_path / "study")))
  app = server.create_app(study, folder, engine, TOKEN)
  yield app.test_client(), engine, study
  engine.dispose()


def _count(engine, table):
  with engine.connect() as conn:
    return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def _session(client):
  response = client.post("/api/session", json={"consent": True, "display": GOOD})
  assert response.status_code == 200, response.json
  return response.json["session"]


def _vote(client, sid, trial, choice="left", display=GOOD, response_ms=900):
  return client.post("/api/vote", json={"session": sid, "trial": trial, "choice": choice,
                                        "response_ms": response_ms, "display": display})


def test_admission_needs_consent_and_a_large_enough_display(study_app):
  client, engine, _ = study_app
  assert client.post("/api/session", json={"display": GOOD}).status_code == 400
  assert client.post("/api/session", json={"consent": "yes", "display": GOOD}).status_code == 400
  assert client.post("/api/session", data="consent", content_type="text/plain").status_code == 400
  small = dict(GOOD, screen_w=800, screen_h=600, window_w=800, window_h=560)
  response = client.post("/api/session", json={"consent": True, "display": small})
  assert response.status_code == 403 and response.json["admitted"] is False
  assert "smaller than the required 1024x700" in response.json["error"]
  # A window too narrow for two 64-pixel stimuli side by side at 1:1 (devicePixelRatio 2 doubles).
  narrow = dict(GOOD, window_w=80, device_pixel_ratio=1)
  assert client.post("/api/session", json={"consent": True, "display": narrow}).status_code == 403
  bad = dict(GOOD, device_pixel_ratio="2")
  assert client.post("/api/session", json={"consent": True, "display": bad}).status_code == 400
  assert _count(engine, db.subjects) == 0
  hidpi = dict(GOOD, screen_w=960, screen_h=540, window_w=950, window_h=500, device_pixel_ratio=2)
  assert client.post("/api/session", json={"consent": True, "display": hidpi}).status_code == 200


def test_training_first_resume_after_reload_and_feedback(study_app):
  client, engine, _ = study_app
  sid = _session(client)
  first = client.get(f"/api/session/{sid}/next").json
  assert first["kind"] == "training" and not first["done"]
  # A reload asks again: the same pending trial, same sides, nothing new assigned.
  again = client.get(f"/api/session/{sid}/next").json
  assert (again["trial"], again["left"], again["right"]) == (
      first["trial"], first["left"], first["right"])
  assert _count(engine, db.trials) == 1
  assert client.get(f"/api/session/{sid}").json["voted"] == 0
  left = client.get(first["left"])
  assert left.status_code == 200 and left.mimetype == "image/png"
  assert "original" not in json.dumps(first) and "jpeg" not in json.dumps(first)
  response = _vote(client, sid, first["trial"], "left")
  assert response.status_code == 200 and isinstance(response.json["correct"], bool)


def test_bad_votes_are_refused_and_store_nothing(study_app):
  client, engine, _ = study_app
  sid, other = _session(client), _session(client)
  trial = client.get(f"/api/session/{sid}/next").json["trial"]
  others = client.get(f"/api/session/{other}/next").json["trial"]
  assert _vote(client, sid, trial).status_code == 200
  stored = _count(engine, db.votes)
  nxt = client.get(f"/api/session/{sid}/next").json["trial"]
  cases = {
      "replayed": (_vote(client, sid, trial), 409),
      "replayed other side": (_vote(client, sid, trial, "right"), 409),
      "unassigned (another subject's)": (_vote(client, sid, others), 403),
      "unassigned (no such trial)": (_vote(client, sid, 99999), 403),
      "unknown session": (_vote(client, "f" * 32, nxt), 404),
      "bad choice": (_vote(client, sid, nxt, "up"), 400),
      "trial as string": (_vote(client, sid, str(nxt)), 400),
      "negative time": (_vote(client, sid, nxt, response_ms=-5), 400),
      "time as bool": (_vote(client, sid, nxt, response_ms=True), 400),
      "no display": (_vote(client, sid, nxt, display=None), 400),
      "not 1:1": (_vote(client, sid, nxt, display=dict(GOOD, one_to_one=False)), 409),
      "window shrank": (_vote(client, sid, nxt, display=dict(GOOD, window_w=100)), 409),
      "not JSON": (client.post("/api/vote", data="trial=1", content_type="text/plain"), 400),
      "JSON list": (client.post("/api/vote", json=[sid, nxt, "left"]), 400),
  }
  for name, (response, status) in cases.items():
    assert response.status_code == status, (name, response.json)
    assert "error" in response.json, name
  assert _count(engine, db.votes) == stored
  # The pending trial still accepts its one good vote afterwards: nothing was lost.
  assert _vote(client, sid, nxt).status_code == 200
  assert client.get(f"/api/session/{'0' * 32}/next").status_code == 404
  assert client.get(f"/api/image/{sid}/{others}/left").status_code == 403


def _run_subject(client, choose=lambda data: "left"):
  sid = _session(client)
  seen = []
  while True:
    data = client.get(f"/api/session/{sid}/next").json
    if data["done"]:
      return sid, seen
    seen.append(data)
    assert _vote(client, sid, data["trial"], choose(data)).status_code == 200


def test_full_session_design_rules_and_exports(study_app):
  client, engine, study = study_app
  sid, seen = _run_subject(client)
  kinds = [d["kind"] for d in seen]
  # 2 training, then 6 main trials with a golden unit after every 3 main trials.
  assert kinds == ["training"] * 2 + ["main"] * 3 + ["golden"] + ["main"] * 3 + ["golden"]
  with engine.connect() as conn:
    rows = conn.execute(sa.select(db.trials).where(db.trials.c.subject_id == sid)).mappings().all()
  pairs = [(r["scene"], r["condition_a"], r["condition_b"]) for r in rows]
  assert len(set(pairs)) == len(pairs)
  scenes = {s["id"]: s for s in study["scenes"]}
  for r in rows:
    if r["kind"] == "main":
      assert {r["condition_a"], r["condition_b"]} <= set(scenes[r["scene"]]["conditions"])
  assert {r["left"] == r["condition_a"] for r in rows} == {True, False}
  assert client.get(f"/api/session/{sid}").json["finished"] is True

  for route in ("/admin/progress", "/admin/export.csv", "/admin/export.json"):
    assert client.get(route).status_code == 401
    assert client.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401
    # The token only in the header: in the URL it would land in logs and browser histories.
    assert client.get(f"{route}?token={TOKEN}").status_code == 400
    assert client.get(route, headers=AUTH).status_code == 200
  progress = client.get("/admin/progress", headers={"Authorization": f"Bearer {TOKEN}"}).json
  assert progress["subjects"] == 1 and progress["finished"] == 1 and progress["votes"] == 10

  text = client.get("/admin/export.csv", headers=AUTH).get_data(as_text=True)
  rows = list(csv.DictReader(io.StringIO(text)))
  assert text.splitlines()[0] == "observer,session,scene,condition_1,condition_2,selection"
  assert len(rows) == 6 and all(r["selection"] == "1" and r["observer"] == sid for r in rows)
  export = client.get("/admin/export.json", headers=AUTH).json
  golden = [v for v in export["votes"] if v["kind"] == "golden"]
  assert len(export["votes"]) == 8 and len(golden) == 2
  assert all(v["expected"] == "original" and v["display"]["device_pixel_ratio"] == 1
             and v["response_ms"] == 900 for v in golden)


def test_adjacent_design_follows_the_group_ranking(study_app, tmp_path, capsys):
  client, engine, _ = study_app
  order = {"jpeg": 0, "mse": 1, "ssim": 2, "lpips": 3}
  truth = {}
  for _ in range(4):
    sid = _session(client)
    while True:
      data = client.get(f"/api/session/{sid}/next").json
      if data["done"]:
        break
      with engine.connect() as conn:
        trial = conn.execute(sa.select(db.trials).where(
            db.trials.c.id == data["trial"])).mappings().first()
      right = trial["condition_b"] if trial["left"] == trial["condition_a"] else trial[
          "condition_a"]
      if trial["kind"] == "main":
        better_left = order[trial["left"]] > order[right]
      else:
        better_left = trial["left"] == trial["expected"]
      truth[data["trial"]] = (trial, right)
      assert _vote(client, sid, data["trial"], "left" if better_left else "right",
                   response_ms=800).status_code == 200
  # Late in the study the group ranking is known: new triangles are three neighbours in it, so
  # two of their pairs are neighbours and the closing pair is two ranks apart.
  late = [t for t, _ in list(truth.values())[-8:] if t["kind"] == "main"]
  assert late and all(abs(order[t["condition_a"]] - order[t["condition_b"]]) <= 2 for t in late)
  last = [t for t, _ in truth.values() if t["kind"] == "main"][-3:]
  ranks = sorted({order[c] for t in last for c in (t["condition_a"], t["condition_b"])})
  assert len({t["scene"] for t in last}) == 1 and ranks[-1] - ranks[0] == 2 and len(ranks) == 3
  assert sorted(abs(order[t["condition_a"]] - order[t["condition_b"]]) for t in last) == [1, 1, 2]
  export = tmp_path / "export.json"
  export.write_text(client.get("/admin/export.json", headers=AUTH).get_data(as_text=True))
  # Scripted subjects answer within milliseconds by the server's clock: speed screening off here.
  assert cli.main(["study", "analyze", str(export), "--out", str(tmp_path / "a"),
                   "--bootstrap", "0", "--no-plots", "--json", "--min-response-ms", "0"]) == 0
  report = json.loads((tmp_path / "a" / "analysis.json").read_text())
  assert len(report["kept_subjects"]) == 4
  for scene in report["scenes"].values():
    jod = dict(zip(scene["conditions"], scene["jod"]))
    assert jod["jpeg"] < jod["mse"] < jod["ssim"] < jod["lpips"]


def test_serve_cli_refuses_a_bad_manifest(tmp_path, capsys):
  (tmp_path / "study.json").write_text(json.dumps({"format": "other"}))
  assert cli.main(["study", "serve", "--study", str(tmp_path)]) == 2
  assert capsys.readouterr().err.startswith("error: ")
  folder = make_study(str(tmp_path / "s"))
  os.remove(os.path.join(folder, "stimuli/imgA/low/mse.png"))
  assert cli.main(["study", "serve", "--study", folder]) == 2
  assert "stimulus files missing" in capsys.readouterr().err


def test_optional_reference_image(tmp_path):
  folder = make_study(str(tmp_path / "study"))
  study, folder = manifest.load(folder)
  study["show_reference"] = True
  client = server.create_app(study, folder, db.connect(f"sqlite:///{tmp_path / 'v.db'}"),
                             TOKEN).test_client()
  # The reference sits above the pair: the window must hold two stimulus heights.
  short = dict(GOOD, window_h=150)
  assert client.post("/api/session", json={"consent": True, "display": short}).status_code == 403
  sid = _session(client)
  data = client.get(f"/api/session/{sid}/next").json
  assert data["reference"].endswith("/reference")
  assert client.get(data["reference"]).mimetype == "image/png"
