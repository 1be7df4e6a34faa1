"""`jaxcomp study export-bapps`: the votes of a 2AFC study as a BAPPS-layout split.

Subjects are screened as in `analysis.screen` (golden units failed, votes faster than the
threshold dropped, too many fast votes rejects; transitivity does not apply, one pair per
triplet). For each triplet, from the kept subjects' main votes:

    judge = (votes choosing p1) / (votes)       the share preferring p1, as in BAPPS

Triplets with fewer than `min_votes` kept votes are left out of the split (the count is printed
and their names listed in info.json); it is an error when none is left. The split is written by
`perceptual.twoafc.write_split` (ref/, p0/, p1/ PNG, judge/ [1] float32 .npy, file names those of
the source split) with info.json:

    {"study", "judge", "thresholds", "min_votes", "subjects", "kept_subjects", "rejections",
     "votes", "left_share", "skipped": [names],
     "triplets": [{"name", "votes", "p1_votes", "judge", "source": source info.json row}]}

`left_share` is the share of kept main votes for the left image (0.5 without side bias).
"""

import collections
import dataclasses
import os

import numpy as np
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.perceptual import twoafc
from jaxcomp.study import analysis, manifest


@dataclasses.dataclass(frozen=True)
class Tally:
  """Screened 2AFC votes per triplet.

  Attributes:
    votes: {scene id: kept main votes}.
    p1_votes: {scene id: kept main votes choosing p1}.
    subjects: {observer: subject report} (`analysis.screen`).
    rejections: screening log entries.
    left_share: share of kept main votes for the left image (None without votes).
  """

  votes: dict
  p1_votes: dict
  subjects: dict
  rejections: list
  left_share: float


def tally(study, all_votes, thresholds):
  """`Tally` of `all_votes` ([votes.Vote], main and golden) for a 2AFC manifest.

  UserError when the study is not 2AFC, there are no votes, or votes name triplets or
  conditions that are not in the study (votes from another study).
  """
  if manifest.mode(study) != "2afc":
    raise UserError("export-bapps needs a 2AFC study (prepare --mode 2afc); this one is "
                    f"mode {manifest.mode(study)!r}")
  if not all_votes:
    raise UserError("no votes yet")
  ids = {s["id"] for s in study["scenes"]}
  foreign = [v for v in all_votes if v.kind == "main" and (
      v.scene not in ids or {v.condition_1, v.condition_2} != set(manifest.TWO_AFC_CONDITIONS))]
  if foreign:
    raise UserError(f"{len(foreign)} votes are not on this study's triplets (e.g. scene "
                    f"{foreign[0].scene!r}): votes from another study?")
  kept, subjects, log = analysis.screen(all_votes, thresholds)
  votes, p1_votes = collections.Counter(), collections.Counter()
  for v in kept:
    votes[v.scene] += 1
    p1_votes[v.scene] += v.winner == "p1"
  left = [v.selection == 1 for v in kept]
  return Tally(dict(votes), dict(p1_votes), subjects, log,
               float(np.mean(left)) if left else None)


def _read(folder, relative):
  with Image.open(os.path.join(folder, relative)) as img:
    return np.asarray(img.convert("RGB"))


def export(study, folder, all_votes, out, thresholds, min_votes=1):
  """Writes the judged split to `out` (atomically); returns info.json's dict.

  Args:
    study: 2AFC manifest (`manifest.load`), folder: its folder.
    all_votes: [votes.Vote] of the study.
    out: split folder to write.
    thresholds: `analysis.Thresholds` for screening.
    min_votes: triplets with fewer kept votes are left out.
  """
  if min_votes < 1:
    raise UserError(f"--min-votes must be at least 1, got {min_votes}")
  counts = tally(study, all_votes, thresholds)
  kept_subjects = sorted(o for o, r in counts.subjects.items() if not r["rejected"])
  if not kept_subjects:
    raise UserError(f"all {len(counts.subjects)} subjects were rejected by the screening: "
                    + "; ".join(f"{e['observer'][:8]}: {e['reason']}" for e in counts.rejections
                                if e["action"] == "rejected")[:400])
  judged = [s for s in study["scenes"] if counts.votes.get(s["id"], 0) >= min_votes]
  skipped = [s["name"] for s in study["scenes"] if counts.votes.get(s["id"], 0) < min_votes]
  if not judged:
    raise UserError(f"no triplet has {min_votes} or more kept votes yet "
                    f"({sum(counts.votes.values())} kept votes on {len(counts.votes)} of "
                    f"{len(study['scenes'])} triplets)")
  rows = []
  for s in judged:
    n, p1 = counts.votes[s["id"]], counts.p1_votes.get(s["id"], 0)
    rows.append({"name": s["name"], "votes": n, "p1_votes": p1, "judge": p1 / n,
                 "source": s.get("info", {})})
  split = twoafc.Split(
      ref=np.stack([_read(folder, s["reference"]) for s in judged]),
      p0=np.stack([_read(folder, s["conditions"]["p0"]) for s in judged]),
      p1=np.stack([_read(folder, s["conditions"]["p1"]) for s in judged]),
      judge=np.asarray([r["judge"] for r in rows], np.float32),
      names=tuple(s["name"] for s in judged))
  info = {"study": study.get("title"), "source": study.get("source", {}),
          "judge": "share of the kept subjects' main votes choosing p1",
          "thresholds": dataclasses.asdict(thresholds), "min_votes": min_votes,
          "subjects": len(counts.subjects), "kept_subjects": kept_subjects,
          "rejections": counts.rejections, "votes": sum(r["votes"] for r in rows),
          "left_share": counts.left_share, "skipped": skipped, "triplets": rows}
  twoafc.write_split(out, split, info)
  return info
