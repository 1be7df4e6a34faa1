"""`jaxcomp study analyze`: subject screening, preference matrices and scales, per scene and rate.

Screening (every rejection is logged with its reason; thresholds are parameters, since the
Recommendations prescribe none for transitivity):
  1. Speed: votes faster than `min_response_ms` are dropped; a subject with more than
     `max_fast_share` of such votes is rejected. The time is the server's measurement (from
     assigning the trial to receiving its vote, `server.record_vote`); the client's reported
     `response_ms` only where the server's is unknown (a pwcmp CSV), since a client can claim any.
  2. Golden units: a subject who fails more than `max_golden_failures` is rejected.
  3. Transitivity, pooled over the subject's scenes: where the subject judged complete
     tournaments, ζ = 1 - Σd / Σd_max must be at least `min_zeta`; where the design was
     incomplete, the circular-triad rate over at least `min_triples` closed triples (triples whose
     three pairs the subject judged) must stay below `max_triad_rate` (chance: 0.25), counted over
     the incomplete scenes only. With fewer closed triples (and no complete scene) the test is not
     applicable, and the report says so ("subject has N closed triples, needs M"); the adjacent
     design hands out closed triangles so that it applies (`schedule.closed_triples`).
Each subject's report lists the tests that rejected it with their figures (`screening_markdown`).
The kept subjects' votes give, per scene ('<image>@<rate>'), the group preference matrix, winning
frequencies (raw, and normalised to sum 1 over the scene's conditions), Bradley-Terry scores and
Thurstone Case V JOD with bootstrap confidence intervals over subjects, the MSE model at 0 JOD
and first; per rate, low to high, the means over images with 95 % intervals and the achieved bpp
(`summary`).
"""

import collections
import dataclasses

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.study import consistency, scaling, summary, votes as votes_lib


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """Screening thresholds (see the module docstring).

  max_triad_rate and min_triples: a Thurstone observer's chance of a circular triad is at most
  the chance rate 0.25 (reached when the three conditions are equal), and adjacent sampling
  compares close conditions on purpose, so careful observers sit near it (0.21 for three
  neighbours 0.44 JOD apart; 10 conditions over 4 JOD). A cut at 0.25 would reject 28 % of them
  over 13 closed triples (the default design's); twice chance over at least 10 rejects at most
  2.4 % (exact binomial, 13 triples, rate 0.25) and still catches subjects who are systematically
  intransitive. Random clickers (rate 0.25) are caught by the golden units, not by this test.
  """

  min_zeta: float = 0.5
  max_triad_rate: float = 0.5
  min_triples: int = 10
  max_golden_failures: int = 0
  min_response_ms: float = 300.0
  max_fast_share: float = 0.2


@dataclasses.dataclass(frozen=True)
class Options:
  """Scaling options.

  Attributes:
    bt_alpha: Bradley-Terry regularisation (choix's alpha).
    prior_sd: Thurstone prior standard deviation in JOD.
    bootstrap: bootstrap replicates for the confidence intervals (0: none).
    seed: of the bootstrap.
    reference: condition fixed at 0 JOD, listed first (default: the MSE model,
      `summary.default_reference`).
  """

  bt_alpha: float = 0.01
  prior_sd: float = 10.0
  bootstrap: int = 200
  seed: int = 0
  reference: str = None


def screen(all_votes, thresholds):
  """Screens subjects.

  Returns:
    (kept main votes, {observer: subject report}, [rejection log entries]); a log entry is
    {'observer', 'action': 'rejected' | 'dropped votes' | 'not tested', 'test': 'golden' |
    'transitivity' | 'speed', 'reason'}. A subject report has 'rejected', 'reasons',
    'rejected_by' (the tests that rejected it) and 'tests': per test its figures and verdict.
  """
  by_subject = collections.defaultdict(list)
  for v in all_votes:
    by_subject[v.observer].append(v)
  kept, subjects, log = [], {}, []
  for observer in sorted(by_subject):
    report, reasons, rejected_by, main = _screen_subject(by_subject[observer], thresholds, log)
    report["rejected"] = bool(reasons)
    report["reasons"] = reasons
    report["rejected_by"] = sorted(set(rejected_by))
    subjects[observer] = report
    for test, reason in zip(rejected_by, reasons):
      log.append({"observer": observer, "action": "rejected", "test": test, "reason": reason})
    if not reasons:
      kept.extend(main)
  return kept, subjects, log


