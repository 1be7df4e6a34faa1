"""Bad input to every route of the study server: a 4xx JSON error, nothing stored, no 500.

Oversized bodies, out-of-range and malformed ids, deeply nested JSON, wrong types, tokens in the
URL; security headers on every answer; the per-client session-creation limit; the access log
holds no token, query string or session id; failures answer JSON without a traceback.
"""

import logging

import sqlalchemy as sa

from jaxcomp import cli
from jaxcomp.study import db, manifest, schedule, server
from test_study_server import AUTH, GOOD, TOKEN, make_study
from test_study_server import study_app  # pylint: disable=unused-import

TABLES = (db.subjects, db.trials, db.votes, db.pair_queue)


def _counts(engine):
  with engine.connect() as conn:
    return [conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() for t in TABLES]


def _check(response, status, name):
  assert response.status_code == status, (name, response.status_code, response.get_data()[:200])
  assert response.is_json and isinstance(response.json.get("error"), str), name
  assert "Traceback" not in response.get_data(as_text=True), name
  for header in server.SECURITY_HEADERS:
    assert header in response.headers, (name, header)


def test_every_route_refuses_bad_input_and_stores_nothing(study_app, caplog):
  client, engine, _ = study_app
  caplog.set_level(logging.INFO, logger="jaxcomp.study.access")
  sid = client.post("/api/session", json={"consent": True, "display": GOOD}).json["session"]
  trial = client.get(f"/api/session/{sid}/next").json["trial"]
  before = _counts(engine)
  huge = b'{"consent": true, "pad": "' + b"x" * (server.Limits().max_body_bytes + 10) + b'"}'
  nested = b"[" * 8000 + b"]" * 8000  # Within the size limit, far past the recursion limit.
  deep_object = b'{"consent": true, "display": ' + b'{"a": ' * 1500 + b"1" + b"}" * 1501
  vote = {"session": sid, "trial": trial, "choice": "left", "response_ms": 900, "display": GOOD}
  cases = {
      # POST /api/session
      "session: oversized": (client.post("/api/session", data=huge,
                                         content_type="application/json"), 413),
      "session: nested": (client.post("/api/session", data=nested,
                                      content_type="application/json"), 400),
      "session: deep object": (client.post("/api/session", data=deep_object,
                                           content_type="application/json"), 400),
      "session: NaN": (client.post("/api/session", data=b'{"consent": true, "display": NaN}',
                                   content_type="application/json"), 400),
      "session: not UTF-8": (client.post("/api/session", data=b'{"consent": "\xff\xfe"}',
                                         content_type="application/json"), 400),
      "session: display list": (client.post("/api/session", json={"consent": True,
                                                                  "display": [1, 2]}), 400),
      "session: huge number": (client.post("/api/session", json={
          "consent": True, "display": dict(GOOD, screen_w=10 ** 400)}), 400),
      "session: agent object": (client.post("/api/session", json={
          "consent": True, "display": GOOD, "user_agent": {"a": 1}}), 400),
      # POST /api/vote
      "vote: oversized": (client.post("/api/vote", data=huge,
                                      content_type="application/json"), 413),
      "vote: nested": (client.post("/api/vote", data=nested,
                                   content_type="application/json"), 400),
      "vote: trial 2^63": (client.post("/api/vote", json=dict(vote, trial=2 ** 63)), 400),
      "vote: trial 2^31": (client.post("/api/vote", json=dict(vote, trial=2 ** 31)), 400),
      "vote: trial -1": (client.post("/api/vote", json=dict(vote, trial=-1)), 400),
      "vote: trial float": (client.post("/api/vote", json=dict(vote, trial=1.5)), 400),
      "vote: trial list": (client.post("/api/vote", json=dict(vote, trial=[trial])), 400),
      "vote: session int": (client.post("/api/vote", json=dict(vote, session=5)), 400),
      "vote: session NUL": (client.post("/api/vote", json=dict(vote, session="a\0b")), 404),
      "vote: session long": (client.post("/api/vote", json=dict(vote, session="a" * 5000)), 404),
      "vote: choice object": (client.post("/api/vote", json=dict(vote, choice={"l": 1})), 400),
      "vote: response_ms string": (client.post("/api/vote", json=dict(vote, response_ms="1")),
                                   400),
      "vote: response_ms huge": (client.post("/api/vote", json=dict(vote, response_ms=1e300)),
                                 400),
      "vote: display nested": (client.post("/api/vote", json=dict(vote, display={
          **GOOD, "screen_w": {"a": {"b": 1}}})), 400),
      "vote: GET": (client.get("/api/vote"), 405),
      # GET /api/session/<sid>, /next, /api/image
      "state: bad sid": (client.get("/api/session/%00"), 404),
      "state: long sid": (client.get("/api/session/" + "f" * 4000), 404),
      "next: unicode sid": (client.get("/api/session/%C3%A9" * 16 + "/next"), 404),
      "next: unknown sid": (client.get("/api/session/" + "0" * 32 + "/next"), 404),
      "image: trial 2^63": (client.get(f"/api/image/{sid}/{2 ** 63}/left"), 404),
      "image: trial 10^30": (client.get(f"/api/image/{sid}/{10 ** 30}/left"), 404),
      "image: trial -1": (client.get(f"/api/image/{sid}/-1/left"), 404),
      "image: trial text": (client.get(f"/api/image/{sid}/abc/left"), 404),
      "image: which": (client.get(f"/api/image/{sid}/{trial}/codec"), 404),
      "image: bad sid": (client.get(f"/api/image/{'z' * 32}/{trial}/left"), 404),
      # Experimenter routes
      "admin: token in URL": (client.get(f"/admin/export.json?token={TOKEN}"), 400),
      "admin: no token": (client.get("/admin/export.csv"), 401),
      "admin: wrong token": (client.get("/admin/progress",
                                        headers={"Authorization": "Bearer x"}), 401),
      "admin: basic auth": (client.get("/admin/progress",
                                       headers={"Authorization": f"Basic {TOKEN}"}), 401),
      "unknown route": (client.get("/wp-admin.php"), 404),
  }
  for name, (response, status) in cases.items():
    _check(response, status, name)
  assert _counts(engine) == before
  # The session still works: the pending trial takes its one vote.
  assert client.post("/api/vote", json=vote).status_code == 200
  log = caplog.text
  assert TOKEN not in log and "token=" not in log and sid not in log
  assert '"route": "/api/session/<sid>/next"' in log


