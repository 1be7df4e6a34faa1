"""2AFC mode of `jaxcomp study`: prepare from triplets, serve, export-bapps, and their errors.

Also `make_triplets` and `make_2afc_study` (shared with the browser test).
"""

import io
import json
import os

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from jaxcomp import cli
from jaxcomp.perceptual import twoafc
from jaxcomp.study import db, manifest, server
from test_study_server import AUTH, GOOD, TOKEN, make_study

PREPARE = ["--trials-per-subject", "4", "--golden-every", "2", "--min-screen", "1024x700"]


def make_triplets(folder, count=5, size=(32, 24), judged=False):
  """Writes a BAPPS-layout split of `count` noisy triplets; returns it (a `twoafc.Split`)."""
  rng = np.random.default_rng(7)
  ref = rng.integers(0, 256, (count, size[1], size[0], 3)).astype(np.uint8)

  def noisy(sd):
    return np.clip(ref + rng.normal(0, sd, ref.shape), 0, 255).astype(np.uint8)

  names = tuple(f"{k:06d}.png" for k in range(count))
  judge = rng.random(count).astype(np.float32) if judged else None
  split = twoafc.Split(ref, noisy(4), noisy(40), judge, names)
  info = {"size": size[0], "triplets": [{"name": n, "p0": "noise@4", "p1": "noise@40"}
                                        for n in names]}
  twoafc.write_split(str(folder), split, info)
  return split


def make_2afc_study(tmp_path, count=5, extra=()):
  """Triplets in tmp_path/triplets and a prepared 2AFC study in tmp_path/study; (split, folder)."""
  split = make_triplets(tmp_path / "triplets", count)
  out = str(tmp_path / "study")
  assert cli.main(["study", "prepare", "--mode", "2afc", "--triplets",
                   str(tmp_path / "triplets"), "--out", out, *PREPARE, *extra]) == 0
  return split, out


def _png(folder, relative):
  with Image.open(os.path.join(folder, relative)) as img:
    return np.asarray(img)


def test_prepare_2afc_keeps_the_triplets_pixel_for_pixel(tmp_path, capsys):
  split, out = make_2afc_study(tmp_path)
  assert "5 triplets (32x24), 2 golden units, 2 training units" in capsys.readouterr().out
  study, folder = manifest.load(out)
  assert study["mode"] == "2afc" and study["stimulus_size"] == [32, 24]
  assert study["design"]["name"] == "balanced" and study["source"]["had_judges"] is False
  assert [s["name"] for s in study["scenes"]] == list(split.names)
  for k, scene in enumerate(study["scenes"]):
    assert scene["info"] == {"name": split.names[k], "p0": "noise@4", "p1": "noise@40"}
    np.testing.assert_array_equal(_png(folder, scene["reference"]), split.ref[k])
    np.testing.assert_array_equal(_png(folder, scene["conditions"]["p0"]), split.p0[k])
    np.testing.assert_array_equal(_png(folder, scene["conditions"]["p1"]), split.p1[k])
  ids = {s["id"]: s for s in study["scenes"]}
  for unit in study["golden"]:
    scene = ids[unit["scene"].removesuffix("@golden")]
    # One side is the very reference shown between them; the other a heavy JPEG of it.
    assert unit["expected"] == "original"
    assert unit["conditions"]["original"] == unit["reference"] == scene["reference"]
    heavy = _png(folder, unit["conditions"]["jpeg-q5"]).astype(float)
    assert np.abs(heavy - split.ref[list(ids).index(scene["id"])]).mean() > 5
  assert len({u["scene"] for u in study["golden"]}) == 2


def test_prepare_2afc_notes_and_ignores_old_judges(tmp_path, capsys):
  make_triplets(tmp_path / "t", 3, judged=True)
  assert cli.main(["study", "prepare", "--mode", "2afc", "--triplets", str(tmp_path / "t"),
                   "--out", str(tmp_path / "s"), *PREPARE]) == 0
  assert "judge is ignored" in capsys.readouterr().err
  study, _ = manifest.load(str(tmp_path / "s"))
  assert study["source"]["had_judges"] is True and len(study["scenes"]) == 3


