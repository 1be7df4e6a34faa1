"""A seeded batch order that a resumed run continues exactly: batch `step` depends only on
(seed, step), never on how many steps this process ran."""

import functools

import numpy as np


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n, seed, epoch):
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n, batch, seed, step):
  """[batch] example indices of step `step` (0-based): consecutive slices of per-epoch
  permutations of range(n) (seeded by (seed, epoch)), so no example repeats within an epoch."""
  positions = np.arange(step * batch, (step + 1) * batch)
  epochs = positions // n
  index = np.empty(batch, np.int64)
  for epoch in np.unique(epochs):
    at = epochs == epoch
    index[at] = _epoch_permutation(n, seed, int(epoch))[positions[at] % n]
  return index
