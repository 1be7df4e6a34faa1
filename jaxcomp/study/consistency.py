"""Transitivity of one subject's judgments: circular triads and Kendall's coefficient ζ.

For a complete tournament over n conditions with a_i wins each (Kendall & Babington Smith 1940),
the number of circular triads is d = C(n, 3) - Σ_i C(a_i, 2), its maximum is
d_max = (n³ - n)/24 for odd n and (n³ - 4n)/24 for even n, and ζ = 1 - d/d_max (1: no cycles).
A random judge has E[d] = C(n, 3)/4.

An incomplete design (adjacent-pair sampling) leaves most triples unjudged; then only the triples
whose three pairs were all compared count, and the circular share of them is compared with the
chance rate 0.25 (as `btl_transitivity` in the R package rasch does).
"""

import dataclasses
import itertools
from math import comb

import numpy as np

CHANCE_TRIAD_RATE = 0.25


def d_max(n):
  """Largest possible number of circular triads among n conditions."""
  return (n ** 3 - n) // 24 if n % 2 else (n ** 3 - 4 * n) // 24


def circular_triads(wins):
  """d for a complete tournament given its row scores `wins` ([n] ints, Σ = n(n-1)/2)."""
  n = len(wins)
  return comb(n, 3) - sum(comb(int(a), 2) for a in wins)


def zeta(d, n):
  """Kendall's coefficient of consistence 1 - d/d_max (1.0 for n < 3)."""
  top = d_max(n)
  return 1.0 - d / top if top else 1.0


@dataclasses.dataclass(frozen=True)
class Triads:
  """Circular triads of one subject on one scene.

  Attributes:
    conditions: n, the number of conditions the subject judged in the scene.
    complete: whether every pair of those conditions was judged (then `zeta` is defined).
    judged_triples: triples whose three pairs were all judged.
    circular: circular triples among them.
    d_max: d_max(n) if complete, else 0.
  """

  conditions: int
  complete: bool
  judged_triples: int
  circular: int
  d_max: int

  @property
  def rate(self):
    """Circular share of the judged triples (None when there are none)."""
    return self.circular / self.judged_triples if self.judged_triples else None

  @property
  def zeta(self):
    """ζ for a complete tournament; None for an incomplete one."""
    return zeta(self.circular, self.conditions) if self.complete else None


def triads(preference):
  """`Triads` of one subject's [n, n] preference matrix (P[i, j] = times i chosen over j).

  A pair judged more than once counts by its majority; a tied pair counts as not judged.
  """
  preference = np.asarray(preference, np.float64)
  n = len(preference)
  beats = preference > preference.T
  judged = beats | beats.T
  complete = bool(np.all(judged | np.eye(n, dtype=bool)))
  total = circular = 0
  for i, j, k in itertools.combinations(range(n), 3):
    if judged[i, j] and judged[i, k] and judged[j, k]:
      total += 1
      # A triple is circular iff every member wins exactly one of its two games.
      if int(beats[i, j]) + int(beats[i, k]) == 1 and int(beats[j, i]) + int(beats[j, k]) == 1:
        circular += 1
  return Triads(conditions=n, complete=complete, judged_triples=total, circular=circular,
                d_max=d_max(n) if complete else 0)
