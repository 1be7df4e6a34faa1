"""Evaluation-mode parity with CompressAI on real photo crops (fixtures: make_codec_fixtures.py)."""

import glob
import os

import jax
import numpy as np
import pytest

import parity_weights
from jaxcomp.codec import compressai_import, entropy_bottleneck, models

FIXTURES = sorted(p for p in glob.glob(os.path.join(os.path.dirname(__file__), "fixtures", "codec", "*.npz"))
                  if not p.endswith("layers.npz"))


def _load(path):
  with np.load(path, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def _variables(fx):
  arch, N, M = str(fx["arch"]), int(fx["N"]), int(fx["M"])
  sd = parity_weights.state_dict(arch, N, M)
  sd["entropy_bottleneck.quantiles"] = fx["quantiles"][:, None, :]
  variables, n, m = compressai_import.convert(arch, sd)
  assert (n, m) == (N, M)
  return models.build(arch, N, M), variables


@pytest.mark.slow
@pytest.mark.parametrize("path", FIXTURES, ids=[os.path.basename(p)[:-4] for p in FIXTURES])
def test_eval_mode_matches_compressai(path):
  fx = _load(path)
  model, variables = _variables(fx)
  x = fx["image"][None].astype(np.float32) / 255.0
  out = jax.jit(lambda v, x: model.apply(v, x, training=False))(variables, x)
  assert out["x_hat"].shape == fx["x_hat"].shape
  np.testing.assert_allclose(out["x_hat"], fx["x_hat"], atol=1e-4, rtol=0)
  np.testing.assert_allclose(out["likelihoods"]["y"], fx["y_likelihoods"], atol=1e-4, rtol=0)
  np.testing.assert_allclose(out["likelihoods"]["z"], fx["z_likelihoods"], atol=1e-4, rtol=0)


def test_fixtures_present():
  assert len(FIXTURES) >= 5, "run scripts/make_codec_fixtures.py in the reference env"


def test_bisection_quantiles_match_compressai():
  """jaxcomp's post-hoc tails/medians agree with CompressAI's own bisection on the same density."""
  fx = _load(FIXTURES[0])
  _, variables = _variables(fx)
  fitted = np.asarray(entropy_bottleneck.fit_quantiles(variables["params"]["entropy_bottleneck"]))
  np.testing.assert_allclose(fitted, fx["quantiles"], rtol=1e-3, atol=1e-2)