def _expect_error(capsys, argv, message, out):
  assert cli.main(argv) == 2, argv
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
  assert not os.path.exists(out)


def test_prepare_2afc_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
  out = str(tmp_path / "study")

  def prepare(triplets, *extra):
    return ["study", "prepare", "--mode", "2afc", "--triplets", str(triplets), "--out", out,
            *extra]

  _expect_error(capsys, prepare(tmp_path / "nowhere"), "no such folder", out)
  good = tmp_path / "good"
  make_triplets(good, 3)
  _expect_error(capsys, prepare(good, "--crop", "64x64", "--design", "full"),
                "--crop, --design: pc mode only", out)
  _expect_error(capsys, ["study", "prepare", "--mode", "2afc", "--out", out], "needs --triplets",
                out)
  _expect_error(capsys, ["study", "prepare", "--triplets", str(good), "--out", out],
                "--triplets: 2afc mode only", out)
  _expect_error(capsys, ["study", "prepare", "--out", out], "--images is required", out)
  _expect_error(capsys, prepare(good, "--golden-quality", "0"), "--golden-quality", out)

  missing = tmp_path / "missing"
  make_triplets(missing, 3)
  os.rename(missing / "p1", missing / "p2")
  _expect_error(capsys, prepare(missing), "p1: missing", out)
  counts = tmp_path / "counts"
  make_triplets(counts, 3)
  os.remove(counts / "p0" / "000001.png")
  _expect_error(capsys, prepare(counts), "file counts differ: ref/ 3, p0/ 2, p1/ 3", out)
  empty = tmp_path / "empty"
  for k in ("ref", "p0", "p1"):
    os.makedirs(empty / k)
  _expect_error(capsys, prepare(empty), "no images", out)
  within = tmp_path / "within"
  make_triplets(within, 3)
  Image.new("RGB", (30, 24)).save(within / "p1" / "000000.png")
  _expect_error(capsys, prepare(within), "image sizes differ", out)
  across = tmp_path / "across"
  make_triplets(across, 3)
  for k in ("ref", "p0", "p1"):
    Image.new("RGB", (16, 16)).save(across / k / "000002.png")
  _expect_error(capsys, prepare(across), "000002.png is 16x16", out)
  broken = tmp_path / "broken"
  make_triplets(broken, 3)
  (broken / "ref" / "000001.png").write_bytes(b"not a png")
  _expect_error(capsys, prepare(broken), "as an image", out)


def _client(out, tmp_path):
  study, folder = manifest.load(out)
  engine = db.connect(f"sqlite:///{os.path.join(folder, 'votes.db')}")
  return server.create_app(study, folder, engine, TOKEN).test_client(), engine, study


def _session(client):
  response = client.post("/api/session", json={"consent": True, "display": GOOD})
  assert response.status_code == 200, response.json
  return response.json["session"]


def _trial(engine, trial_id):
  with engine.connect() as conn:
    return conn.execute(sa.select(db.trials).where(db.trials.c.id == trial_id)).mappings().one()


def _run_subject(client, engine, answer, response_ms=900):
  """One whole session; answer(trial row) -> the condition to choose. Returns the trial rows."""
  sid = _session(client)
  rows = []
  while True:
    data = client.get(f"/api/session/{sid}/next").json
    if data["done"]:
      return sid, rows
    row = _trial(engine, data["trial"])
    rows.append((data, row))
    choice = "left" if answer(row) == row["left"] else "right"
    response = client.post("/api/vote", json={"session": sid, "trial": data["trial"],
                                              "choice": choice, "response_ms": response_ms,
                                              "display": GOOD})
    assert response.status_code == 200, response.json


def _truth(row):
  """The simulated subjects' view: p1 is closer on odd-numbered triplets, p0 on even ones."""
  if row["kind"] != "main":
    return row["expected"]
  return "p1" if int(row["scene"]) % 2 else "p0"


