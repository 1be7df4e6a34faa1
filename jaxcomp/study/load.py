"""Simulated subjects against a running study server, and the reconciliation of their votes.

Each subject is a thread with its own keep-alive HTTP connection that does what the page does:
POST /api/session, then until done: GET .../next, GET the left and right images (and the
reference when shown), optionally waits `think_s`, POST /api/vote. A request that fails at the
connection level (a worker killed mid-request) is retried on a new connection, up to `retries`
times; a vote retried after such a failure may find that its first attempt was stored (409): it
is then "stored, not acknowledged", never counted as acknowledged.

`reconcile` compares every acknowledged vote with the experimenter's export (`/admin/export.json`,
keyed by trial id; training votes are not exported): lost = acknowledged but absent or with
another choice, duplicated = a trial exported more than once.
"""

import dataclasses
import http.client
import json
import threading
import time

import numpy as np

GOOD_DISPLAY = {"screen_w": 1920, "screen_h": 1080, "window_w": 1900, "window_h": 1000,
                "device_pixel_ratio": 1, "one_to_one": True}


class Unavailable(Exception):
  """A request that failed at the connection level on every retry."""


@dataclasses.dataclass
class Outcome:
  """What one subject saw.

  Attributes:
    session: its session id (None if it was never admitted).
    acked: [(trial id, kind, 'left'|'right')] votes answered 200.
    unacked: trial ids whose vote was stored by an attempt whose answer was lost.
    latencies: [(route name, seconds)] of every request.
    errors: {description: count} of unexpected statuses (5xx, refusals) and requests that failed
      on every retry.
    retried: {description: count} of connection-level failures that a retry on a new connection
      overcame (a worker killed mid-request, an idle keep-alive connection the server closed).
    finished: whether the server said done.
  """

  session: str = None
  acked: list = dataclasses.field(default_factory=list)
  unacked: list = dataclasses.field(default_factory=list)
  latencies: list = dataclasses.field(default_factory=list)
  errors: dict = dataclasses.field(default_factory=dict)
  retried: dict = dataclasses.field(default_factory=dict)
  finished: bool = False


class Client:
  """One keep-alive connection to host:port, reopened after a connection failure."""

  def __init__(self, host, port, outcome, retries=5, timeout_s=30.0):
    self.host, self.port, self.outcome = host, port, outcome
    self.retries, self.timeout_s = retries, timeout_s
    self.conn = None

  def request(self, route, method, path, body=None):
    """(status, body bytes, whether an earlier attempt failed at the connection level)."""
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload is not None else {}
    failed = False
    for _ in range(self.retries + 1):
      if self.conn is None:
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
      start = time.perf_counter()
      try:
        self.conn.request(method, path, payload, headers)
        response = self.conn.getresponse()
        data = response.read()
      except (OSError, http.client.HTTPException) as e:
        self.conn.close()
        self.conn = None
        failed = True
        key = f"{route}: {type(e).__name__}"
        self.outcome.retried[key] = self.outcome.retried.get(key, 0) + 1
        time.sleep(0.05)
        continue
      self.outcome.latencies.append((route, time.perf_counter() - start))
      if response.status >= 500:
        key = f"{route}: HTTP {response.status}"
        self.outcome.errors[key] = self.outcome.errors.get(key, 0) + 1
      return response.status, data, failed
    raise Unavailable(f"{method} {path}")

  def close(self):
    if self.conn is not None:
      self.conn.close()


