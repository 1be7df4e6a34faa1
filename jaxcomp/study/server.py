"""`jaxcomp study serve`: the Flask app that shows pairs to subjects and stores their votes.

The same app serves both modes of the manifest: PC (two stimuli, "which is better?") and 2AFC
(two reconstructions either side of the original, "which is closer to the original?"; the
reference URL is always given). Votes of both modes are stored alike: the chosen condition
(p0 or p1 in 2AFC) and the screen side.

Subject routes (JSON; the page at / drives them):
  POST /api/session                 {consent: true, display: {...}, user_agent} -> {session};
                                    refused (nothing stored) without consent or on a too-small
                                    display (403, with the reasons to show the subject).
  GET  /api/session/<sid>           progress of the session (also how a reload resumes).
  GET  /api/session/<sid>/next      the pending trial (the same one again after a reload) or
                                    {done: true}; assigns a new one only when none is pending.
  GET  /api/image/<sid>/<trial>/<left|right|reference>
                                    the stimulus, only for that session's trial (file names, which
                                    name the codecs, never reach the page).
  POST /api/vote                    {session, trial, choice: 'left'|'right', response_ms, display}.
Experimenter routes (token as 'Authorization: Bearer <token>' or '?token='):
  GET  /admin/progress, /admin/export.csv (pwcmp long format), /admin/export.json (with the
  study's mode).

A vote is stored only if it is well formed, its session exists, the trial was assigned to that
session and has no vote yet, and the reported display still passes the checks with the images at
1:1. Anything else is refused with a 4xx status and stores nothing.
"""

import hmac
import math
import os
import threading
import time

import flask
import sqlalchemy as sa

from jaxcomp.study import db, displaycheck, manifest, schedule, votes as votes_lib

SIDES = ("left", "right")


class Refusal(Exception):
  """A request refused with an HTTP status and a message for the client."""

  def __init__(self, status, message, **extra):
    super().__init__(message)
    self.status, self.message, self.extra = status, message, extra