def test_2afc_sessions_and_bapps_export(tmp_path, capsys):
  split, out = make_2afc_study(tmp_path)
  client, engine, study = _client(out, tmp_path)
  page = client.get("/").get_data(as_text=True)
  assert 'data-mode="2afc"' in page and "closer to the original" in page

  def contrarian(row):  # Always p0, right on golden units.
    return "p0" if row["kind"] == "main" else row["expected"]

  def careless(row):  # Fails the golden units: rejected.
    return "p0" if row["kind"] == "main" else next(
        c for c in (row["condition_a"], row["condition_b"]) if c != row["expected"])

  subjects = [("a", _truth), ("b", _truth), ("c", contrarian), ("d", careless)]
  sessions = {}
  for name, answer in subjects:
    sid, rows = _run_subject(client, engine, answer)
    sessions[sid] = name, answer, rows
    assert [r["kind"] for _, r in rows] == ["training"] * 2 + (["main"] * 2 + ["golden"]) * 2
    main = [r for _, r in rows if r["kind"] == "main"]
    assert len({r["scene"] for r in main}) == 4  # Never the same triplet twice.
    assert all((r["condition_a"], r["condition_b"]) == ("p0", "p1") for r in main)
    for data, row in rows:  # The original is always shown, and is the reference file.
      scene = row["scene"].split("@")[0]
      reference = client.get(data["reference"])
      assert reference.status_code == 200
      np.testing.assert_array_equal(
          np.asarray(Image.open(io.BytesIO(reference.data))),
          split.ref[int(scene)])
  with engine.connect() as conn:
    trials = conn.execute(sa.select(db.trials).where(db.trials.c.kind == "main")).mappings().all()
    stored = conn.execute(sa.select(db.votes)).mappings().all()
  assert {t["left"] for t in trials} == {"p0", "p1"}  # Sides drawn per trial, and recorded.
  assert all(v["side"] in ("left", "right") and v["chosen"] in ("p0", "p1", "original",
                                                                 "jpeg-q5", "jpeg-q10",
                                                                 "jpeg-q50") for v in stored)
  per_triplet = np.bincount([int(t["scene"]) for t in trials], minlength=5)
  assert per_triplet.max() - per_triplet.min() <= 1  # 16 votes spread over 5 triplets.
  export = client.get("/admin/export.json", headers=AUTH).json
  assert export["mode"] == "2afc"
  (tmp_path / "export.json").write_text(json.dumps(export))
  engine.dispose()

  # Expected judges from the subjects' rules (the careless subject is screened out).
  expected = {}
  for sid, (name, answer, rows) in sessions.items():
    if name != "d":
      for _, row in rows:
        if row["kind"] == "main":
          expected.setdefault(row["scene"], []).append(answer(row) == "p1")
  capsys.readouterr()
  bapps_out = tmp_path / "bapps"
  # Scripted subjects answer within milliseconds by the server's clock: speed screening off here.
  assert cli.main(["study", "export-bapps", "--study", out, "--out", str(bapps_out),
                   "--json", "--min-response-ms", "0"]) == 0
  captured = capsys.readouterr()
  summary = json.loads(captured.out.strip().splitlines()[-1])
  assert summary["subjects"] == 4 and summary["kept"] == 3 and summary["skipped"] == 0
  assert "rejected" in captured.err and "golden units: failed 2 of 2" in captured.err
  loaded = twoafc.load_split(str(bapps_out))
  assert loaded.names == split.names
  for k in ("ref", "p0", "p1"):
    np.testing.assert_array_equal(getattr(loaded, k), getattr(split, k))
  want = np.array([np.mean(expected[f"{k:06d}"]) for k in range(5)], np.float32)
  np.testing.assert_allclose(loaded.judge, want, atol=1e-6)
  assert np.any((want > 0) & (want < 1))  # Mixed shares, not only 0 and 1.
  info = json.loads((bapps_out / "info.json").read_text())
  assert [t["votes"] for t in info["triplets"]] == [len(expected[f"{k:06d}"]) for k in range(5)]
  assert info["triplets"][1]["source"]["p1"] == "noise@40"
  assert info["votes"] == 12 and 0 <= info["left_share"] <= 1

  # The JSON export gives the same split; --min-votes leaves out triplets and counts them.
  few = min(len(v) for v in expected.values())
  assert cli.main(["study", "export-bapps", "--study", out, "--votes",
                   str(tmp_path / "export.json"), "--out", str(tmp_path / "b2"),
                   "--min-votes", str(few + 1), "--min-response-ms", "0"]) == 0
  captured = capsys.readouterr()
  left_out = [f"{k:06d}.png" for k in range(5) if len(expected[f"{k:06d}"]) <= few]
  assert f"skipped {len(left_out)} of 5 triplets with fewer than {few + 1}" in captured.err
  again = twoafc.load_split(str(tmp_path / "b2"))
  assert set(again.names) == set(split.names) - set(left_out)
  np.testing.assert_allclose(again.judge, [want[int(n[:6])] for n in again.names], atol=1e-6)


