"""Pixel errors: mean squared error, mean absolute error, peak signal-to-noise ratio.

    MSE(x, y)  = mean over H, W, C of (x - y)^2
    L1(x, y)   = mean over H, W, C of |x - y|
    PSNR(x, y) = 10 log10(data_range^2 / MSE)        [dB]

MSE and L1 are per-pixel maps averaged, so both have saliency-weighted forms
(`weighted_loss_fn`: the map averaged under per-pixel weights).

Computed over all RGB channels together (as skimage and pyiqa do). PSNR is +inf for identical
images; it is a metric only; train with MSE (CompressAI's convention is L = lambda 255^2 MSE + R).
"""

import functools

import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry


@jax.jit
def mse(x, y):
  """Mean squared error per image (a distance: lower is better, 0 for identical images).

  Args:
    x, y: [B, H, W, C] float images in [0, 1].

  Returns:
    [B] float32.
  """
  imageops.check_pair(x, y, name="mse")
  d = imageops.as_float(x) - imageops.as_float(y)
  return jnp.mean(d * d, axis=(1, 2, 3))


@jax.jit
def l1(x, y):
  """Mean absolute error per image (a distance: lower is better, 0 for identical images).

  Args:
    x, y: [B, H, W, C] float images in [0, 1].

  Returns:
    [B] float32. The gradient at x = y is 0 (jnp.abs's subgradient).
  """
  imageops.check_pair(x, y, name="l1")
  return jnp.mean(jnp.abs(imageops.as_float(x) - imageops.as_float(y)), axis=(1, 2, 3))


@jax.jit
def weighted_mse(x, y, w):
  """MSE per image with the squared-error map averaged under weights w [B, H, W] -> [B]."""
  imageops.check_pair(x, y, name="mse")
  d = imageops.as_float(x) - imageops.as_float(y)
  return imageops.weighted_mean(d * d, w)


@jax.jit
def weighted_l1(x, y, w):
  """L1 per image with the absolute-error map averaged under weights w [B, H, W] -> [B]."""
  imageops.check_pair(x, y, name="l1")
  return imageops.weighted_mean(jnp.abs(imageops.as_float(x) - imageops.as_float(y)), w)


@functools.partial(jax.jit, static_argnames=("data_range",))
def psnr(x, y, data_range=1.0):
  """PSNR in dB per image (a similarity: higher is better, +inf for identical images).

  Args:
    x, y: [B, H, W, C] float images in [0, data_range].
    data_range: peak value (1 for [0, 1] images).

  Returns:
    [B] float32.
  """
  imageops.check_pair(x, y, name="psnr")
  return 10.0 * jnp.log10(data_range**2 / mse(x, y))


@registry.register("mse")
def _mse_metric(arg=None):
  del arg
  return registry.Metric(
      name="mse", kind="distance", compute=lambda _, x, y: mse(x, y),
      loss_fn=lambda _, x, y: mse(x, y), weighted_loss_fn=lambda _, x, y, w: weighted_mse(x, y, w))


@registry.register("l1")
def _l1_metric(arg=None):
  del arg
  return registry.Metric(
      name="l1", kind="distance", compute=lambda _, x, y: l1(x, y),
      loss_fn=lambda _, x, y: l1(x, y), weighted_loss_fn=lambda _, x, y, w: weighted_l1(x, y, w))


@registry.register("psnr")
def _psnr_metric(arg=None):
  del arg
  return registry.Metric(name="psnr", kind="similarity", compute=lambda _, x, y: psnr(x, y))
