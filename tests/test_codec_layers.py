"""Layer-level parity with CompressAI, the fast up-sampling equivalence, shapes and gradients."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcomp.codec import bounds, conv, entropy_bottleneck, gaussian_conditional, models
from jaxcomp.codec.gdn import GDN

LAYERS = os.path.join(os.path.dirname(__file__), "fixtures", "codec", "layers.npz")


@functools.lru_cache(maxsize=None)
def small_model(arch, ste=False):
  """(model, variables) of a tiny model (N, M = 8, 12), initialised once per test session."""
  model = models.build(arch, 8, 12, ste=ste)
  return model, models.init(model, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def fx():
  with np.load(LAYERS, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_compressai(fx, inverse):
  params = {"params": {"beta": fx["gdn_beta"], "gamma": fx["gdn_gamma"]}}
  out = GDN(inverse=inverse).apply(params, jnp.asarray(fx["x"]))
  np.testing.assert_allclose(out, fx["igdn" if inverse else "gdn"], rtol=1e-5, atol=1e-5)


def test_deconv_matches_compressai(fx):
  kernel = fx["deconv_weight"].transpose(2, 3, 0, 1)
  out = conv.upconv2d(jnp.asarray(fx["x"]), kernel) + fx["deconv_bias"]
  np.testing.assert_allclose(out, fx["deconv"], atol=1e-5)


def test_gaussian_likelihood_matches_compressai_in_the_tails(fx):
  lik = gaussian_conditional.likelihood(jnp.asarray(fx["gc_values"]), jnp.asarray(fx["gc_scales"]))
  np.testing.assert_allclose(lik, fx["gc_likelihood"], rtol=1e-4, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("k,s,p,h,w", [(5, 2, 2, 7, 9), (5, 2, 2, 4, 4), (3, 2, 1, 5, 6),
                                       (4, 2, 1, 3, 5), (6, 3, 2, 4, 3)])
def test_upconv_equals_transposed_conv_forward_and_gradients(k, s, p, h, w):
  kx, kk = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (2, h, w, 6))
  kernel = jax.random.normal(kk, (k, k, 6, 5)) / 8
  fast = conv.upconv2d(x, kernel, s, p)
  ref = conv.upconv2d_reference(x, kernel, s, p)
  assert fast.shape == ref.shape == (2, s * h, s * w, 5)
  np.testing.assert_allclose(fast, ref, atol=1e-5)
  cot = jax.random.normal(jax.random.PRNGKey(1), fast.shape)
  loss = lambda f: lambda x, k: jnp.sum(f(x, k, s, p) * cot)
  g_fast = jax.grad(loss(conv.upconv2d), argnums=(0, 1))(x, kernel)
  g_ref = jax.grad(loss(conv.upconv2d_reference), argnums=(0, 1))(x, kernel)
  for a, b in zip(g_fast, g_ref):  # float32 sums of O(10) values: relative 1e-5
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_upconv_rejects_sizes_that_are_not_a_multiple():
  with pytest.raises(ValueError):
    conv.upconv2d(jnp.zeros((1, 4, 4, 2)), jnp.zeros((5, 5, 2, 2)), 2, 1)


def test_lower_bound_gradient_rule():
  g = jax.grad(lambda x: jnp.sum(bounds.lower_bound(x, 1.0) * jnp.array([1.0, 1.0, -1.0])))
  # x=0.5 < bound with a positive gradient: blocked; x=2 above the bound: passes; x=0.5 with a
  # negative gradient (descent would increase x): passes.
  np.testing.assert_array_equal(g(jnp.array([0.5, 2.0, 0.5])), [0.0, 1.0, -1.0])


@pytest.mark.slow
def test_fit_quantiles_solves_for_the_targets():
  params = small_model("bmshj2018-hyperprior")[1]["params"]["entropy_bottleneck"]
  q = entropy_bottleneck.fit_quantiles(params)
  logits = entropy_bottleneck.logits_cumulative(params, q[:, None, :])[:, 0]
  t = np.log(2 / entropy_bottleneck.TAIL_MASS - 1)
  np.testing.assert_allclose(logits, np.broadcast_to([-t, 0, t], logits.shape), atol=1e-3)
  assert np.all(q[:, 0] < q[:, 1]) and np.all(q[:, 1] < q[:, 2])


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(models.ARCHS))
@pytest.mark.parametrize("h,w", [(1, 1), (65, 130), (17, 200)])
def test_any_image_size_is_padded_and_cropped(arch, h, w):
  model, variables = small_model(arch)
  out = model.apply(variables, jnp.full((1, h, w, 3), 0.5), training=False)
  hp, wp = -(-h // 64) * 64, -(-w // 64) * 64
  assert out["x_hat"].shape == (1, h, w, 3)
  assert out["likelihoods"]["y"].shape == (1, hp // 16, wp // 16, 12)
  assert out["likelihoods"]["z"].shape == (1, hp // 64, wp // 64, 8)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(models.ARCHS))
@pytest.mark.parametrize("ste", [False, True])
def test_training_mode_gradients_are_finite(arch, ste):
  model, variables = small_model(arch, ste)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 64, 64, 3))

  def loss(params):
    out = model.apply({**variables, "params": params}, x, training=True,
                      rngs={"noise": jax.random.PRNGKey(2)})
    mse = jnp.mean((out["x_hat"] - x) ** 2)
    return jnp.mean(models.rate_bits(out["likelihoods"])) / (64 * 64) + 0.01 * 255**2 * mse

  grads = jax.grad(loss)(variables["params"])
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


@pytest.mark.slow
def test_training_noise_is_keyed():
  model, variables = small_model("bmshj2018-hyperprior")
  x = jnp.full((1, 64, 64, 3), 0.3)
  run = lambda k: model.apply(variables, x, training=True, rngs={"noise": jax.random.PRNGKey(k)})
  np.testing.assert_array_equal(run(5)["x_hat"], run(5)["x_hat"])
  assert not np.array_equal(run(5)["likelihoods"]["y"], run(6)["likelihoods"]["y"])
