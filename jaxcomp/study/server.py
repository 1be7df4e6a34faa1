"""`jaxcomp study serve`: the Flask app that shows pairs to subjects and stores their votes.

The same app serves both modes of the manifest: PC (two stimuli, "which is better?") and 2AFC
(two reconstructions either side of the original, "which is closer to the original?"; the
reference URL is always given). Votes of both modes are stored alike: the chosen condition
(p0 or p1 in 2AFC) and the screen side.

Subject routes (JSON; the page at / drives them):
  POST /api/session                 {consent: true, display: {...}, user_agent} -> {session};
                                    refused (nothing stored) without consent or on a too-small
                                    display (403, with the reasons to show the subject), and
                                    after `Limits.sessions_per_client` sessions from one client
                                    address within `Limits.session_window_s` (429).
  GET  /api/session/<sid>           progress of the session (also how a reload resumes).
  GET  /api/session/<sid>/next      the pending trial (the same one again after a reload) or
                                    {done: true}; assigns a new one only when none is pending.
  GET  /api/image/<sid>/<trial>/<left|right|reference>
                                    the stimulus, only for that session's trial (file names, which
                                    name the codecs, never reach the page).
  POST /api/vote                    {session, trial, choice: 'left'|'right', response_ms, display};
                                    the server measures the response time itself (`record_vote`:
                                    from assigning the trial to receiving its vote, `server_ms`)
                                    and keeps the client's `response_ms` beside it.
Experimenter routes (token only as 'Authorization: Bearer <token>'; a '?token=' is refused):
  GET  /admin/progress, /admin/export.csv (pwcmp long format), /admin/export.json (with the
  study's mode).

A vote is stored only if it is well formed, its session exists, the trial was assigned to that
session and has no vote yet, and the reported display still passes the checks with the images at
1:1. Anything else is refused with a 4xx status and a JSON {error} and stores nothing: bodies over
`Limits.max_body_bytes` (413), bodies that are not one JSON object (400; also nested too deep or
with NaN), ids out of range or of the wrong type (400 / 404). An unexpected failure is logged with
its traceback on the server and answered with a JSON 500 that holds none of it; a database that
cannot be reached is a 503.

The rules that keep the votes consistent live in the database (`db`), so any number of these apps
in any number of processes and hosts can share one database (`serving` runs them under gunicorn).
Every response carries a Content-Security-Policy (same origin only, no framing), X-Frame-Options
DENY, X-Content-Type-Options nosniff and Referrer-Policy no-referrer. Each request is logged as one
JSON line (logger 'jaxcomp.study.access': time, method, route template, status, ms, bytes,
process), never with the query string, the Authorization header or the session id.
"""

import dataclasses
import hashlib
import hmac
import json
import logging
import math
import os
import re
import time
import zlib

import flask
import sqlalchemy as sa
from werkzeug import exceptions

from jaxcomp.study import db, displaycheck, manifest, schedule, votes as votes_lib

SIDES = ("left", "right")
SESSION_ID = re.compile(r"[0-9a-f]{32}")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; script-src 'self'; "
                               "style-src 'self'; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
access_log = logging.getLogger("jaxcomp.study.access")
error_log = logging.getLogger("jaxcomp.study.error")


@dataclasses.dataclass(frozen=True)
class Limits:
  """What one client may send.

  Attributes:
    max_body_bytes: largest request body (a vote is about 300 bytes).
    sessions_per_client: sessions one client address may start per window (0: no limit).
    session_window_s: that window in seconds.
  """

  max_body_bytes: int = 16 * 1024
  sessions_per_client: int = 20
  session_window_s: float = 3600.0


class Refusal(Exception):
  """A request refused with an HTTP status and a message for the client."""

  def __init__(self, status, message, **extra):
    super().__init__(message)
    self.status, self.message, self.extra = status, message, extra


