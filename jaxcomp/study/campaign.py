"""`jaxcomp study simulate --study DIR`: simulated subjects run a prepared study end to end.

Each simulated subject is admitted like a real one and takes the trials the server would hand
out (`schedule.next_trial`, the study's own design, training and golden units included) from a
scratch database; its votes are stored by the server's own `server.record_vote`, with the
response time measured against the trial's assignment on a simulated clock. The export
(`server.export_rows`) then goes through the screening of `jaxcomp study analyze`
(`analysis.screen`). Subjects of all types are interleaved (`Settings.concurrent` in progress at
once, in a seeded random order), so the adjacent design ranks by everybody's votes, as live.

Observer types, with true scores q in JOD (1 JOD = 75 % preference) and σ = 1.4826:
  honest    Thurstone observer: P(a ≻ b) = Φ((q_a - q_b) / σ); server-measured response time
            log-normal, median `median_ms`, log-sd 0.5.
  random    coin flips, P = 1/2 on every trial (golden units too); times as honest (so only
            golden units and transitivity can catch them).
  inverted  prefers the worse: P(a ≻ b) = Φ((q_b - q_a) / σ), golden units too; times as honest.
  too-fast  honest-ish (noise σ·`fast_noise`) but answers `fast_ms` after the trial is served
            (uniform), while the client reports `fast_claim_ms` (log-normal): only the server's
            clock shows it.
Golden and training units: the expected condition is `golden_jod` JOD better (an original
against a heavy JPEG is obvious). True scores of the study's conditions come from a file
(`load_truth`) or are synthetic: per scene, the conditions evenly spread over `spread` JOD in a
seeded random order (`synthetic_truth`).

Rank accuracy: after every `tau_step` share of the main votes (in arrival order), Bradley-Terry
per scene on the votes so far, Kendall τ against the true scores, averaged over scenes; once for
the subjects the screening keeps, once for everybody unscreened.
"""

import dataclasses
import hashlib
import json
import time

import numpy as np
from scipy import stats

from jaxcomp.errors import UserError
from jaxcomp.study import analysis, db, manifest, scaling, schedule, server
from jaxcomp.study import votes as votes_lib

OBSERVER_TYPES = ("honest", "random", "inverted", "too-fast")
DISPLAY = {"screen_w": 1920, "screen_h": 1080, "window_w": 1900, "window_h": 1000,
           "device_pixel_ratio": 1, "one_to_one": True}


@dataclasses.dataclass(frozen=True)
class Settings:
  """A simulated campaign.

  Attributes:
    per_type: subjects of each type.
    types: observer types taking part (`OBSERVER_TYPES`).
    concurrent: subjects in progress at once (their trials interleave).
    spread: synthetic truth: range of the true scores in a scene, JOD.
    golden_jod: how much better the expected condition of a golden/training unit is, JOD.
    median_ms: median server-measured response time of careful subjects.
    fast_ms: (lo, hi) server-measured times of the too-fast type, ms.
    fast_claim_ms: median time the too-fast type's client reports, ms.
    fast_noise: the too-fast type's noise relative to an honest observer.
    tau_points: points of the Kendall τ curve.
    seed: of everything.
  """

  per_type: int = 200
  types: tuple = OBSERVER_TYPES
  concurrent: int = 10
  spread: float = 4.0
  golden_jod: float = 6.0
  median_ms: float = 2500.0
  fast_ms: tuple = (40.0, 250.0)
  fast_claim_ms: float = 2400.0
  fast_noise: float = 2.0
  tau_points: int = 12
  seed: int = 0


def synthetic_truth(study, spread, seed):
  """{scene id: {condition: JOD}}: per scene, evenly over [0, spread] in a seeded random order."""
  truth = {}
  for k, scene in enumerate(study["scenes"]):
    names = sorted(scene["conditions"])
    values = np.random.default_rng([seed, k]).permutation(np.linspace(0.0, spread, len(names)))
    truth[scene["id"]] = {c: float(v) for c, v in zip(names, values)}
  return truth


def load_truth(path, study):
  """{scene id: {condition: JOD}} from a JSON file: {condition: JOD} for every scene, or
  {scene id: {condition: JOD}}, or {rate label: {condition: JOD}}. UserError if a condition of
  the study has no score."""
  try:
    with open(path, encoding="utf-8") as f:
      given = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"--truth {path}: {type(e).__name__}: {e}".splitlines()[0]) from None
  if not isinstance(given, dict) or not given:
    raise UserError(f"--truth {path}: expected a JSON object of scores")
  truth = {}
  for scene in study["scenes"]:
    if all(isinstance(v, (int, float)) for v in given.values()):
      scores = given
    else:
      scores = given.get(scene["id"], given.get(scene.get("rate")))
    if not isinstance(scores, dict):
      raise UserError(f"--truth {path}: no scores for scene {scene['id']} (give "
                      "{condition: JOD}, {scene: {...}} or {rate: {...}})")
    missing = [c for c in scene["conditions"] if not isinstance(scores.get(c), (int, float))]
    if missing:
      raise UserError(f"--truth {path}: scene {scene['id']} lacks a score for "
                      f"{', '.join(sorted(missing))}")
    truth[scene["id"]] = {c: float(scores[c]) for c in scene["conditions"]}
  return truth


