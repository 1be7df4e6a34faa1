"""Rate honesty: the real file size is within 1% (plus the fixed header) of -sum log2 likelihoods.

Full-size photos with the 128/192 model: scripts/rate_honesty.py.
"""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name

import functools

import jax
import numpy as np
import pytest
from PIL import Image

from coding_models import fixture_image, photos
from jaxcomp.codec import export, models
from jaxcomp.coding import compression, container

TOLERANCE = 0.01


@functools.lru_cache(maxsize=None)
def _estimator(model_dir):
  model, variables, _ = export.load(model_dir)
  return jax.jit(
      lambda x: models.rate_bits(model.apply(variables, x, training=False)["likelihoods"]))


def _check(cm, model_dir, images):
  estimated = np.asarray(_estimator(model_dir)(images.astype(np.float32) / 255.0))
  streams = compression.compress(cm, images)
  for est, data in zip(estimated, streams):
    real = 8 * (len(data) - container.OVERHEAD_BYTES)
    assert abs(real - est) <= TOLERANCE * est, (real, est)


def _photo_crops():
  paths = photos()
  if not paths:
    pytest.skip("the shared photos are not here (set JAXCOMP_PHOTOS)")
  return np.stack([np.asarray(Image.open(p).convert("RGB"))[192:320, 256:448] for p in paths])


@pytest.mark.slow
def test_rate_honesty_on_fixtures(hyperprior, hyperprior_dir, mean, mean_dir):
  for cm, path in ((hyperprior, hyperprior_dir), (mean, mean_dir)):
    _check(cm, path, fixture_image("kite_96x80.png")[None])


@pytest.mark.slow
def test_rate_honesty_on_photo_crops(hyperprior, hyperprior_dir):
  _check(hyperprior, hyperprior_dir, _photo_crops())