def create_app(study, folder, engine, token):
  """The Flask app for a loaded manifest (`manifest.load`), a `db.connect` engine and a token."""
  app = flask.Flask(__name__)
  lock = threading.Lock()
  files = _stimulus_files(study)

  @app.errorhandler(Refusal)
  def refused(e):
    return flask.jsonify(error=e.message, **e.extra), e.status

  @app.get("/")
  def page():
    return flask.render_template("study.html", title=study.get("title", "Image quality study"),
                                 mode=manifest.mode(study),
                                 show_reference=manifest.shows_reference(study))

  @app.post("/api/session")
  def new_session():
    body = _json_body()
    if body.get("consent") is not True:
      raise Refusal(400, "consent is required to take part")
    display = _display(body)
    reasons = displaycheck.problems(display, study)
    if reasons:
      raise Refusal(403, "your display is too small for this study: " + "; ".join(reasons),
                    admitted=False, reasons=reasons)
    subject_id = os.urandom(16).hex()
    with engine.begin() as conn:
      conn.execute(db.subjects.insert().values(
          id=subject_id, created=time.time(), display=display,
          user_agent=str(body.get("user_agent", flask.request.user_agent.string))[:512]))
    return flask.jsonify(session=subject_id, **_progress(subject_id))

  @app.get("/api/session/<sid>")
  def session_state(sid):
    _subject(sid)
    return flask.jsonify(session=sid, **_progress(sid))

  @app.get("/api/session/<sid>/next")
  def next_trial(sid):
    _subject(sid)
    with lock, engine.begin() as conn:
      trial = schedule.next_trial(conn, study, sid)
    if trial is None:
      return flask.jsonify(done=True, **_progress(sid))
    urls = {side: flask.url_for("image", sid=sid, trial_id=trial["id"], which=side)
            for side in (*SIDES, "reference")}
    return flask.jsonify(done=False, trial=trial["id"], kind=trial["kind"], left=urls["left"],
                         right=urls["right"], reference=urls["reference"]
                         if manifest.shows_reference(study) else None, **_progress(sid))

  @app.get("/api/image/<sid>/<int:trial_id>/<which>")
  def image(sid, trial_id, which):
    trial = _trial(sid, trial_id)
    if which not in (*SIDES, "reference"):
      raise Refusal(404, "no such image")
    right = trial["condition_b"] if trial["left"] == trial["condition_a"] else trial["condition_a"]
    condition = {"left": trial["left"], "right": right, "reference": None}[which]
    response = flask.send_from_directory(folder, files[trial["scene"], condition])
    response.headers["Cache-Control"] = "no-store"
    return response

  @app.post("/api/vote")
  def vote():
    body = _json_body()
    sid, trial_id, choice = body.get("session"), body.get("trial"), body.get("choice")
    response_ms = body.get("response_ms")
    if not isinstance(sid, str):
      raise Refusal(400, "session must be a string")
    if isinstance(trial_id, bool) or not isinstance(trial_id, int):
      raise Refusal(400, "trial must be an integer")
    if choice not in SIDES:
      raise Refusal(400, "choice must be 'left' or 'right'")
    if (isinstance(response_ms, bool) or not isinstance(response_ms, (int, float))
        or not math.isfinite(response_ms) or response_ms < 0):
      raise Refusal(400, "response_ms must be a non-negative number")
    display = _display(body)
    _subject(sid)
    reasons = displaycheck.problems(display, study)
    if display.get("one_to_one") is not True:
      reasons.append("the images were not shown at 1:1 (browser zoom or scaling)")
    if reasons:
      raise Refusal(409, "display check failed: " + "; ".join(reasons), reasons=reasons)
    now = time.time()
    with lock, engine.begin() as conn:
      trial = _trial(sid, trial_id, conn)
      if conn.execute(sa.select(db.votes.c.id).where(db.votes.c.trial_id == trial_id)).first():
        raise Refusal(409, "this pair was already judged in this session")
      other = trial["condition_b"] if trial["left"] == trial["condition_a"] else trial[
          "condition_a"]
      chosen = trial["left"] if choice == "left" else other
      try:
        conn.execute(db.votes.insert().values(
            trial_id=trial_id, subject_id=sid, scene=trial["scene"],
            condition_a=trial["condition_a"], condition_b=trial["condition_b"], chosen=chosen,
            side=choice, response_ms=float(response_ms), server_ms=1000 * (now - trial["served"]),
            display=display, created=now))
      except sa.exc.IntegrityError:
        raise Refusal(409, "this pair was already judged in this session") from None
    result = {"stored": True}
    if trial["kind"] == "training":
      result["correct"] = chosen == trial["expected"]
    return flask.jsonify(result)

  @app.get("/admin/progress")
  def progress():
    _check_token()
    with engine.connect() as conn:
      subjects = conn.execute(sa.select(db.subjects.c.id)).scalars().all()
      rows = [{"session": s, **_progress(s, conn)} for s in subjects]
    return flask.jsonify(subjects=len(rows), votes=sum(r["voted"] for r in rows),
                         finished=sum(r["finished"] for r in rows), sessions=rows)

  @app.get("/admin/export.csv")
  def export_csv():
    _check_token()
    return flask.Response(votes_lib.to_csv(_export_votes()), mimetype="text/csv")

  @app.get("/admin/export.json")
  def export_json():
    _check_token()
    with engine.connect() as conn:
      subjects = [dict(r) for r in conn.execute(sa.select(db.subjects)).mappings()]
    return flask.jsonify(study=study.get("title"), mode=manifest.mode(study),
                         exported=time.time(), votes=export_rows(engine), subjects=subjects)

  def _json_body():
    body = flask.request.get_json(silent=True)
    if not isinstance(body, dict):
      raise Refusal(400, "the request body must be a JSON object")
    return body

  def _display(body):
    try:
      return displaycheck.parse(body.get("display"))
    except ValueError as e:
      raise Refusal(400, str(e)) from None

  def _subject(sid):
    with engine.connect() as conn:
      if conn.execute(sa.select(db.subjects.c.id).where(db.subjects.c.id == sid)).first() is None:
        raise Refusal(404, "unknown session")

  def _trial(sid, trial_id, conn=None):
    query = sa.select(db.trials).where(db.trials.c.id == trial_id,
                                       db.trials.c.subject_id == sid)
    if conn is None:
      with engine.connect() as c:
        row = c.execute(query).mappings().first()
    else:
      row = conn.execute(query).mappings().first()
    if row is None:
      raise Refusal(403, "this pair was not assigned to this session")
    return row

  def _progress(sid, conn=None):
    if conn is None:
      with engine.connect() as c:
        return _progress(sid, c)
    trials = schedule.trials_of(conn, sid)
    voted = sum(t["voted"] for t in trials)
    return {"voted": voted, "total": schedule.total_trials(study),
            "training": len(study.get("training", [])),
            "finished": schedule.finished(conn, study, sid, trials)}

  def _check_token():
    auth = flask.request.headers.get("Authorization", "")
    given = auth[len("Bearer "):] if auth.startswith("Bearer ") else flask.request.args.get(
        "token", "")
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
      raise Refusal(401, "experimenter token required")

  def _export_votes():
    return votes_lib.from_rows(export_rows(engine))

  return app


def export_rows(engine):
  """Every non-training vote as an export row (condition_1: the left image), in vote order."""
  query = (sa.select(db.votes, db.trials.c.kind, db.trials.c.left, db.trials.c.expected,
                     db.trials.c.position)
           .join(db.trials, db.trials.c.id == db.votes.c.trial_id)
           .where(db.trials.c.kind != "training").order_by(db.votes.c.id))
  with engine.connect() as conn:
    rows = conn.execute(query).mappings().all()
  out = []
  for r in rows:
    right = r["condition_b"] if r["left"] == r["condition_a"] else r["condition_a"]
    out.append({"observer": r["subject_id"], "session": 1, "scene": r["scene"],
                "condition_1": r["left"], "condition_2": right,
                "selection": 1 if r["side"] == "left" else 2, "kind": r["kind"],
                "expected": r["expected"], "response_ms": r["response_ms"],
                "server_ms": r["server_ms"], "position": r["position"],
                "display": r["display"], "created": r["created"]})
  return out


def _stimulus_files(study):
  """{(scene id, condition or None for the reference): file relative to the manifest folder}."""
  files = {}
  for scene in study["scenes"]:
    files[scene["id"], None] = scene["reference"]
    for condition, path in scene["conditions"].items():
      files[scene["id"], condition] = path
  for unit in study.get("golden", []) + study.get("training", []):
    files[unit["scene"], None] = unit["reference"]
    for condition, path in unit["conditions"].items():
      files[unit["scene"], condition] = path
  return files
