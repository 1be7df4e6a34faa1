"""The long-format vote table: one row per judgment, as pwcmp reads it, and count matrices.

A vote says that `observer`, in `scene` (one source image at one bit rate), compared
`condition_1` with `condition_2` and chose `selection` (1: condition_1, 2: condition_2). The CSV
columns are exactly pwcmp's: observer, session, scene, condition_1, condition_2, selection. The
JSON export carries more per vote (trial kind, golden expectation, the client's and the server's
response times, display, sides).
"""

import csv
import dataclasses
import io
import json
from typing import Optional

import numpy as np

from jaxcomp.errors import UserError

CSV_COLUMNS = ("observer", "session", "scene", "condition_1", "condition_2", "selection")


@dataclasses.dataclass(frozen=True)
class Vote:
  """One judgment.

  Attributes:
    observer: pseudonymous subject id.
    session: session number of that subject (1 for one sitting).
    scene: content id, '<image>@<rate>' for prepared studies.
    condition_1, condition_2: the two condition ids (order as stored; not the screen sides).
    selection: 1 if condition_1 was chosen, 2 if condition_2.
    kind: 'main' or 'golden' ('training' votes are never exported).
    expected: for golden units, the condition that should win; else None.
    response_ms: the client's reported time from the pair being shown to the click, in ms;
      None if unknown.
    server_ms: the server's measured time from assigning the trial to receiving the vote, in
      ms (`server.record_vote`); None if unknown (pwcmp CSV, older exports). Screening trusts
      it over `response_ms`, which a client can claim.
  """

  observer: str
  session: int
  scene: str
  condition_1: str
  condition_2: str
  selection: int
  kind: str = "main"
  expected: Optional[str] = None
  response_ms: Optional[float] = None
  server_ms: Optional[float] = None

  @property
  def time_ms(self):
    """(response time in ms, 'server' | 'client') for screening: the server's measurement when
    known, else the client's claim; (None, None) if neither."""
    if self.server_ms is not None:
      return self.server_ms, "server"
    if self.response_ms is not None:
      return self.response_ms, "client"
    return None, None

  @property
  def winner(self):
    return self.condition_1 if self.selection == 1 else self.condition_2

  @property
  def loser(self):
    return self.condition_2 if self.selection == 1 else self.condition_1


def to_csv(votes):
  """pwcmp long-format CSV text of the main (non-golden) votes."""
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(CSV_COLUMNS)
  for v in votes:
    if v.kind == "main":
      writer.writerow([v.observer, v.session, v.scene, v.condition_1, v.condition_2, v.selection])
  return buf.getvalue()


def read(path):
  """[Vote] from a CSV (pwcmp columns) or JSON (`jaxcomp study serve` export) file."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  if path.lower().endswith(".json"):
    return _from_json(text, path)
  return _from_csv(text, path)


def _from_csv(text, path):
  reader = csv.DictReader(io.StringIO(text))
  missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or ())]
  if missing:
    raise UserError(f"{path}: missing CSV columns {missing} (need {', '.join(CSV_COLUMNS)})")
  votes = []
  for line, row in enumerate(reader, start=2):
    try:
      votes.append(Vote(observer=row["observer"], session=int(row["session"] or 1),
                        scene=row["scene"], condition_1=row["condition_1"],
                        condition_2=row["condition_2"], selection=_selection(row["selection"])))
    except ValueError as e:
      raise UserError(f"{path}:{line}: {e}") from None
  return votes


def _from_json(text, path):
  try:
    return from_rows(json.loads(text)["votes"])
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"{path}: not a study export ({type(e).__name__}: {e})") from None


def from_rows(rows):
  """[Vote] from export rows (dicts as in the JSON export's "votes" list)."""
  return [Vote(observer=str(r["observer"]), session=int(r.get("session", 1)), scene=r["scene"],
               condition_1=r["condition_1"], condition_2=r["condition_2"],
               selection=_selection(r["selection"]), kind=r.get("kind", "main"),
               expected=r.get("expected"), response_ms=r.get("response_ms"),
               server_ms=r.get("server_ms")) for r in rows]


def _selection(value):
  selection = int(value)
  if selection not in (1, 2):
    raise ValueError(f"selection must be 1 or 2, got {value!r}")
  return selection


def count_matrix(votes, conditions):
  """[C, C] float64 D with D[i, j] = times conditions[i] was chosen over conditions[j]."""
  index = {c: i for i, c in enumerate(conditions)}
  counts = np.zeros((len(conditions), len(conditions)))
  for v in votes:
    counts[index[v.winner], index[v.loser]] += 1
  return counts


def conditions_of(votes):
  """Sorted condition ids that occur in `votes`."""
  return sorted({v.condition_1 for v in votes} | {v.condition_2 for v in votes})
