"""Image pairs on which every loss must have finite gradients (shared by the metric loss tests)."""

import numpy as np


def image_pair(kind, h, w, seed=0):
  """(x, y), each [2, h, w, 3] float32 in [0, 1].

  kind: 'identical', 'flat' (two different flat images), 'flat_identical', 'black', 'swapped'
  (x is y with red and blue exchanged: negative chroma products) or anything else for random.
  """
  rng = np.random.RandomState(seed)
  y = rng.rand(2, h, w, 3).astype(np.float32)
  if kind == "identical":
    return y.copy(), y
  if kind == "flat":
    return np.full_like(y, 0.5), np.full_like(y, 0.25)
  if kind == "flat_identical":
    return np.full_like(y, 0.5), np.full_like(y, 0.5)
  if kind == "black":
    return np.zeros_like(y), np.zeros_like(y)
  if kind == "swapped":
    return np.ascontiguousarray(y[..., ::-1]), y
  return rng.rand(*y.shape).astype(np.float32), y