def _subject_id(seed, k):
  return hashlib.sha256(f"simulated-{seed}-{k}".encode()).hexdigest()[:32]


def _choice(kind, trial, truth, settings, rng):
  """'left' or 'right' for observer `kind` on `trial` (a trials row)."""
  left = trial["left"]
  right = trial["condition_b"] if left == trial["condition_a"] else trial["condition_a"]
  if kind == "random":
    return "left" if rng.random() < 0.5 else "right"
  if trial["expected"] is not None:
    q = {trial["expected"]: settings.golden_jod}
  else:
    q = truth[trial["scene"]]
  diff = q.get(left, 0.0) - q.get(right, 0.0)
  if kind == "inverted":
    diff = -diff
  noise = settings.fast_noise if kind == "too-fast" else 1.0
  p_left = stats.norm.cdf(diff / (scaling.JOD_SIGMA * noise))
  return "left" if rng.random() < p_left else "right"


def _times(kind, settings, rng):
  """(server-measured ms, client-reported ms) of one answer."""
  if kind == "too-fast":
    return (float(rng.uniform(*settings.fast_ms)),
            float(settings.fast_claim_ms * np.exp(0.3 * rng.standard_normal())))
  ms = float(settings.median_ms * np.exp(0.5 * rng.standard_normal()))
  return ms, max(0.0, ms - float(rng.uniform(20, 120)))  # The client misses the download.


def run_subjects(study, engine, truth, settings):
  """Runs every simulated subject through the study's schedule into `engine`; {id: type}."""
  rng = np.random.default_rng([settings.seed, 1])
  kinds = [t for t in settings.types for _ in range(settings.per_type)]
  kinds = [kinds[k] for k in rng.permutation(len(kinds))]
  types = {_subject_id(settings.seed, k): kind for k, kind in enumerate(kinds)}
  waiting = list(types)
  active = []
  while waiting or active:
    while waiting and len(active) < settings.concurrent:
      sid = waiting.pop(0)
      with db.transaction(engine) as conn:
        conn.execute(db.subjects.insert().values(id=sid, created=time.time(), display=DISPLAY,
                                                 user_agent="simulated", client="simulated"))
      active.append(sid)
    for sid in list(active):
      trial, _ = schedule.next_trial(engine, study, sid)
      if trial is None:
        active.remove(sid)
        continue
      kind = types[sid]
      choice = _choice(kind, trial, truth, settings, rng)
      server_ms, client_ms = _times(kind, settings, rng)
      with db.transaction(engine) as conn:
        server.record_vote(conn, trial, choice, client_ms, DISPLAY,
                           trial["served"] + server_ms / 1000)
  return types


def tau_curve(main_votes, truth, points):
  """([K] main comparisons, [K] mean Kendall τ over scenes) on growing prefixes of `main_votes`
  (in arrival order): Bradley-Terry per scene against the true scores."""
  if not main_votes:
    return [], []
  sizes = sorted({int(round(x)) for x in np.linspace(0, len(main_votes), points + 1)[1:]})
  comparisons, taus = [], []
  for size in sizes:
    by_scene = {}
    for v in main_votes[:size]:
      by_scene.setdefault(v.scene, []).append(v)
    values = []
    for scene, scene_votes in by_scene.items():
      names = sorted(truth[scene])
      counts = votes_lib.count_matrix(scene_votes, names)
      fit = scaling.bradley_terry(counts, alpha=0.1, tol=1e-4)
      values.append(np.nan_to_num(stats.kendalltau(fit, [truth[scene][c] for c in names])[0]))
    comparisons.append(size)
    taus.append(round(float(np.mean(values + [0.0] * (len(truth) - len(values)))), 4))
  return comparisons, taus


def check(study, settings):
  """UserError unless `study` is a pairwise-comparison study and `settings` are usable."""
  if manifest.mode(study) != "pc":
    raise UserError("study simulate --study: pairwise-comparison (pc) studies only")
  unknown = [t for t in settings.types if t not in OBSERVER_TYPES]
  if unknown or not settings.types or settings.per_type < 1 or settings.concurrent < 1:
    raise UserError(f"--types from {', '.join(OBSERVER_TYPES)} (got {unknown or 'none'}), "
                    "--per-type >= 1, --concurrent >= 1")