def create_app(study, folder, engine, token, limits=Limits()):
  """The Flask app for a loaded manifest (`manifest.load`), a `db.connect` engine and a token."""
  app = flask.Flask(__name__)
  app.config["MAX_CONTENT_LENGTH"] = limits.max_body_bytes
  app.json.sort_keys = False
  files = _stimulus_files(study)

  @app.before_request
  def started():
    flask.g.started = time.perf_counter()
    if "token" in flask.request.args:
      raise Refusal(400, "give the experimenter token as 'Authorization: Bearer <token>', never "
                         "in the URL")

  @app.after_request
  def finished(response):
    response.headers.update(SECURITY_HEADERS)
    rule = flask.request.url_rule
    access_log.info(json.dumps({
        "time": round(time.time(), 3), "method": flask.request.method,
        "route": rule.rule if rule is not None else None, "status": response.status_code,
        "ms": round(1000 * (time.perf_counter() - flask.g.get("started", time.perf_counter())),
                    2),
        "bytes": response.content_length, "pid": os.getpid()}))
    return response

  @app.errorhandler(Refusal)
  def refused(e):
    return flask.jsonify(error=e.message, **e.extra), e.status

  @app.errorhandler(exceptions.HTTPException)
  def http_error(e):
    message = {413: f"request body larger than {limits.max_body_bytes} bytes"}.get(
        e.code, e.description or e.name)
    return flask.jsonify(error=message), e.code

  @app.errorhandler(sa.exc.OperationalError)
  def database_unavailable(e):
    error_log.error("database error: %s", str(e).splitlines()[0])
    return flask.jsonify(error="the database is unavailable; try again shortly"), 503

  @app.errorhandler(Exception)
  def internal_error(e):
    error_log.exception("internal error in %s %s", flask.request.method,
                        flask.request.url_rule.rule if flask.request.url_rule else "-")
    return flask.jsonify(error="internal server error"), 500

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
    agent = body.get("user_agent", flask.request.user_agent.string)
    if not isinstance(agent, str):
      raise Refusal(400, "user_agent must be a string")
    subject_id = os.urandom(16).hex()
    client = _client_key()
    now = time.time()
    with db.transaction(engine) as conn:
      if limits.sessions_per_client:
        if conn.dialect.name == "postgresql":  # Serializes one client's creations on any host.
          conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(client.encode()))))
        recent = conn.execute(sa.select(sa.func.count()).select_from(db.subjects).where(
            db.subjects.c.client == client,
            db.subjects.c.created > now - limits.session_window_s)).scalar()
        if recent >= limits.sessions_per_client:
          raise Refusal(429, "too many sessions started from your address; try again later")
      conn.execute(db.subjects.insert().values(
          id=subject_id, created=now, display=display, user_agent=agent.replace("\0", "")[:512],
          client=client))
    return flask.jsonify(session=subject_id, voted=0, total=schedule.total_trials(study),
                         training=len(study.get("training", [])), finished=False)

  @app.get("/api/session/<sid>")
  def session_state(sid):
    _subject(sid)
    return flask.jsonify(session=sid, **_progress(sid))

  @app.get("/api/session/<sid>/next")
  def next_trial(sid):
    if not SESSION_ID.fullmatch(sid):
      raise Refusal(404, "unknown session")
    for attempt in range(2):
      try:
        trial, voted = schedule.next_trial(engine, study, sid)
        break
      except LookupError:
        raise Refusal(404, "unknown session") from None
      except sa.exc.IntegrityError:  # A racing request of this session assigned first.
        if attempt:
          raise
    progress = {"voted": voted, "total": schedule.total_trials(study),
                "training": len(study.get("training", [])), "finished": trial is None}
    if trial is None:
      return flask.jsonify(done=True, **progress)
    urls = {side: flask.url_for("image", sid=sid, trial_id=trial["id"], which=side)
            for side in (*SIDES, "reference")}
    return flask.jsonify(done=False, trial=trial["id"], kind=trial["kind"], left=urls["left"],
                         right=urls["right"], reference=urls["reference"]
                         if manifest.shows_reference(study) else None, **progress)

  @app.get("/api/image/<sid>/<trial_id>/<which>")
  def image(sid, trial_id, which):
    if which not in (*SIDES, "reference"):
      raise Refusal(404, "no such image")
    trial = _trial(sid, _path_id(trial_id))
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
    if not 1 <= trial_id <= db.MAX_ID:
      raise Refusal(400, f"trial must be in 1..{db.MAX_ID}")
    if choice not in SIDES:
      raise Refusal(400, "choice must be 'left' or 'right'")
    if (isinstance(response_ms, bool) or not isinstance(response_ms, (int, float))
        or not math.isfinite(response_ms) or not 0 <= response_ms < 1e9):
      raise Refusal(400, "response_ms must be a non-negative number")
    display = _display(body)
    if not SESSION_ID.fullmatch(sid):
      raise Refusal(404, "unknown session")
    reasons = displaycheck.problems(display, study)
    if display.get("one_to_one") is not True:
      reasons.append("the images were not shown at 1:1 (browser zoom or scaling)")
    if reasons:
      raise Refusal(409, "display check failed: " + "; ".join(reasons), reasons=reasons)
    now = time.time()
    try:
      with db.transaction(engine) as conn:
        trial = _trial(sid, trial_id, conn, lock=True)  # 404 for an unknown session.
        if not trial["pending"]:
          raise Refusal(409, "this pair was already judged in this session")
        chosen = record_vote(conn, trial, choice, response_ms, display, now)
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
      rows = [{"session": s, **_progress(s, conn=conn)} for s in subjects]
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
      subjects = [dict(r) for r in conn.execute(
          sa.select(*(c for c in db.subjects.c if c.name != "client"))).mappings()]
    return flask.jsonify(study=study.get("title"), mode=manifest.mode(study),
                         exported=time.time(), votes=export_rows(engine), subjects=subjects)

  def _json_body():
    if not flask.request.is_json:
      raise Refusal(400, "the request body must be a JSON object (Content-Type: application/json)")
    try:
      body = json.loads(flask.request.get_data(cache=False), parse_constant=_no_constant)
    except (ValueError, RecursionError):
      raise Refusal(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
      raise Refusal(400, "the request body must be a JSON object")
    return body

  def _display(body):
    try:
      return displaycheck.parse(body.get("display"))
    except ValueError as e:
      raise Refusal(400, str(e)) from None

  def _subject(sid):
    if not SESSION_ID.fullmatch(sid):
      raise Refusal(404, "unknown session")
    with engine.connect() as conn:
      if conn.execute(sa.select(db.subjects.c.id).where(db.subjects.c.id == sid)).first() is None:
        raise Refusal(404, "unknown session")

  def _trial(sid, trial_id, conn=None, lock=False):
    if not SESSION_ID.fullmatch(sid):
      raise Refusal(404, "unknown session")
    query = sa.select(db.trials).where(db.trials.c.id == trial_id,
                                       db.trials.c.subject_id == sid)
    if conn is None:
      with engine.connect() as c:
        row = c.execute(query).mappings().first()
    else:
      row = conn.execute(db.lock_rows(query, conn) if lock else query).mappings().first()
    if row is None:
      _subject(sid)
      raise Refusal(403, "this pair was not assigned to this session")
    return row

  def _progress(sid, conn=None):
    if conn is None:
      with engine.connect() as c:
        return _progress(sid, c)
    trials = schedule.trials_of(conn, sid)
    return {"voted": sum(t["voted"] for t in trials), "total": schedule.total_trials(study),
            "training": len(study.get("training", [])),
            "finished": schedule.finished(conn, study, sid, trials)}

  def _check_token():
    auth = flask.request.headers.get("Authorization", "")
    given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
      raise Refusal(401, "experimenter token required (Authorization: Bearer <token>)")

  def _client_key():
    """A keyed hash of the client address: counts sessions per client, stores no address."""
    address = (flask.request.remote_addr or "-").encode()
    return hmac.new(hashlib.sha256(token.encode()).digest(), address, "sha256").hexdigest()[:32]

  def _export_votes():
    return votes_lib.from_rows(export_rows(engine))

  return app


def record_vote(conn, trial, choice, response_ms, display, now):
  """Stores the vote on the pending `trial` (a trials row) inside the write transaction `conn`.

  The response time is measured here, by the server: `server_ms` = 1000 (now - trial served),
  from the moment the trial was assigned (its `/next`) to the vote's arrival, so it includes
  the image download and cannot be claimed by the client; the client's own `response_ms` is
  stored beside it for comparison. Returns the chosen condition.
  """
  other = trial["condition_b"] if trial["left"] == trial["condition_a"] else trial["condition_a"]
  chosen = trial["left"] if choice == "left" else other
  conn.execute(db.votes.insert().values(
      trial_id=trial["id"], subject_id=trial["subject_id"], scene=trial["scene"],
      condition_a=trial["condition_a"], condition_b=trial["condition_b"], chosen=chosen,
      side=choice, response_ms=float(response_ms),
      server_ms=max(0.0, 1000 * (now - trial["served"])), display=display, created=now))
  conn.execute(db.trials.update().where(db.trials.c.id == trial["id"]).values(pending=False))
  return chosen


def _no_constant(name):
  raise ValueError(f"{name} is not JSON")


def _path_id(text):
  """The trial id in a URL, or a 404 (digits only, 1..db.MAX_ID)."""
  if not (text.isascii() and text.isdigit()) or len(text) > 10 or not 1 <= int(text) <= db.MAX_ID:
    raise Refusal(404, "no such trial")
  return int(text)


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
    out.append({"observer": r["subject_id"], "session": 1, "trial": r["trial_id"],
                "scene": r["scene"],
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
