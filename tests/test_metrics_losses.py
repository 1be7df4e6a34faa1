"""Every registry loss is a good loss: finite gradients on identical, flat and random images,
and `jax.grad` compiles once per shape. VGG metrics use random weights here (no download)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import loss_images

from jaxcomp.metrics import dists
from jaxcomp.metrics import gmsd
from jaxcomp.metrics import lpips
from jaxcomp.metrics import psnr
from jaxcomp.metrics import registry
from jaxcomp.metrics import ssim
from jaxcomp.nets import vgg16
from jaxcomp.nets import weights


def _random_vgg_params():
  key_vgg, key_w = jax.random.split(jax.random.PRNGKey(0))
  variables = vgg16.init_params(key_vgg)
  # flax initialises biases to 0; give them values so that flat images reach every branch
  variables = jax.tree_util.tree_map_with_path(
      lambda p, v: 0.05 * jax.random.normal(key_w, v.shape) if "bias" in str(p) else v, variables)
  lins = [jnp.abs(jax.random.normal(jax.random.fold_in(key_w, k), (c,)))
          for k, c in enumerate(weights.LPIPS_CHANNELS)]
  ab = jnp.abs(jax.random.normal(key_w, (2, sum(weights.DISTS_CHANNELS))))
  return {"vgg": variables, "lin": lins}, {"vgg": variables, "alpha": ab[0], "beta": ab[1]}


LPIPS_PARAMS, DISTS_PARAMS = _random_vgg_params()

# name -> (loss(params, x, y), params, H, W)
LOSSES = {
    "mse": (lambda p, x, y: psnr.mse(x, y), None, 24, 20),
    "ssim": (lambda p, x, y: 1.0 - ssim.ssim(x, y), None, 24, 21),
    "ms_ssim": (lambda p, x, y: 1.0 - ssim.ms_ssim(x, y), None, 161, 163),
    "gmsd": (lambda p, x, y: gmsd.gmsd(x, y), None, 24, 21),
    "lpips": (lambda p, x, y: lpips.lpips(x, y, p), LPIPS_PARAMS, 16, 17),
    "dists": (lambda p, x, y: dists.dists(x, y, p), DISTS_PARAMS, 16, 17),
}


_images = loss_images.image_pair


TRACES = {name: [] for name in LOSSES}


def _grad_fn(name, _cache={}):  # pylint: disable=dangerous-default-value
  """One jitted value_and_grad per loss, shared by the tests (compiling VGG16 grads is slow)."""
  if name not in _cache:
    loss = LOSSES[name][0]

    def counted(params, x, y):
      TRACES[name].append(x.shape)
      return jnp.sum(loss(params, x, y))

    _cache[name] = jax.jit(jax.value_and_grad(counted, argnums=1))
  return _cache[name]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["identical", "flat", "flat_identical", "black", "random"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_is_finite(name, kind):
  _, params, h, w = LOSSES[name]
  x, y = _images(kind, h, w)
  value, grad = _grad_fn(name)(params, x, y)
  assert np.isfinite(value)
  assert np.all(np.isfinite(grad)), f"{name}/{kind}: non-finite gradient"
  if kind == "random":
    assert np.any(grad != 0)


@pytest.mark.slow
@pytest.mark.skipif(
    not weights.available(("vgg16", "lpips_vgg_v0.1", "dists")),
    reason=f"pretrained weights not cached in {weights.cache_dir()} (run `jaxcomp weights fetch`)")
@pytest.mark.parametrize("name", ["lpips", "dists"])
def test_gradient_is_finite_with_pretrained_weights(name):
  params = {"lpips": lpips, "dists": dists}[name].load_params()  # same tree: no recompilation
  _, _, h, w = LOSSES[name]
  for kind in ("identical", "flat_identical", "black", "random"):
    _, grad = _grad_fn(name)(params, *_images(kind, h, w))
    assert np.all(np.isfinite(grad)), f"{name}/{kind}: non-finite gradient"


def test_ms_ssim_gradient_finite_where_cs_is_negative():
  # anti-correlated images drive cs below 0 at some scales (clamped to 0, gradient 0 there)
  _, _, h, w = LOSSES["ms_ssim"]
  y = np.random.RandomState(1).rand(2, h, w, 3).astype(np.float32)
  _, grad = _grad_fn("ms_ssim")(None, 1.0 - y, y)
  assert np.all(np.isfinite(grad))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_grad_compiles_once_per_shape(name):
  _, params, h, w = LOSSES[name]
  for seed in range(3):
    _grad_fn(name)(params, *_images("random", h, w, seed))
  assert TRACES[name].count((2, h, w, 3)) == 1
  if name not in ("lpips", "dists"):  # a new shape retraces once (skipped where compiling is slow)
    for seed in range(2):
      _grad_fn(name)(params, *_images("random", h + 2, w, seed))
    assert TRACES[name].count((2, h + 2, w, 3)) == 1


def test_registry_losses_match_the_metrics():
  x, y = _images("random", 24, 21)
  np.testing.assert_allclose(registry.get("ssim").loss(x, y), 1.0 - ssim.ssim(x, y))
  np.testing.assert_allclose(registry.get("gmsd").loss(x, y), gmsd.gmsd(x, y))
  np.testing.assert_allclose(registry.get("mse").loss(x, y), psnr.mse(x, y))
