"""Which pair a subject sees next: training, then main trials with golden units interleaved.

Order for one subject: every training unit of the manifest; then `trials_per_subject` main
trials, with one golden unit after every `golden_every` main trials (while unused ones remain).
Main trials (blocks of three in the adjacent design, else single trials) cycle through the scenes
in a per-subject random order; within a scene the design picks a pair this subject has not judged
yet:
  full / random: the next pair of the subject's own seeded permutation of all pairs (full uses
    one permutation for everybody, random one per subject);
  adjacent: closed triangles of neighbours, so that every subject judges whole triples and the
    transitivity screen (`analysis`) has data: a subject's main trials come in blocks of three in
    one scene, (i, j), (j, k), (i, k). The block opens with the unjudged pair nearest in the
    scene's current group ranking (Bradley-Terry on all main votes so far; fewest group
    comparisons first) that can still be closed; its second pair joins the condition k nearest in
    rank to i and j (k's neighbour among them), its third closes the triangle. So two of the three
    pairs are rank neighbours and the third is two ranks apart: `trials_per_subject` main trials
    give floor(trials / 3) closed triples per subject (`closed_triples`). A block that cannot be
    closed (every triangle through the pair judged) stays a single pair;
  active: the first pair of the scene's queue (db.pair_queue) that this subject has not judged,
    claimed with FOR UPDATE SKIP LOCKED so concurrent subjects take different pairs; an empty
    queue is refilled with a batch of the pairs of largest expected information gain under the
    group's Thurstone posterior (`active.batch`), under a per-scene lock on PostgreSQL; if the
    subject has judged every queued pair, the unjudged pair of largest gain.
In a 2AFC study (design "balanced") every scene is one triplet with the single pair (p0, p1);
each subject judges a triplet at most once, and the next main trial is the unjudged triplet with
the fewest main votes from the group, then the fewest assigned main trials (pending ones count, so
subjects starting together get different triplets), then the subject's seeded random order.
The screen side of each condition is drawn per trial. Everything is seeded by the design seed and
the subject id, so a replayed study assigns the same trials (the active design also depends on the
order in which the group's votes arrived).

Concurrency: a trial is inserted only in a write transaction (`db.transaction`) that first locks
the subject's row (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transaction locks the database) and
sees the subject's trials unchanged since they were read, so two requests of one session never
both assign; the database's unique constraints are the backstop. The planning itself runs before,
without a lock (`next_trial`), so the write lock is held for a few statements only.
"""

import hashlib
import time
import zlib

import numpy as np
import sqlalchemy as sa

from jaxcomp.study import active, db, designs, manifest, scaling

ADJACENT_ALPHA = 0.1
RANKING_TOL = 1e-2  # The adjacent design needs the group's ranking, not precise scores.


def subject_seed(subject_id):
  """A 31-bit integer from the subject id."""
  return int.from_bytes(hashlib.sha256(subject_id.encode()).digest()[:4], "big") >> 1


def trials_of(conn, subject_id):
  """The subject's trials in order, each a dict with 'voted' (bool: not pending)."""
  rows = conn.execute(sa.select(db.trials).where(db.trials.c.subject_id == subject_id)
                      .order_by(db.trials.c.position)).mappings().all()
  return [{**r, "voted": not r["pending"]} for r in rows]