def _median(values):
  return round(float(np.median(values)), 1) if values else None


def _screen_subject(subject_votes, t, log):
  """(report with a 'tests' entry per screen, [reasons], [test of each reason], kept main votes).

  Speed uses each vote's server-measured time (`Vote.time_ms`), the client's claim only where the
  server's is unknown (pwcmp CSV, older exports).
  """
  observer = subject_votes[0].observer
  reasons, rejected_by = [], []
  timed = [(v, *v.time_ms) for v in subject_votes if v.time_ms[0] is not None]
  fast = [v for v, ms, _ in timed if ms < t.min_response_ms]
  clocks = sorted({clock for _, _, clock in timed})
  server = [v.server_ms for v in subject_votes if v.server_ms is not None]
  client = [v.response_ms for v in subject_votes if v.response_ms is not None]
  speed = {"clock": "+".join(clocks) or None, "timed_votes": len(timed), "fast_votes": len(fast),
           "min_response_ms": t.min_response_ms, "max_fast_share": t.max_fast_share,
           "server_median_ms": _median(server), "client_median_ms": _median(client),
           "rejected": False}
  if fast:
    log.append({"observer": observer, "action": "dropped votes", "test": "speed", "reason":
                f"{len(fast)} of {len(timed)} votes faster than {t.min_response_ms:g} ms"})
    if len(fast) > t.max_fast_share * len(timed):
      speed["rejected"] = True
      clock = ("by the server's clock" if clocks == ["server"] else
               "by the client's own report" if clocks == ["client"] else "by server/client clocks")
      detail = "" if not server else f"; server-measured median {speed['server_median_ms']:g} ms"
      if server and client:
        detail += f", client-reported median {speed['client_median_ms']:g} ms"
      reasons.append(f"too fast: {len(fast)} of {len(timed)} votes under "
                     f"{t.min_response_ms:g} ms (> {t.max_fast_share:.0%}) {clock}{detail}")
      rejected_by.append("speed")
  fast_ids = {id(v) for v in fast}
  golden = [v for v in subject_votes if v.kind == "golden"]
  failed = [v for v in golden if v.expected is not None and v.winner != v.expected]
  golden_test = {"units": len(golden), "failed": len(failed),
                 "max_failures": t.max_golden_failures,
                 "rejected": len(failed) > t.max_golden_failures}
  if golden_test["rejected"]:
    reasons.append(f"golden units: failed {len(failed)} of {len(golden)} "
                   f"(> {t.max_golden_failures})")
    rejected_by.append("golden")
  main = [v for v in subject_votes if v.kind == "main" and id(v) not in fast_ids]
  report = {"votes": len(subject_votes), "golden": len(golden), "golden_failed": len(failed),
            "fast_votes": len(fast), **_transitivity(main)}
  transitivity = {"complete_scenes": report["complete_scenes"], "zeta": report["zeta"],
                  "closed_triples": report["judged_triples"],
                  "circular_triads": report["circular_triads"],
                  "triad_rate": report["triad_rate"], "min_zeta": t.min_zeta,
                  "max_triad_rate": t.max_triad_rate, "min_triples": t.min_triples,
                  "applicable": bool(report["complete_scenes"]
                                     or report["judged_triples"] >= t.min_triples),
                  "rejected": False}
  if report["zeta"] is not None and report["zeta"] < t.min_zeta:
    reasons.append(f"inconsistent: zeta {report['zeta']:.3f} < {t.min_zeta:g} over "
                   f"{report['complete_scenes']} complete scenes")
    rejected_by.append("transitivity")
    transitivity["rejected"] = True
  if (report["judged_triples"] >= t.min_triples and report["triad_rate"] is not None
      and report["triad_rate"] >= t.max_triad_rate):
    reasons.append(f"inconsistent: circular-triad rate {report['triad_rate']:.3f} >= "
                   f"{t.max_triad_rate:g} over {report['judged_triples']} judged triples")
    rejected_by.append("transitivity")
    transitivity["rejected"] = True
  if not transitivity["applicable"]:
    transitivity["why"] = (f"transitivity test not applicable: subject has "
                           f"{report['judged_triples']} closed triples, needs {t.min_triples}")
    if any(s["conditions"] >= 3 for s in report["scenes"].values()):
      log.append({"observer": observer, "action": "not tested", "test": "transitivity",
                  "reason": transitivity["why"]})
  report["tests"] = {"golden": golden_test, "transitivity": transitivity, "speed": speed}
  return report, reasons, rejected_by, main