def test_session_creation_is_limited_per_client(tmp_path):
  study, folder = manifest.load(make_study(str(tmp_path / "study")))
  engine = db.connect(f"sqlite:///{tmp_path / 'v.db'}")
  app = server.create_app(study, folder, engine, TOKEN,
                          server.Limits(sessions_per_client=3, session_window_s=60))
  client = app.test_client()

  def start(address):
    return client.post("/api/session", json={"consent": True, "display": GOOD},
                       environ_base={"REMOTE_ADDR": address})

  assert [start("10.0.0.1").status_code for _ in range(3)] == [200] * 3
  _check(start("10.0.0.1"), 429, "fourth session")
  assert start("10.0.0.2").status_code == 200  # Another client is not affected.
  with engine.connect() as conn:
    clients = conn.execute(sa.select(db.subjects.c.client)).scalars().all()
  assert len(clients) == 4 and not any("10.0.0" in c for c in clients)  # Keyed hash, no address.
  export = client.get("/admin/export.json", headers=AUTH).json
  assert all("client" not in s for s in export["subjects"])


def test_failures_answer_json_without_traceback(tmp_path, monkeypatch, caplog):
  study, folder = manifest.load(make_study(str(tmp_path / "study")))
  engine = db.connect(f"sqlite:///{tmp_path / 'v.db'}")
  client = server.create_app(study, folder, engine, TOKEN).test_client()
  sid = client.post("/api/session", json={"consent": True, "display": GOOD}).json["session"]

  def broken(*_):
    raise RuntimeError("secret internals")

  monkeypatch.setattr(schedule, "next_trial", broken)
  with caplog.at_level(logging.ERROR, logger="jaxcomp.study.error"):
    response = client.get(f"/api/session/{sid}/next")
  _check(response, 500, "internal error")
  assert "secret" not in response.get_data(as_text=True)
  assert "secret internals" in caplog.text  # The server's log keeps the traceback.
  # A database that cannot be opened: 503, JSON.
  gone = db.open_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
  client = server.create_app(study, folder, gone, TOKEN).test_client()
  _check(client.post("/api/session", json={"consent": True, "display": GOOD}), 503, "no db")


def test_a_database_of_an_older_jaxcomp_is_refused_in_one_line(tmp_path, capsys):
  folder = make_study(str(tmp_path / "study"))
  path = tmp_path / "old.db"
  old = sa.create_engine(f"sqlite:///{path}")
  with old.begin() as conn:  # The trials table before `pending` existed.
    conn.exec_driver_sql("CREATE TABLE trials (id INTEGER PRIMARY KEY, subject_id VARCHAR(64))")
  old.dispose()
  assert cli.main(["study", "serve", "--study", folder, "--db", f"sqlite:///{path}"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and "older jaxcomp" in err, err
