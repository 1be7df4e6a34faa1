"""Circular triads, ζ, winning frequencies, Bradley-Terry (= choix) and Thurstone JOD."""

import itertools
import json
import os

import numpy as np
import pytest

from jaxcomp.study import consistency, scaling

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "study")


def _tournament(n, seed):
  """[n, n] 0/1 matrix of a random complete tournament."""
  rng = np.random.default_rng(seed)
  m = np.zeros((n, n))
  for i, j in itertools.combinations(range(n), 2):
    m[(i, j) if rng.random() < 0.5 else (j, i)] = 1
  return m


def _brute_force_cycles(m):
  n = len(m)
  return sum(1 for i, j, k in itertools.combinations(range(n), 3)
             if (m[i, j] and m[j, k] and m[k, i]) or (m[j, i] and m[k, j] and m[i, k]))


@pytest.mark.parametrize("n, expected", [(3, 1), (4, 2), (5, 5), (6, 8), (7, 14), (8, 20)])
def test_d_max_odd_and_even(n, expected):
  assert consistency.d_max(n) == expected


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_triads_equal_formula_and_brute_force(n):
  for seed in range(20):
    m = _tournament(n, seed)
    tri = consistency.triads(m)
    assert tri.complete
    assert tri.circular == consistency.circular_triads(m.sum(1)) == _brute_force_cycles(m)
    assert tri.zeta == pytest.approx(1 - tri.circular / consistency.d_max(n))


def test_kendall_dog_food_numbers_and_regular_tournament():
  # A 6-tournament with d = 5 has ζ = 1 - 5/8 = 0.375 (Kendall & Babington Smith's example).
  found = next(m for m in (_tournament(6, s) for s in range(500))
               if consistency.triads(m).circular == 5)
  assert consistency.triads(found).zeta == pytest.approx(0.375)
  # The cyclic 5-tournament (i beats i+1, i+2) reaches d_max: ζ = 0.
  cyclic = np.zeros((5, 5))
  for i in range(5):
    cyclic[i, (i + 1) % 5] = cyclic[i, (i + 2) % 5] = 1
  assert consistency.triads(cyclic).circular == 5 and consistency.triads(cyclic).zeta == 0.0
  # A transitive tournament has none.
  assert consistency.triads(np.triu(np.ones((6, 6)), 1)).zeta == 1.0


def test_incomplete_design_counts_only_fully_judged_triples():
  m = np.zeros((5, 5))
  m[0, 1] = m[1, 2] = m[2, 0] = 1      # one circular triple among 0, 1, 2
  m[2, 3] = m[3, 4] = 1                # a chain with no closed triple
  tri = consistency.triads(m)
  assert not tri.complete and tri.zeta is None
  assert (tri.judged_triples, tri.circular, tri.rate) == (1, 1, 1.0)
  assert consistency.CHANCE_TRIAD_RATE == 0.25


def test_winning_frequencies_normalised_per_image():
  counts = np.array([[0, 3, 4], [1, 0, 2], [0, 2, 0]], float)
  freq, normalised = scaling.winning_frequencies(counts)
  np.testing.assert_allclose(freq, [7 / 8, 3 / 8, 2 / 8])
  np.testing.assert_allclose(normalised, freq / freq.sum())
  assert normalised.sum() == pytest.approx(1.0)


def _counts(n, data):
  counts = np.zeros((n, n))
  for winner, loser in data:
    counts[winner, loser] += 1
  return counts


def test_bradley_terry_equals_choix():
  with open(os.path.join(FIXTURES, "choix_bradley_terry.json"), encoding="utf-8") as f:
    cases = json.load(f)["cases"]
  assert len(cases) == 6
  for case in cases:
    ours = scaling.bradley_terry(_counts(case["n_items"], case["data"]), alpha=case["alpha"],
                                 tol=1e-10)
    np.testing.assert_allclose(ours, case["mm_pairwise"], atol=1e-6, err_msg=case["name"])
    if case["alpha"] == 0.0:  # Without regularisation both choix fitters give the MLE.
      np.testing.assert_allclose(ours, case["ilsr_pairwise"], atol=1e-5, err_msg=case["name"])


def test_bradley_terry_chain_is_plus_minus_log3():
  counts = np.array([[0, 25, 0], [75, 0, 25], [0, 75, 0]], float)
  np.testing.assert_allclose(scaling.bradley_terry(counts), [-np.log(3), 0, np.log(3)], atol=1e-6)


def test_thurstone_one_jod_is_75_percent():
  # pwcmp README example: each 75/25 link is 1 JOD.
  counts = np.array([[0, 25, 0], [75, 0, 25], [0, 75, 0]], float)
  q = scaling.thurstone(counts, prior_sd=1e4)
  np.testing.assert_allclose(q, [0.0, 1.0, 2.0], atol=1e-3)
  # Reference condition fixed at 0.
  q = scaling.thurstone(counts, reference=2, prior_sd=1e4)
  np.testing.assert_allclose(q, [-2.0, -1.0, 0.0], atol=1e-3)


def test_thurstone_unanimous_and_disconnected_stay_finite():
  counts = np.array([[0, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 3], [0, 0, 0, 0]], float)
  assert not scaling.connected(counts)
  q = scaling.thurstone(counts)
  assert np.all(np.isfinite(q)) and q[0] == 0 and q[1] < 0 and q[2] > q[3]


def test_bootstrap_is_deterministic_and_brackets_the_estimate():
  rng = np.random.default_rng(0)
  per_subject = np.stack([_counts(3, [(1, 0) if rng.random() < 0.75 else (0, 1)
                                      for _ in range(10)]) for _ in range(8)])
  fit = lambda c: scaling.thurstone(c, prior_sd=1e3)
  low, high = scaling.bootstrap(per_subject, fit, samples=100, seed=3)
  low2, high2 = scaling.bootstrap(per_subject, fit, samples=100, seed=3)
  np.testing.assert_array_equal(low, low2)
  np.testing.assert_array_equal(high, high2)
  estimate = fit(per_subject.sum(0))
  assert low[1] <= estimate[1] <= high[1] and high[1] - low[1] > 0.1
