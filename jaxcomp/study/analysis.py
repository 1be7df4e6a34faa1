"""`jaxcomp study analyze`: subject screening, preference matrices and scales, per scene and rate.

Screening (every rejection is logged with its reason; thresholds are parameters, since the
Recommendations prescribe none for transitivity):
  1. Votes faster than `min_response_ms` are dropped; a subject with more than `max_fast_share`
     of such votes is rejected.
  2. A subject who fails more than `max_golden_failures` golden units is rejected.
  3. Transitivity, pooled over the subject's scenes: where the subject judged complete
     tournaments, ζ = 1 - Σd / Σd_max must be at least `min_zeta`; where the design was
     incomplete, the circular-triad rate over at least `min_triples` judged triples must stay below
     `max_triad_rate` (chance: 0.25), counted over the incomplete scenes only.
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
  """Screening thresholds (see the module docstring)."""

  min_zeta: float = 0.5
  max_triad_rate: float = 0.25
  min_triples: int = 5
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
    {'observer', 'action': 'rejected' | 'dropped votes', 'reason'}.
  """
  by_subject = collections.defaultdict(list)
  for v in all_votes:
    by_subject[v.observer].append(v)
  kept, subjects, log = [], {}, []
  for observer in sorted(by_subject):
    report, reasons, main = _screen_subject(by_subject[observer], thresholds, log)
    report["rejected"] = bool(reasons)
    report["reasons"] = reasons
    subjects[observer] = report
    for reason in reasons:
      log.append({"observer": observer, "action": "rejected", "reason": reason})
    if not reasons:
      kept.extend(main)
  return kept, subjects, log


def _screen_subject(subject_votes, t, log):
  observer = subject_votes[0].observer
  reasons = []
  timed = [v for v in subject_votes if v.response_ms is not None]
  fast = [v for v in timed if v.response_ms < t.min_response_ms]
  if fast:
    log.append({"observer": observer, "action": "dropped votes", "reason":
                f"{len(fast)} of {len(timed)} votes faster than {t.min_response_ms:g} ms"})
    if len(fast) > t.max_fast_share * len(timed):
      reasons.append(f"too fast: {len(fast)} of {len(timed)} votes under "
                     f"{t.min_response_ms:g} ms (> {t.max_fast_share:.0%})")
  fast_ids = {id(v) for v in fast}
  golden = [v for v in subject_votes if v.kind == "golden"]
  failed = [v for v in golden if v.expected is not None and v.winner != v.expected]
  if len(failed) > t.max_golden_failures:
    reasons.append(f"golden units: failed {len(failed)} of {len(golden)} "
                   f"(> {t.max_golden_failures})")
  main = [v for v in subject_votes if v.kind == "main" and id(v) not in fast_ids]
  report = {"votes": len(subject_votes), "golden": len(golden), "golden_failed": len(failed),
            "fast_votes": len(fast), **_transitivity(main)}
  if report["zeta"] is not None and report["zeta"] < t.min_zeta:
    reasons.append(f"inconsistent: zeta {report['zeta']:.3f} < {t.min_zeta:g} over "
                   f"{report['complete_scenes']} complete scenes")
  if (report["judged_triples"] >= t.min_triples and report["triad_rate"] is not None
      and report["triad_rate"] >= t.max_triad_rate):
    reasons.append(f"inconsistent: circular-triad rate {report['triad_rate']:.3f} >= "
                   f"{t.max_triad_rate:g} over {report['judged_triples']} judged triples")
  return report, reasons, main


def _transitivity(main):
  """One subject's circular triads: ζ pooled over complete scenes, rate over incomplete ones."""
  d = d_max = complete = circular = judged = 0
  per_scene = {}
  for scene, scene_votes in _by_scene(main).items():
    conditions = votes_lib.conditions_of(scene_votes)
    tri = consistency.triads(votes_lib.count_matrix(scene_votes, conditions))
    per_scene[scene] = {"conditions": tri.conditions, "complete": tri.complete,
                        "judged_triples": tri.judged_triples, "circular": tri.circular,
                        "zeta": tri.zeta}
    if tri.complete and tri.d_max:
      complete += 1
      d += tri.circular
      d_max += tri.d_max
    elif not tri.complete:
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
          "subjects": subjects, "kept_subjects": sorted(o for o, r in subjects.items()
                                                        if not r["rejected"]),
          "rejections": log, "reference": reference, "scenes": scenes,
          "rates": summary.per_rate(kept, reference["condition"], options, stimuli)}
