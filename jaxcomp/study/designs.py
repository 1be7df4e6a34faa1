"""Which pairs to compare: full, random, adjacent (PCS 2022), active (information gain).

Conditions are indices 0..n-1; a pair is a sorted tuple (i, j), i < j. Every design is a pure
function of its arguments and a seed.

- full: all n(n-1)/2 pairs, in a seeded random order.
- random: `count` distinct pairs drawn uniformly without replacement.
- adjacent: iterative; in each round the conditions are ranked by the current scores and only
  neighbours in that ranking are compared. A pair is never compared twice by the same judge: when
  neighbour pairs were already judged, the unjudged pairs at the next smallest rank distance
  take their places.
- active: the pairs of largest expected information gain under the group's Thurstone posterior,
  handed out in batches (`active` module, ASAP-style).
"""

import itertools

import numpy as np

DESIGNS = ("full", "random", "adjacent", "active")


def all_pairs(n):
  """[n(n-1)/2] pairs (i, j), i < j, in lexicographic order."""
  return list(itertools.combinations(range(n), 2))


def full(n, seed=0):
  """Every pair once, in a random order fixed by `seed`."""
  pairs = all_pairs(n)
  order = np.random.default_rng(seed).permutation(len(pairs))
  return [pairs[k] for k in order]


def random_pairs(n, count, seed=0, exclude=()):
  """`count` distinct pairs (fewer if fewer are left) not in `exclude`, uniformly at random."""
  excluded = set(exclude)
  pairs = [p for p in all_pairs(n) if p not in excluded]
  order = np.random.default_rng(seed).permutation(len(pairs))[:count]
  return [pairs[k] for k in order]


def ranking(scores, seed=0):
  """Condition indices from best to worst; ties broken by a seeded random order."""
  scores = np.asarray(scores, np.float64)
  tiebreak = np.random.default_rng(seed).permutation(len(scores))
  return list(np.lexsort((tiebreak, -scores)))


def adjacent_round(scores, judged=(), seed=0):
  """One round of adjacent-pair sampling: up to n-1 unjudged pairs, nearest in rank first.

  Args:
    scores: [n] current scores (higher is better); equal scores are ordered by `seed`.
    judged: pairs (i, j), i < j, this judge already compared (never repeated).
    seed: tie-break seed.

  Returns:
    [<= n-1] distinct unjudged pairs (i, j), i < j, in order of rank distance (1 = neighbours,
    then 2, ...) and, within a distance, of rank. With nothing judged: the n-1 neighbour pairs.
  """
  order = ranking(scores, seed)
  n = len(order)
  taken = set(judged)
  pairs = []
  for d in range(1, n):
    for k in range(n - d):
      pair = tuple(sorted((int(order[k]), int(order[k + d]))))
      if pair not in taken:
        pairs.append(pair)
        if len(pairs) == n - 1:
          return pairs
  return pairs


def rank_distance(scores, pair, seed=0):
  """|rank(i) - rank(j)| of a pair under `ranking(scores, seed)`."""
  position = {c: k for k, c in enumerate(ranking(scores, seed))}
  return abs(position[pair[0]] - position[pair[1]])