def _transitivity(main):
  """One subject's circular triads: ζ pooled over complete scenes of 4 or more conditions, the
  circular share over the closed triples of the other scenes (incomplete ones, and the single
  closed triangles of the adjacent design)."""
  d = d_max = complete = circular = judged = 0
  per_scene = {}
  for scene, scene_votes in _by_scene(main).items():
    conditions = votes_lib.conditions_of(scene_votes)
    tri = consistency.triads(votes_lib.count_matrix(scene_votes, conditions))
    per_scene[scene] = {"conditions": tri.conditions, "complete": tri.complete,
                        "judged_triples": tri.judged_triples, "circular": tri.circular,
                        "zeta": tri.zeta}
    if tri.complete and tri.conditions >= 4:  # A tournament: Kendall's ζ.
      complete += 1
      d += tri.circular
      d_max += tri.d_max
    else:  # Incomplete, or one closed triangle (3 conditions): the triad rate.
      circular += tri.circular
      judged += tri.judged_triples
  return {"complete_scenes": complete, "zeta": 1.0 - d / d_max if d_max else None,
          "judged_triples": judged, "circular_triads": circular,
          "triad_rate": circular / judged if judged else None, "scenes": per_scene}


def _by_scene(scene_votes):
  groups = collections.defaultdict(list)
  for v in scene_votes:
    groups[v.scene].append(v)
  return dict(sorted(groups.items()))


def _finite(values):
  return [None if not np.isfinite(x) else round(float(x), 6) for x in values]


def scale_scene(scene_votes, options, bpp=None):
  """Scales of one scene from the kept votes: matrices, frequencies, BT, JOD with CIs.

  Conditions come in `summary.ordered` order (options.reference first, then alphabetically); JOD
  is 0 at options.reference, or at the first condition if the scene lacks it ('jod_reference'
  says which). bpp: optional {condition: achieved bpp} of this scene's stimuli.
  """
  conditions = summary.ordered(votes_lib.conditions_of(scene_votes), options.reference)
  observers = sorted({v.observer for v in scene_votes})
  per_subject = np.stack([
      votes_lib.count_matrix([v for v in scene_votes if v.observer == o], conditions)
      for o in observers])
  counts = per_subject.sum(0)
  reference = conditions.index(options.reference) if options.reference in conditions else 0
  freq, normalised = scaling.winning_frequencies(counts)

  def jod(c):
    return scaling.thurstone(c, reference=reference, prior_sd=options.prior_sd)

  def bt(c):
    return scaling.bradley_terry(c, alpha=options.bt_alpha)

  result = {"conditions": conditions, "observers": len(observers),
            "comparisons": int(counts.sum()), "connected": scaling.connected(counts),
            "preference_matrix": counts.astype(int).tolist(),
            "winning_frequency": _finite(freq), "winning_frequency_normalised": _finite(normalised),
            "bradley_terry": _finite(bt(counts)), "jod_reference": conditions[reference],
            "jod": _finite(jod(counts))}
  if bpp:
    result["bpp"] = [bpp.get(c) for c in conditions]
  if options.bootstrap and len(observers) > 1:
    for name, fit in (("jod", jod), ("bradley_terry", bt)):
      low, high = scaling.bootstrap(per_subject, fit, options.bootstrap, options.seed)
      result[f"{name}_ci"] = [_finite(low), _finite(high)]
  return result


