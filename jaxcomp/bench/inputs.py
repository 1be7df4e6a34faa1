"""Deterministic benchmark inputs: a synthetic photo-like image and an untrained exported model.

`jaxcomp bench all` needs a PNG and a model directory for the codec benchmarks on any machine,
without data or weights. Transform times do not depend on the weights; the entropy coder's time
does (through the symbol statistics), so pass a trained model (`--model`) for coder timings that
mean something.
"""

import jax
import numpy as np
from PIL import Image

from jaxcomp.codec import export, models


def synthetic_image(height, width, seed=0):
  """[height, width, 3] uint8: smooth colour fields, hard-edged rectangles and mild noise."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, size=(max(2, height // 32), max(2, width // 32), 3))
  smooth = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((width, height),
                                                                       Image.BICUBIC), np.float32)
  for _ in range(8):
    top, left = rng.integers(0, height), rng.integers(0, width)
    bottom = top + rng.integers(height // 8 + 1, height // 2 + 2)
    right = left + rng.integers(width // 8 + 1, width // 2 + 2)
    smooth[top:bottom, left:right] = 0.5 * smooth[top:bottom, left:right] + rng.uniform(0, 128, 3)
  noisy = smooth + rng.normal(0, 2.0, size=smooth.shape)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def write_image(path, height, width, seed=0):
  """Writes `synthetic_image` as a PNG; returns the path."""
  Image.fromarray(synthetic_image(height, width, seed)).save(path)
  return path


def untrained_variables(arch, quality=1, seed=0, dtype=np.float32):
  """(model, variables) of a freshly initialised model with refit z quantiles."""

  model = models.build(arch, quality=quality, dtype=dtype)
  return model, models.refit_quantiles(models.init(model, jax.random.PRNGKey(seed)))


def write_untrained_model(path, arch, quality=1, seed=0):
  """Exports `untrained_variables` to the model directory `path`; returns the path."""
  model, variables = untrained_variables(arch, quality, seed)
  export.save(path, arch, model.N, model.M, variables, source=f"untrained (seed {seed})")
  return path