def total_trials(study):
  """Trials a subject sees at most (training + main + golden)."""
  design = study["design"]
  main = design["trials_per_subject"]
  if manifest.mode(study) == "2afc":
    main = min(main, len(study["scenes"]))
  every = design.get("golden_every", 0)
  golden = min(len(study.get("golden", [])), main // every) if every else 0
  return len(study.get("training", [])) + main + golden


def finished(conn, study, subject_id, existing):
  """Whether the subject voted on every assigned trial and no further trial is due."""
  return all(t["voted"] for t in existing) and _plan(conn, study, subject_id, existing,
                                                      claim=False) is None


def next_trial(engine, study, subject_id):
  """(trial, votes so far): the subject's pending trial (assigning a new one if none is pending),
  or None when done; raises LookupError for an unknown subject.

  Optimistic first: the subject's trials are read and the next pair planned without any lock
  (the adjacent design's Bradley-Terry fit runs here), then a short write transaction locks the
  subject's row and inserts the trial if the subject's trials did not change meanwhile. A pending
  trial is answered from the read alone. The active design (its queue), and a subject whose trials
  changed meanwhile, are planned inside the write transaction (`assign_locked`).
  """
  with engine.connect() as conn:
    existing = _trials_of_known(conn, subject_id)
    voted = sum(t["voted"] for t in existing)
    pending = [t for t in existing if not t["voted"]]
    if pending:
      return pending[0], voted
    plan = None if study["design"]["name"] == "active" else _plan(
        conn, study, subject_id, existing)
  if study["design"]["name"] != "active":
    if plan is None:
      return None, voted
    with db.transaction(engine) as conn:
      _lock_subject(conn, subject_id)
      count = conn.execute(sa.select(sa.func.count()).select_from(db.trials).where(
          db.trials.c.subject_id == subject_id)).scalar()
      if count == len(existing):
        return _insert(conn, study, subject_id, len(existing), plan), voted
  with db.transaction(engine) as conn:
    return assign_locked(conn, study, subject_id)


def assign_locked(conn, study, subject_id):
  """`next_trial` inside one write transaction `conn` (`db.transaction`), subject row locked."""
  _lock_subject(conn, subject_id)
  existing = trials_of(conn, subject_id)
  voted = sum(t["voted"] for t in existing)
  pending = [t for t in existing if not t["voted"]]
  if pending:
    return pending[0], voted
  plan = _plan(conn, study, subject_id, existing)
  if plan is None:
    return None, voted
  return _insert(conn, study, subject_id, len(existing), plan), voted


def _trials_of_known(conn, subject_id):
  """`trials_of`, or LookupError if the subject does not exist."""
  if conn.execute(sa.select(db.subjects.c.id).where(
      db.subjects.c.id == subject_id)).first() is None:
    raise LookupError(subject_id)
  return trials_of(conn, subject_id)


def _lock_subject(conn, subject_id):
  if conn.execute(db.lock_rows(sa.select(db.subjects.c.id).where(
      db.subjects.c.id == subject_id), conn)).first() is None:
    raise LookupError(subject_id)


def _insert(conn, study, subject_id, position, plan):
  """Inserts the planned trial at `position`; returns it as a dict with 'voted' False."""
  kind, scene, pair, expected = plan
  seed = study["design"].get("seed", 0)
  rng = np.random.default_rng([seed, subject_seed(subject_id), position])
  a, b = sorted(pair)
  row = {"subject_id": subject_id, "position": position, "kind": kind, "scene": scene,
         "condition_a": a, "condition_b": b, "left": pair[int(rng.integers(2))],
         "expected": expected, "served": time.time(), "pending": True}
  row["id"] = conn.execute(db.trials.insert().values(**row)).inserted_primary_key[0]
  return {**row, "voted": False}


def _plan(conn, study, subject_id, existing, claim=True):
  """(kind, scene, (c1, c2), expected) of the next trial, or None."""
  training = study.get("training", [])
  if len(existing) < len(training):
    return _unit("training", training[len(existing)])
  design = study["design"]
  main = [t for t in existing if t["kind"] == "main"]
  golden_done = sum(t["kind"] == "golden" for t in existing)
  every = design.get("golden_every", 0)
  golden = study.get("golden", [])
  if (every and main and len(main) % every == 0 and golden_done < len(main) // every
      and golden_done < len(golden)):
    return _unit("golden", golden[golden_done])
  if len(main) >= design["trials_per_subject"]:
    return None
  judged = {(t["scene"], t["condition_a"], t["condition_b"]) for t in existing}
  scenes = study["scenes"]
  order = np.random.default_rng([design.get("seed", 0), subject_seed(subject_id)]).permutation(
      len(scenes))
  if manifest.mode(study) == "2afc":
    scene = _least_judged_triplet(conn, scenes, order, {s for s, _, _ in judged})
    return None if scene is None else ("main", scene["id"], tuple(scene["conditions"]), None)
  if design["name"] == "adjacent":
    return _plan_triangle(conn, design, scenes, order, main, judged)
  for step in range(len(scenes)):
    scene = scenes[order[(len(main) + step) % len(scenes)]]
    pair = _pick(conn, design, scene, subject_id, judged, claim)
    if pair is not None:
      return "main", scene["id"], pair, None
  return None


def closed_triples(study):
  """Closed triples the design plans per subject: floor(main trials / 3) for the adjacent design
  (capped by what the scenes hold: at most C(n, 2) // 3 edge-disjoint triangles per scene of n
  conditions), 0 for the others (full, random and active designs close triples only by chance)."""
  design = study["design"]
  if manifest.mode(study) == "2afc" or design["name"] != "adjacent":
    return 0
  room = sum(len(s["conditions"]) * (len(s["conditions"]) - 1) // 6 for s in study["scenes"]
             if len(s["conditions"]) >= 3)
  return min(design["trials_per_subject"] // 3, room)


def triangle_blocks(main):
  """The subject's main trials (in order) grouped into triangle blocks: a trial joins the last
  block if that has fewer than 3 trials, is in the same scene, and the union of conditions stays
  a triple sharing one with the new pair. [[trial, ...], ...]."""
  blocks = []
  for t in main:
    last = blocks[-1] if blocks else None
    if last and len(last) < 3 and last[0]["scene"] == t["scene"]:
      names = {c for x in last for c in (x["condition_a"], x["condition_b"])}
      new = {t["condition_a"], t["condition_b"]}
      if names & new and len(names | new) == 3:
        last.append(t)
        continue
    blocks.append([t])
  return blocks


def _plan_triangle(conn, design, scenes, order, main, judged):
  """(kind, scene, pair, None) of the adjacent design: close the open triangle, else open one in
  the next scene of the subject's order (see the module docstring); None when nothing is left."""
  blocks = triangle_blocks(main)
  by_id = {s["id"]: s for s in scenes}
  if blocks and len(blocks[-1]) < 3 and blocks[-1][0]["scene"] in by_id:
    scene = by_id[blocks[-1][0]["scene"]]
    pair = _extend_triangle(conn, design, scene, blocks[-1], judged)
    if pair is not None:
      return "main", scene["id"], pair, None
  for step in range(len(scenes)):
    scene = scenes[order[(len(blocks) + step) % len(scenes)]]
    pair = _open_triangle(conn, design, scene, judged)
    if pair is not None:
      return "main", scene["id"], pair, None
  return None


def _judged_in(scene, judged):
  return {tuple(sorted((a, b))) for s, a, b in judged if s == scene["id"]}


def _group_ranking(conn, design, scene, names):
  """({condition: position in the group's Bradley-Terry ranking}, [C, C] group games, [C] scores)."""
  counts = _group_counts(conn, scene["id"], names)
  scores = scaling.bradley_terry(counts, alpha=ADJACENT_ALPHA, tol=RANKING_TOL)  # A ranking suffices.
  position = {names[c]: k for k, c in enumerate(designs.ranking(scores, design.get("seed", 0)))}
  return position, counts + counts.T, scores


def _thirds(pair, names, done):
  """Conditions k that close a triangle with `pair`: (a, k) and (b, k) both unjudged."""
  a, b = pair
  return [k for k in names if k not in pair and tuple(sorted((a, k))) not in done
          and tuple(sorted((b, k))) not in done]


def _open_triangle(conn, design, scene, judged):
  """The first pair of a new triangle in `scene`: the nearest unjudged pair in the group ranking
  that can still be closed (any nearest unjudged pair if none can); None if all are judged."""
  names = sorted(scene["conditions"])
  done = _judged_in(scene, judged)
  index = {c: k for k, c in enumerate(names)}
  position, games, scores = _group_ranking(conn, design, scene, names)
  candidates = [(names[i], names[j]) for i, j in designs.adjacent_round(
      scores, {(index[a], index[b]) for a, b in done}, design.get("seed", 0))]
  if not candidates:
    return None
  closable = [p for p in candidates if _thirds(p, names, done)]
  return min(closable or candidates, key=lambda p: (
      abs(position[p[0]] - position[p[1]]), games[index[p[0]], index[p[1]]]))


def _extend_triangle(conn, design, scene, block, judged):
  """The next pair of the open triangle `block` (1 or 2 trials), or None if it cannot go on."""
  done = _judged_in(scene, judged)
  names = sorted(scene["conditions"])
  present = sorted({c for t in block for c in (t["condition_a"], t["condition_b"])})
  if len(block) == 2:
    missing = [p for p in ((present[0], present[1]), (present[0], present[2]),
                           (present[1], present[2])) if p not in done]
    return missing[0] if missing else None
  thirds = _thirds(present, names, done)
  if not thirds:
    return None
  index = {c: k for k, c in enumerate(names)}
  position, games, _ = _group_ranking(conn, design, scene, names)
  a, b = present

  def near(k):
    return a if abs(position[k] - position[a]) <= abs(position[k] - position[b]) else b

  k = min(thirds, key=lambda k: (max(abs(position[k] - position[a]), abs(position[k] - position[b])),
                                 abs(position[k] - position[near(k)]),
                                 games[index[k], index[near(k)]]))
  return near(k), k


def _least_judged_triplet(conn, scenes, order, judged):
  """The 2AFC scene not in `judged` with the fewest (main votes, main trials), then by `order`."""
  def counts(query):
    return dict(conn.execute(query.where(db.trials.c.kind == "main")
                             .group_by(db.trials.c.scene)).all())

  assigned = counts(sa.select(db.trials.c.scene, sa.func.count()))
  voted = counts(sa.select(db.trials.c.scene, sa.func.count())
                 .join(db.votes, db.votes.c.trial_id == db.trials.c.id))
  rank = {int(k): r for r, k in enumerate(order)}
  candidates = [k for k, s in enumerate(scenes) if s["id"] not in judged]
  if not candidates:
    return None
  best = min(candidates, key=lambda k: (voted.get(scenes[k]["id"], 0),
                                        assigned.get(scenes[k]["id"], 0), rank[k]))
  return scenes[best]


def _unit(kind, unit):
  return kind, unit["scene"], tuple(unit["conditions"]), unit["expected"]


def _pick(conn, design, scene, subject_id, judged, claim=True):
  """A pair of `scene` unjudged by the subject, by the full, random or active design (the adjacent
  design plans triangles, `_plan_triangle`); None if all are judged.

  With `claim` False the active design only says whether one is left (its queue is untouched).
  """
  names = sorted(scene["conditions"])
  done = {tuple(sorted((names.index(a), names.index(b))))
          for s, a, b in judged if s == scene["id"]}
  seed = design.get("seed", 0)
  if design["name"] == "active":
    if not claim:
      return None if len(done) == len(names) * (len(names) - 1) // 2 else names[:2]
    pair = _claim_active(conn, scene["id"], names, subject_id, done)
    return None if pair is None else (names[pair[0]], names[pair[1]])
  if design["name"] == "full":
    order = designs.full(len(names), seed)
  else:
    order = designs.full(len(names), [seed, subject_seed(subject_id)])
  left = [p for p in order if p not in done]
  return (names[left[0][0]], names[left[0][1]]) if left else None


def _group_counts(conn, scene_id, names):
  """[C, C] wins among all subjects' main votes in the scene."""
  index = {c: k for k, c in enumerate(names)}
  query = (sa.select(db.votes.c.chosen, db.votes.c.condition_a, db.votes.c.condition_b)
           .join(db.trials, db.trials.c.id == db.votes.c.trial_id)
           .where(db.trials.c.kind == "main", db.votes.c.scene == scene_id))
  counts = np.zeros((len(names), len(names)))
  for chosen, a, b in conn.execute(query):
    loser = b if chosen == a else a
    counts[index[chosen], index[loser]] += 1
  return counts


def _claim_active(conn, scene_id, names, subject_id, done):
  """(i, j) for the active design: a queued pair the subject has not judged, else a refill."""
  pair = _claim_queued(conn, scene_id, names, subject_id)
  if pair is not None:
    return pair
  if conn.dialect.name == "postgresql":  # One refill per scene at a time, on any host.
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(zlib.crc32(scene_id.encode()))))
    pair = _claim_queued(conn, scene_id, names, subject_id)
    if pair is not None:
      return pair
  counts = _group_counts(conn, scene_id, names)
  if len(done) == len(names) * (len(names) - 1) // 2:
    return None
  batch = active.batch(counts, seed=int(counts.sum()))
  now = time.time()  # The old batch (judged by this subject) is stale: replace it.
  conn.execute(db.pair_queue.delete().where(db.pair_queue.c.scene == scene_id))
  conn.execute(db.pair_queue.insert(), [
      {"scene": scene_id, "condition_a": names[i], "condition_b": names[j], "created": now}
      for i, j in batch])
  pair = _claim_queued(conn, scene_id, names, subject_id)
  return pair if pair is not None else active.best_pair(counts, done)


def _claim_queued(conn, scene_id, names, subject_id):
  """Takes the oldest queued pair of the scene not judged by the subject (SKIP LOCKED)."""
  q = db.pair_queue.c
  judged = sa.select(db.trials.c.id).where(
      db.trials.c.subject_id == subject_id, db.trials.c.scene == q.scene,
      db.trials.c.condition_a == q.condition_a, db.trials.c.condition_b == q.condition_b)
  query = (sa.select(q.id, q.condition_a, q.condition_b)
           .where(q.scene == scene_id, ~sa.exists(judged)).order_by(q.id).limit(1))
  if conn.dialect.name == "postgresql":
    query = query.with_for_update(skip_locked=True)
  row = conn.execute(query).first()
  if row is None:
    return None
  conn.execute(db.pair_queue.delete().where(q.id == row.id))
  return names.index(row.condition_a), names.index(row.condition_b)