def analyze(all_votes, thresholds=Thresholds(), options=Options(), stimuli=None):
  """The whole analysis as one JSON-ready dict: subjects, rejections, scenes, rates.

  stimuli: optional `summary.stimuli(study folder)`: rate targets (which order the rates) and
  each stimulus's achieved bpp. options.reference None: the MSE model (`summary.default_reference`).
  """
  kept, subjects, log = screen(all_votes, thresholds)
  names = votes_lib.conditions_of(kept) if kept else []
  if options.reference is not None:
    if kept and options.reference not in names:
      raise UserError(f"reference condition '{options.reference}' has no kept votes (conditions: "
                      f"{', '.join(names)})")
    reference = {"condition": options.reference, "why": "chosen"}
  elif names:
    condition, why = summary.default_reference(names)
    reference = {"condition": condition, "why": why}
  else:
    reference = {"condition": None, "why": "no kept votes"}
  options = dataclasses.replace(options, reference=reference["condition"])
  bpp = (stimuli or {}).get("bpp", {})
  scenes = {scene: scale_scene(scene_votes, options, bpp.get(scene))
            for scene, scene_votes in _by_scene(kept).items()}
  return {"thresholds": dataclasses.asdict(thresholds), "options": dataclasses.asdict(options),
          "screening": screening_counts(subjects), "subjects": subjects, "kept_subjects": sorted(o for o, r in subjects.items()
                                                        if not r["rejected"]),
          "rejections": log, "reference": reference, "scenes": scenes,
          "rates": summary.per_rate(kept, reference["condition"], options, stimuli)}


TESTS = ("golden", "transitivity", "speed")


def screening_counts(subjects):
  """{'subjects', 'kept', 'rejected_by': {test: subjects it rejected}, 'transitivity_not_applicable'}."""
  return {"subjects": len(subjects), "kept": sum(not r["rejected"] for r in subjects.values()),
          "rejected_by": {test: sum(test in r["rejected_by"] for r in subjects.values())
                          for test in TESTS},
          "transitivity_not_applicable": sum(not r["tests"]["transitivity"]["applicable"]
                                             for r in subjects.values())}


def screening_markdown(report):
  """A table, one row per subject: each test's figures and which tests rejected the subject."""
  t = report["thresholds"]
  counts = report["screening"]
  lines = [f"Screening: {counts['kept']} of {counts['subjects']} subjects kept; rejected by "
           + ", ".join(f"{test} {n}" for test, n in counts["rejected_by"].items())
           + f" (a subject may fail several); transitivity not applicable to "
           f"{counts['transitivity_not_applicable']}.", "",
           f"Golden: more than {t['max_golden_failures']} failed units rejects. Transitivity: "
           f"circular-triad rate >= {t['max_triad_rate']:g} over >= {t['min_triples']} closed "
           f"triples, or zeta < {t['min_zeta']:g} over complete scenes, rejects. Speed: more than "
           f"{t['max_fast_share']:.0%} of votes under {t['min_response_ms']:g} ms (server-measured "
           "time; the client's claim only where the server's is unknown) rejects.", "",
           "| subject | golden failed | closed triples | circular (rate) | zeta | "
           "median ms server (client) | fast votes | verdict |", "|---|---|---|---|---|---|---|---|"]
  for observer, r in report["subjects"].items():
    g, tr, sp = (r["tests"][k] for k in TESTS)
    rate = "—" if tr["triad_rate"] is None else f"{tr['circular_triads']} ({tr['triad_rate']:.2f})"
    triples = str(tr["closed_triples"]) + ("" if tr["applicable"] else " (not applicable)")
    zeta = "—" if tr["zeta"] is None else f"{tr['zeta']:.2f}"
    ms = "—" if sp["server_median_ms"] is None else f"{sp['server_median_ms']:g}"
    if sp["client_median_ms"] is not None:
      ms += f" ({sp['client_median_ms']:g})"
    verdict = ("rejected: " + ", ".join(r["rejected_by"])) if r["rejected"] else "kept"
    lines.append(f"| {observer} | {g['failed']} of {g['units']} | {triples} | {rate} | {zeta} | "
                 f"{ms} | {sp['fast_votes']} of {sp['timed_votes']} | {verdict} |")
  return "\n".join(lines) + "\n"
