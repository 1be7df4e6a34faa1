"""Pair designs (deterministic per seed) and the simulation: adjacent beats random."""

import numpy as np
import pytest

from jaxcomp.study import designs, simulate


def test_full_design_covers_every_pair_once_per_seed():
  pairs = designs.full(6, seed=1)
  assert sorted(pairs) == designs.all_pairs(6) and len(pairs) == 15
  assert pairs == designs.full(6, seed=1)
  assert pairs != designs.full(6, seed=2)


def test_random_design_distinct_and_excludes():
  pairs = designs.random_pairs(7, 10, seed=4, exclude=[(0, 1), (2, 3)])
  assert len(set(pairs)) == 10 and (0, 1) not in pairs and (2, 3) not in pairs
  assert pairs == designs.random_pairs(7, 10, seed=4, exclude=[(0, 1), (2, 3)])
  assert len(designs.random_pairs(4, 100)) == 6


def test_adjacent_round_pairs_neighbours_and_never_repeats():
  scores = np.array([0.1, 3.0, 2.0, -1.0, 1.0])   # ranking 1, 2, 4, 0, 3
  assert designs.ranking(scores) == [1, 2, 4, 0, 3]
  assert designs.adjacent_round(scores) == [(1, 2), (2, 4), (0, 4), (0, 3)]
  # Judged neighbour pairs are replaced by the nearest unjudged pair in rank.
  again = designs.adjacent_round(scores, judged=[(1, 2), (0, 4)])
  assert again == [(2, 4), (0, 3), (1, 4), (0, 2)]
  assert designs.rank_distance(scores, (1, 4)) == 2
  judged = set()
  for _ in range(20):
    batch = designs.adjacent_round(scores, judged)
    assert not judged & set(batch)
    judged |= set(batch)
  assert judged == set(designs.all_pairs(5))


def test_adjacent_ties_are_broken_by_seed():
  zeros = np.zeros(6)
  assert designs.adjacent_round(zeros, seed=3) == designs.adjacent_round(zeros, seed=3)
  assert designs.adjacent_round(zeros, seed=3) != designs.adjacent_round(zeros, seed=4)


def test_simulation_adjacent_needs_fewer_comparisons_than_random():
  settings = simulate.Settings(conditions=8, observers=20, spread=4.0, noise=1.0,
                               random_share=0.1, runs=8, seed=0)
  report = simulate.compare(settings, target=0.85, design_names=("random", "adjacent"))
  adjacent = report["adjacent"]["comparisons_needed"]
  random = report["random"]["comparisons_needed"]
  assert adjacent is not None and random is not None, report
  assert adjacent < random, report
  # Same number of comparisons: adjacent is at least as accurate at every budget past the start.
  gap = np.array(report["adjacent"]["accuracy"]) - np.array(report["random"]["accuracy"])
  assert gap[3:].mean() > 0.02


def test_simulation_is_deterministic_and_bt_observers_run():
  settings = simulate.Settings(conditions=5, observers=4, runs=1, model="bradley-terry", seed=7)
  first = simulate.run("adjacent", settings)
  np.testing.assert_array_equal(first[1], simulate.run("adjacent", settings)[1])
  assert first[0].tolist() == [4, 8, 12, 16]
  with pytest.raises(ValueError):
    simulate.run("swiss", settings)
