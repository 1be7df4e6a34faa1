"""Writes tests/fixtures/study/choix_bradley_terry.json: Bradley-Terry scores computed by choix.

Run in the reference environment that has choix (it does not import jaxcomp):

    ~/.cache/jaxcomp-refenv/bin/python scripts/make_study_fixtures.py

Three data sets of (winner, loser) pairs over item indices: the 25/75 chain of the pwcmp README,
a dense 6-item set drawn from known strengths, and a sparse adjacent-chain 7-item set with a
condition that never loses (which needs alpha > 0). For each, choix.mm_pairwise and
choix.ilsr_pairwise at the listed alphas.
"""

import json
import os

import choix
import numpy as np

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "study",
                   "choix_bradley_terry.json")


def chain():
  """D = [[0, 25, 0], [75, 0, 25], [0, 75, 0]] as (winner, loser) tuples."""
  data = [(0, 1)] * 25 + [(1, 0)] * 75 + [(1, 2)] * 25 + [(2, 1)] * 75
  return 3, data


def dense(seed=1):
  rng = np.random.default_rng(seed)
  strengths = np.linspace(-1.5, 1.5, 6)
  data = []
  for _ in range(300):
    i, j = rng.choice(6, 2, replace=False)
    p = 1 / (1 + np.exp(-(strengths[i] - strengths[j])))
    data.append((int(i), int(j)) if rng.random() < p else (int(j), int(i)))
  return 6, data


def sparse(seed=2):
  rng = np.random.default_rng(seed)
  data = []
  for _ in range(4):
    for i in range(6):
      data.append((i + 1, i) if rng.random() < 0.7 else (i, i + 1))
  data += [(6, 5), (6, 4)]
  return 7, data


def main():
  cases = []
  for name, (n, data) in (("chain", chain()), ("dense", dense()), ("sparse", sparse())):
    alphas = [0.0, 0.1] if name != "sparse" else [0.1, 1.0]
    for alpha in alphas:
      cases.append({
          "name": name, "n_items": n, "data": data, "alpha": alpha,
          "mm_pairwise": choix.mm_pairwise(n, data, alpha=alpha, tol=1e-10).tolist(),
          "ilsr_pairwise": choix.ilsr_pairwise(n, data, alpha=alpha, tol=1e-10).tolist()})
  with open(OUT, "w", encoding="utf-8") as f:
    json.dump({"source": "choix 0.4.1 (mm_pairwise, ilsr_pairwise, tol=1e-10)", "cases": cases},
              f, indent=1)
  print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
  main()