def test_2afc_display_needs_room_for_three(tmp_path):
  _, out = make_2afc_study(tmp_path)
  client, engine, _ = _client(out, tmp_path)
  # Two 32-pixel stimuli would fit in 112 pixels; three need 3 * 32 + 48 = 144.
  narrow = dict(GOOD, window_w=130)
  response = client.post("/api/session", json={"consent": True, "display": narrow})
  assert response.status_code == 403 and "required 144x144" in response.json["error"]
  sid = _session(client)
  data = client.get(f"/api/session/{sid}/next").json
  assert data["kind"] == "training" and data["reference"].endswith("/reference")
  assert "p0" not in json.dumps(data) and "original" not in json.dumps(data)
  response = client.post("/api/vote", json={"session": sid, "trial": data["trial"],
                                            "choice": "left", "response_ms": 800,
                                            "display": dict(GOOD, window_w=130)})
  assert response.status_code == 409
  engine.dispose()


def test_export_bapps_errors_are_one_line_and_write_nothing(tmp_path, capsys):
  _, out = make_2afc_study(tmp_path)
  target = str(tmp_path / "bapps")

  def export(*extra):
    return ["study", "export-bapps", "--study", out, "--out", target, *extra]

  _expect_error(capsys, export(), "no votes database at", target)
  client, engine, _ = _client(out, tmp_path)
  _expect_error(capsys, export(), "no votes yet", target)
  _run_subject(client, engine, lambda row: "p0" if row["kind"] == "main" else "jpeg-q5")
  _expect_error(capsys, export(), "all 1 subjects were rejected", target)
  sid, _ = _run_subject(client, engine, _truth)
  _expect_error(capsys, export("--min-votes", "0"), "--min-votes must be at least 1", target)
  _expect_error(capsys, export("--min-votes", "9", "--min-response-ms", "0"),
                "no triplet has 9 or more kept votes", target)
  engine.dispose()
  foreign = {"votes": [{"observer": sid, "scene": "other", "condition_1": "p0",
                        "condition_2": "p1", "selection": 1, "kind": "main"}]}
  (tmp_path / "foreign.json").write_text(json.dumps(foreign))
  _expect_error(capsys, export("--votes", str(tmp_path / "foreign.json")),
                "votes from another study", target)
  pc = make_study(str(tmp_path / "pc"))
  _expect_error(capsys, ["study", "export-bapps", "--study", pc, "--votes",
                         str(tmp_path / "foreign.json"), "--out", target],
                "needs a 2AFC study", target)
  with pytest.raises(SystemExit):  # --db and --votes exclude each other (argparse).
    cli.main(export("--db", "sqlite://", "--votes", "x.json"))
  assert "not allowed with argument" in capsys.readouterr().err