def run_subject(host, port, seed, think_s=0.0, deadline=None, retries=5):
  """One simulated subject's full session; returns its `Outcome` (never raises)."""
  outcome = Outcome()
  client = Client(host, port, outcome, retries)
  rng = np.random.default_rng(seed)
  try:
    status, data, _ = client.request("session", "POST", "/api/session",
                                     {"consent": True, "display": GOOD_DISPLAY,
                                      "user_agent": "jaxcomp-load"})
    if status != 200:
      outcome.errors[f"session: HTTP {status}"] = 1
      return outcome
    sid = json.loads(data)["session"]
    outcome.session = sid
    while deadline is None or time.monotonic() < deadline:
      status, data, _ = client.request("next", "GET", f"/api/session/{sid}/next")
      if status != 200:
        outcome.errors[f"next: HTTP {status}"] = outcome.errors.get(f"next: HTTP {status}", 0) + 1
        return outcome
      trial = json.loads(data)
      if trial["done"]:
        outcome.finished = True
        return outcome
      for side in ("left", "right", "reference"):
        if trial.get(side):
          client.request("image", "GET", trial[side])
      if think_s:
        time.sleep(rng.exponential(think_s))
      choice = "left" if rng.random() < 0.5 else "right"
      status, data, failed = client.request(
          "vote", "POST", "/api/vote",
          {"session": sid, "trial": trial["trial"], "choice": choice,
           "response_ms": float(rng.uniform(400, 3000)), "display": GOOD_DISPLAY})
      if status == 200:
        outcome.acked.append((trial["trial"], trial["kind"], choice))
      elif status == 409 and failed:
        outcome.unacked.append(trial["trial"])
      else:
        key = f"vote: HTTP {status}"
        outcome.errors[key] = outcome.errors.get(key, 0) + 1
  except Unavailable as e:
    outcome.errors[f"gave up: {e}"] = 1
  finally:
    client.close()
  return outcome


def run_subjects(host, port, count, seed=0, think_s=0.0, max_seconds=120.0, retries=5,
                 on_progress=None):
  """Runs `count` subjects at once; returns ([Outcome], wall seconds).

  `on_progress(acked votes so far)` is called about every 50 ms from the calling thread until
  the subjects finish (the kill variant uses it to pick its moment).
  """
  deadline = time.monotonic() + max_seconds
  outcomes = [None] * count

  def work(k):
    outcomes[k] = run_subject(host, port, [seed, k], think_s, deadline, retries)

  threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(count)]
  start = time.perf_counter()
  for t in threads:
    t.start()
  while any(t.is_alive() for t in threads):
    if on_progress is not None:
      on_progress(sum(len(o.acked) for o in outcomes if o is not None))
    time.sleep(0.05)
  return outcomes, time.perf_counter() - start


def reconcile(outcomes, export):
  """Acknowledged votes against an export dict (`/admin/export.json`).

  Returns:
    {'acknowledged': main+golden votes answered 200, 'exported': export rows, 'lost': acknowledged
     votes absent from the export or exported with another choice, 'duplicated': trials exported
     more than once, 'stored_unacknowledged': exported votes whose answer was lost,
     'unexplained': exported votes that no subject sent}.
  """
  rows = {}
  duplicated = 0
  for row in export["votes"]:
    if row["trial"] in rows:
      duplicated += 1
    rows[row["trial"]] = row
  acked = {(t, choice) for o in outcomes for t, kind, choice in o.acked if kind != "training"}
  unacked = {t for o in outcomes for t in o.unacked}
  lost = sum(1 for t, choice in acked
             if t not in rows or rows[t]["selection"] != (1 if choice == "left" else 2))
  acked_trials = {t for t, _ in acked}
  return {"acknowledged": len(acked), "exported": len(export["votes"]), "lost": lost,
          "duplicated": duplicated,
          "stored_unacknowledged": sum(1 for t in rows if t in unacked),
          "unexplained": sum(1 for t in rows if t not in acked_trials and t not in unacked)}


def summary(outcomes, seconds):
  """{'subjects', 'finished', 'votes', 'votes_per_s', 'requests_per_s', 'p50_ms', 'p99_ms',
  'vote_p99_ms', 'errors', 'retried'} of a run."""
  latencies = np.array([s for o in outcomes for _, s in o.latencies]) * 1000
  votes = [s * 1000 for o in outcomes for route, s in o.latencies if route == "vote"]
  errors, retried = {}, {}
  for o in outcomes:
    for key, n in o.errors.items():
      errors[key] = errors.get(key, 0) + n
    for key, n in o.retried.items():
      retried[key] = retried.get(key, 0) + n
  count = sum(len(o.acked) for o in outcomes)
  return {"subjects": len(outcomes), "finished": sum(o.finished for o in outcomes),
          "votes": count, "seconds": round(seconds, 2), "votes_per_s": round(count / seconds, 1),
          "requests_per_s": round(len(latencies) / seconds, 1),
          "p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
          "p99_ms": round(float(np.percentile(latencies, 99)), 1) if len(latencies) else None,
          "vote_p99_ms": round(float(np.percentile(votes, 99)), 1) if votes else None,
          "errors": errors, "retried": retried}
