"""Active pair selection: expected information gain, ASAP-style batches, the server's queue."""

import time

import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats

from jaxcomp.study import active, db, manifest, scaling, server, simulate
from test_study_server import GOOD, TOKEN, make_study, votes_engine


def _entropy(p):
  p = np.clip(p, 1e-12, 1 - 1e-12)
  return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def test_gain_is_the_mutual_information_of_one_comparison():
  rng = np.random.default_rng(0)
  mean = np.array([0.0, 0.4, 2.5])
  a = rng.normal(size=(3, 3))
  cov = a @ a.T * 0.3
  gain = active.information_gain(mean, cov)
  assert np.allclose(gain, gain.T) and np.all(np.diag(gain) == 0) and np.all(gain >= 0)
  for i, j in ((0, 1), (0, 2), (1, 2)):
    v = cov[i, i] + cov[j, j] - 2 * cov[i, j]
    d = rng.normal(mean[i] - mean[j], np.sqrt(v), 400000)
    p = stats.norm.cdf(d / scaling.JOD_SIGMA)
    monte_carlo = _entropy(p.mean()) - _entropy(p).mean()
    assert gain[i, j] == pytest.approx(monte_carlo, abs=2e-3)


def test_gain_prefers_uncertain_and_close_pairs():
  # 0 and 1 compared often (certain); 2 never compared; 3 far above everything.
  counts = np.zeros((4, 4))
  counts[0, 1] = counts[1, 0] = 20
  counts[3, 0] = counts[3, 1] = 15
  gain = active.gain_matrix(counts)
  assert gain[0, 2] > gain[0, 1] and gain[1, 2] > gain[0, 1]
  # Equally uncertain pairs: the close one beats the foregone conclusion.
  gain = active.information_gain(np.array([0.0, 0.2, 5.0]), np.eye(3) * 0.5)
  assert gain[0, 1] > 5 * gain[0, 2]


def test_batch_is_a_spanning_tree_of_the_most_informative_pairs():
  rng = np.random.default_rng(1)
  counts = rng.integers(0, 4, (9, 9)).astype(float)
  np.fill_diagonal(counts, 0)
  pairs = active.batch(counts, seed=3)
  assert len(pairs) == 8 and len(set(pairs)) == 8 and all(i < j for i, j in pairs)
  graph = np.zeros((9, 9))
  for i, j in pairs:
    graph[i, j] = 1
  assert scaling.connected(graph)
  gain = active.gain_matrix(counts)
  assert gain[pairs[0]] == max(gain[p] for p in pairs)
  assert active.batch(counts, seed=3) == pairs  # Deterministic.
  best = active.best_pair(counts)
  assert gain[best] == pytest.approx(np.max(gain))
  assert active.best_pair(counts, exclude=[best]) != best
  all_pairs = [(i, j) for i in range(9) for j in range(i + 1, 9)]
  assert active.best_pair(counts, exclude=all_pairs) is None


def test_a_batch_for_100_conditions_takes_under_2_seconds():
  rng = np.random.default_rng(2)
  truth = np.linspace(0, 6, 100)
  counts = np.zeros((100, 100))
  for _ in range(3000):
    i, j = rng.choice(100, 2, replace=False)
    won = rng.random() < stats.norm.cdf((truth[i] - truth[j]) / scaling.JOD_SIGMA)
    counts[(i, j) if won else (j, i)] += 1
  start = time.perf_counter()
  pairs = active.batch(counts)
  assert time.perf_counter() - start < 2.0
  assert len(pairs) == 99


def test_simulated_active_design_runs_and_is_deterministic():
  settings = simulate.Settings(conditions=6, observers=5, runs=1, seed=4)
  spent, tau, rmse = simulate.run("active", settings)
  assert spent.tolist() == [5, 10, 15, 20, 25] and len(tau) == 5 and np.all(rmse > 0)
  np.testing.assert_array_equal(tau, simulate.run("active", settings)[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def active_app(request, tmp_path):
  engine = votes_engine(request.param, tmp_path)
  folder = make_study(str(tmp_path / "study"), design="active", trials=6, golden_every=0)
  study, folder = manifest.load(folder)
  yield server.create_app(study, folder, engine, TOKEN).test_client(), engine
  engine.dispose()


def _vote(client, sid, trial):
  return client.post("/api/vote", json={"session": sid, "trial": trial, "choice": "left",
                                        "response_ms": 700, "display": GOOD})


def test_server_hands_out_queued_pairs_to_concurrent_subjects(active_app):
  client, engine = active_app
  sessions = [client.post("/api/session", json={"consent": True, "display": GOOD}).json["session"]
              for _ in range(3)]
  for sid in sessions:  # Training first (2 units).
    for _ in range(2):
      assert _vote(client, sid, client.get(f"/api/session/{sid}/next").json["trial"]).status_code \
          == 200
  firsts = [client.get(f"/api/session/{sid}/next").json["trial"] for sid in sessions]
  with engine.connect() as conn:
    rows = conn.execute(sa.select(db.trials).where(db.trials.c.id.in_(firsts))).mappings().all()
  by_scene = {}
  for r in rows:
    by_scene.setdefault(r["scene"], []).append((r["condition_a"], r["condition_b"]))
  for pairs in by_scene.values():  # A batch of 3 pairs per 4-condition scene: all different.
    assert len(set(pairs)) == len(pairs)
  def queued():
    with engine.connect() as conn:
      return conn.execute(sa.select(sa.func.count()).select_from(db.pair_queue)).scalar()

  for sid, trial in zip(sessions, firsts):
    assert _vote(client, sid, trial).status_code == 200
    before = queued()
    assert client.get(f"/api/session/{sid}").json["finished"] is False
    assert queued() == before  # Asking for progress claims no pair.
    while True:
      data = client.get(f"/api/session/{sid}/next").json
      if data["done"]:
        break
      assert _vote(client, sid, data["trial"]).status_code == 200
  with engine.connect() as conn:
    trials = conn.execute(sa.select(db.trials).where(db.trials.c.kind == "main")).mappings().all()
  assert len(trials) == 3 * 6
  keys = [(t["subject_id"], t["scene"], t["condition_a"], t["condition_b"]) for t in trials]
  assert len(set(keys)) == len(keys)