def simulate(study, truth, settings, thresholds=analysis.Thresholds(), truth_source="synthetic"):
  """The campaign report: per type how many subjects the screening keeps and which test rejected
  the others, closed triples per subject, and τ against comparisons (kept vs unscreened)."""
  check(study, settings)
  started = time.perf_counter()
  rows, types = collect(study, truth, settings)
  return screen(study, rows, types, truth, settings, thresholds, truth_source,
                time.perf_counter() - started)


def collect(study, truth, settings):
  """(export rows as `server.export_rows` gives them, {subject id: type}) of a simulated campaign
  on a scratch in-memory database."""
  engine = db.connect("sqlite://")
  try:
    types = run_subjects(study, engine, truth, settings)
    return server.export_rows(engine), types
  finally:
    engine.dispose()


def screen(study, rows, types, truth, settings, thresholds, truth_source, seconds=None):
  """The report of `simulate` from collected export rows (screening is cheap to redo)."""
  all_votes = votes_lib.from_rows(rows)
  kept, subjects, _ = analysis.screen(all_votes, thresholds)
  per_type = {}
  for kind in settings.types:
    reports = [r for sid, r in subjects.items() if types[sid] == kind]
    triples = [r["tests"]["transitivity"]["closed_triples"] for r in reports]
    rates = [r["triad_rate"] for r in reports if r["triad_rate"] is not None]
    per_type[kind] = {
        "subjects": len(reports), "kept": sum(not r["rejected"] for r in reports),
        "kept_share": round(sum(not r["rejected"] for r in reports) / max(len(reports), 1), 4),
        "rejected_by": {test: sum(test in r["rejected_by"] for r in reports)
                        for test in analysis.TESTS},
        "closed_triples": {"min": min(triples, default=0), "max": max(triples, default=0)},
        "transitivity_not_applicable": sum(
            not r["tests"]["transitivity"]["applicable"] for r in reports),
        "mean_triad_rate": round(float(np.mean(rates)), 4) if rates else None}
  main = [v for v in all_votes if v.kind == "main"]
  kept_ids = {id(v) for v in kept}
  kept_main = [v for v in main if id(v) in kept_ids]  # In arrival order, as `main`.
  kept_x, kept_tau = tau_curve(kept_main, truth, settings.tau_points)
  all_x, all_tau = tau_curve(main, truth, settings.tau_points)
  honest, random_ = per_type.get("honest"), per_type.get("random")
  return {
      "study": {"title": study.get("title"), "design": study["design"],
                "scenes": len(study["scenes"]), "golden_units": len(study.get("golden", [])),
                "conditions_per_scene": sorted({len(s["conditions"]) for s in study["scenes"]}),
                "planned_closed_triples": schedule.closed_triples(study)},
      "truth": truth_source, "settings": dataclasses.asdict(settings),
      "thresholds": dataclasses.asdict(thresholds), "per_type": per_type,
      "acceptance": {
          "honest_kept": honest and honest["kept_share"],
          "random_rejected": random_ and round(1 - random_["kept_share"], 4),
          "met": bool(honest and random_ and honest["kept_share"] >= 0.95
                      and 1 - random_["kept_share"] >= 0.90)},
      "tau": {"kept": {"comparisons": kept_x, "tau": kept_tau},
              "unscreened": {"comparisons": all_x, "tau": all_tau}},
      "votes": len(all_votes), "seconds": None if seconds is None else round(seconds, 1)}


def plot(report, path):
  """Kendall τ against main comparisons, kept subjects vs everybody, into a PNG/PDF file."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, ax = plt.subplots(figsize=(6, 4))
  for name, color, marker in (("kept", "tab:green", "o"), ("unscreened", "tab:red", "s")):
    curve = report["tau"][name]
    ax.plot(curve["comparisons"], curve["tau"], color=color, marker=marker, label=name)
  lowest = min([0.0] + [t for c in report["tau"].values() for t in c["tau"]])
  ax.set(xlabel="main comparisons (all scenes)", ylabel="Kendall τ (Bradley-Terry vs truth)",
         ylim=(min(-0.1, lowest - 0.05), 1))
  ax.axhline(0, color="black", linewidth=0.6)
  ax.legend(title="subjects")
  counts = ", ".join(f"{k} {v['kept']}/{v['subjects']}" for k, v in report["per_type"].items())
  ax.set_title(f"{report['study']['design']['name']} design, truth {report['truth']}\nkept: "
               f"{counts}", fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
