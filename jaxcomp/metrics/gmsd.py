"""GMSD: gradient magnitude similarity deviation (Xue, Zhang, Mou, Bovik 2014), as piq 0.8.

    Y    = 0.299 R + 0.587 G + 0.114 B                      (Y of YIQ; gray input used as is)
    Y'   = 2x2 average, stride 2, after zero-padding bottom/right when a side is odd
           (= MATLAB's conv2(Y, ones(2)/4, 'same') then Y(1:2:end, 1:2:end))
    g    = sqrt((Y' * p)^2 + (Y' * p^T)^2),  p = [1 0 -1; 1 0 -1; 1 0 -1] / 3, zero padding
    GMS  = (2 g_x g_y + T) / (g_x^2 + g_y^2 + T),  T = 170 / 255^2   (170 on the 0-255 scale)
    GMSD = standard deviation of GMS over pixels (population std, as piq)

A distance: 0 for identical images, lower is better; used directly as a loss.

Deviations from the trusted implementations, on purpose:
  * piq takes sqrt without an epsilon, so its gradient is NaN for flat or identical images.
    Here the square roots have gradient 0 at 0 (values unchanged).
  * MATLAB's GMSD.m uses `std2` (N - 1) and `rgb2gray` (0.2989/0.5870/0.1140, rounded to
    uint8 on 8-bit input). Like piq we use the population std (relative difference 1/(2N),
    4e-5 at 128x96 after down-sampling) and unrounded Y of YIQ (rounding has no gradient).
"""

import functools

import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry

T = 170.0 / 255.0**2
_PREWITT = (1.0 / 3.0, 0.0, -1.0 / 3.0)
_BOX3 = (1.0, 1.0, 1.0)


def _gradient_magnitude(y):
  """[B, H, W, 1] -> [B, H, W, 1]: Prewitt gradient magnitude with zero 'same' padding."""
  p = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
  gx = imageops.correlate_valid(imageops.correlate_valid(p, _BOX3, 1), _PREWITT, 2)
  gy = imageops.correlate_valid(imageops.correlate_valid(p, _PREWITT, 1), _BOX3, 2)
  return imageops.safe_sqrt(gx * gx + gy * gy)


def _downsample(y):
  pad = max(y.shape[1] % 2, y.shape[2] % 2)
  return imageops.avg_pool2(jnp.pad(y, ((0, 0), (0, pad), (0, pad), (0, 0))))


@functools.partial(jax.jit, static_argnames=("data_range",))
def gmsd(x, y, data_range=1.0):
  """GMSD per image (a distance: 0 for identical images, lower is better).

  Args:
    x, y: [B, H, W, 3] RGB (or [B, H, W, 1] gray) float images in [0, data_range], H, W >= 2.
    data_range: the images are divided by it first.

  Returns:
    [B] float32.
  """
  imageops.check_pair(x, y, name="gmsd", min_size=2)
  if x.shape[-1] not in (1, 3):
    raise ValueError(f"gmsd: expected 1 or 3 channels, got {x.shape[-1]}")
  x, y = imageops.as_float(x) / data_range, imageops.as_float(y) / data_range
  if x.shape[-1] == 3:
    x, y = imageops.luma(x), imageops.luma(y)
  gx = _gradient_magnitude(_downsample(x))
  gy = _gradient_magnitude(_downsample(y))
  gms = (2 * gx * gy + T) / (gx * gx + gy * gy + T)
  dev = gms - jnp.mean(gms, axis=(1, 2, 3), keepdims=True)
  return imageops.safe_sqrt(jnp.mean(dev * dev, axis=(1, 2, 3)))


@registry.register("gmsd")
def _gmsd_metric(arg=None):
  del arg
  return registry.Metric(
      name="gmsd", kind="distance", compute=lambda _, x, y: gmsd(x, y),
      loss_fn=lambda _, x, y: gmsd(x, y))
