"""`jaxcomp study serve` in production: gunicorn worker processes sharing one database.

Starts the real server (2 worker processes) on 127.0.0.1 and drives it with racing requests of
one session (every `next` and vote sent 4 times at once), then concurrent simulated subjects while
a worker is SIGKILLed; the rules are then checked in the database itself. Runs on SQLite, and on
PostgreSQL when $JAXCOMP_STUDY_POSTGRES_URL names a scratch database (CI starts one: .ci/run).
"""

import collections
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from jaxcomp import cli
from jaxcomp.study import db, load, loadbench, schedule
from test_study_server import POSTGRES, reset_postgres

pytestmark = pytest.mark.slow

SUBJECTS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
  """A database URL whose study tables are empty."""
  if request.param == "postgresql":
    if not POSTGRES:
      pytest.skip("set JAXCOMP_STUDY_POSTGRES_URL=postgresql+psycopg://... to test PostgreSQL")
    reset_postgres().dispose()
    return POSTGRES
  return f"sqlite:///{tmp_path / 'votes.db'}"


def _race(port, method, path, body, count):
  """`count` identical requests at once on separate connections: [(status, JSON)]."""
  results = [None] * count
  barrier = threading.Barrier(count)

  def one(k):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    barrier.wait()
    conn.request(method, path, None if body is None else json.dumps(body),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    results[k] = (response.status, json.loads(response.read()))
    conn.close()

  threads = [threading.Thread(target=one, args=(k,)) for k in range(count)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return results


def _racing_session(port):
  """A session whose every `next` and vote is sent 4 times at once; returns acknowledged votes."""
  status, body = _race(port, "POST", "/api/session",
                       {"consent": True, "display": load.GOOD_DISPLAY}, 1)[0]
  assert status == 200
  sid = body["session"]
  acked = []
  while True:
    answers = _race(port, "GET", f"/api/session/{sid}/next", None, 4)
    assert {s for s, _ in answers} == {200}
    if answers[0][1]["done"]:
      return sid, acked
    trials = {a["trial"] for _, a in answers}
    assert len(trials) == 1, answers  # One pending trial, whoever asked.
    trial = trials.pop()
    kind = answers[0][1]["kind"]
    votes = _race(port, "POST", "/api/vote",
                  {"session": sid, "trial": trial, "choice": "left", "response_ms": 800,
                   "display": load.GOOD_DISPLAY}, 4)
    assert sorted(s for s, _ in votes) == [200, 409, 409, 409], votes
    acked.append((trial, kind, "left"))


def test_workers_keep_the_rules_under_concurrency_and_a_killed_worker(database, tmp_path):
  study = loadbench.make_study(str(tmp_path / "study"), trials=5, size=64)
  log_path = tmp_path / "server.log"
  with open(log_path, "w", encoding="utf-8") as log:
    server = loadbench.Server(str(tmp_path / "study"), database, workers=2, threads=2, log=log)
    try:
      assert len(loadbench.worker_pids(server.process.pid)) == 2
      killed = []

      def kill_once(acked):
        if not killed and acked >= SUBJECTS * 2:
          killed.append(server.kill_one_worker())

      sid, racer_acked = _racing_session(server.port)  # Before the kill: every answer counts.
      outcomes, _ = load.run_subjects("127.0.0.1", server.port, SUBJECTS, seed=1,
                                      max_seconds=120, on_progress=kill_once)
      export = server.get_json("/admin/export.json")  # Token in the Authorization header.
      with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/admin/progress?token={loadbench.TOKEN}", timeout=30)
      assert refused.value.code == 400
      deadline = time.monotonic() + 60
      while time.monotonic() < deadline and len(loadbench.worker_pids(server.process.pid)) < 2:
        time.sleep(0.2)
      workers_after = loadbench.worker_pids(server.process.pid)
    finally:
      server.stop()
  assert killed and killed[0] is not None
  assert len(workers_after) == 2 and killed[0] not in workers_after  # The master replaced it.
  assert all(o.finished for o in outcomes), [o.errors for o in outcomes]
  check = load.reconcile(outcomes + [load.Outcome(session=sid, acked=racer_acked)], export)
  assert check["lost"] == 0 and check["duplicated"] == 0 and check["unexplained"] == 0, check
  per_subject = schedule.total_trials(study) - len(study["training"])  # Not exported.
  # A vote stored just before its worker was killed is answered 409 on the retry: not lost.
  assert check["acknowledged"] + check["stored_unacknowledged"] == (SUBJECTS + 1) * per_subject
  pids = {json.loads(line)["pid"] for line in log_path.read_text().splitlines()
          if line.startswith("{")}
  assert len(pids) >= 2  # Both workers served.
  assert loadbench.TOKEN not in log_path.read_text()  # Neither the header nor the URL is logged.

  engine = db.open_engine(database)
  with engine.connect() as conn:
    trials = conn.execute(sa.select(db.trials)).mappings().all()
    votes = conn.execute(sa.select(db.votes)).mappings().all()
  engine.dispose()
  per_trial = collections.Counter(v["trial_id"] for v in votes)
  assert max(per_trial.values()) == 1
  pending = collections.Counter(t["subject_id"] for t in trials if t["pending"])
  assert not pending  # Every session finished: nothing left pending.
  pairs = collections.Counter((t["subject_id"], t["scene"], t["condition_a"], t["condition_b"])
                              for t in trials)
  assert max(pairs.values()) == 1
  assert {t["id"] for t in trials} == set(per_trial)
  mine = {v["trial_id"] for v in votes if v["subject_id"] == sid}
  assert mine == {t for t, _, _ in racer_acked}
  assert len(racer_acked) == schedule.total_trials(study)
  acked_all = {t for o in outcomes for t, _, _ in o.acked}
  assert acked_all <= set(per_trial)


def test_serve_cli_refuses_bad_settings(tmp_path, capsys):
  folder = str(tmp_path / "study")
  loadbench.make_study(folder, trials=2, size=32)
  for argv, message in (
      (["--workers", "0"], "--workers >= 1"),
      (["--max-body", "10"], "--max-body >= 1024"),
      (["--db", "nosuchdb://x"], "--db nosuchdb://x"),
  ):
    assert cli.main(["study", "serve", "--study", folder, *argv]) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
  with socket.socket() as busy:
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    assert cli.main(["study", "serve", "--study", folder, "--port", str(port)]) == 2
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


def test_bench_study_reports_and_reconciles(capsys):
  assert cli.main(["bench", "study", "--subjects", "3", "--trials", "2", "--workers", "1",
                   "--databases", "sqlite", "--size", "32", "--json"]) == 0
  report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  (run,) = report["runs"]
  assert run["database"] == "sqlite" and run["workers"] == 1 and run["finished"] == 3
  assert run["votes"] == 3 * 4 and run["acknowledged"] == 3 * 2  # Training votes not exported.
  assert run["lost"] == 0 and run["duplicated"] == 0 and not run["errors"]
  assert run["votes_per_s"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"]
  assert report["machine"]["cores_total"] >= 1
