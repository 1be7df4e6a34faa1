"""SSIM (Wang et al. 2004) and MS-SSIM (Wang, Simoncelli, Bovik 2003), as pytorch-msssim 1.0.

With mu, sigma^2, sigma_xy the local means, variances and covariance under an 11x11 Gaussian
window (sigma 1.5, normalised to sum 1, 'valid' filtering), C1 = (0.01 L)^2, C2 = (0.03 L)^2:

    cs   = (2 sigma_xy + C2) / (sigma_x^2 + sigma_y^2 + C2)
    SSIM = mean over pixels of (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) * cs

    MS-SSIM = prod_{j=1..4} relu(cs_j)^w_j * relu(SSIM_5)^w_5,
              w = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)

computed per channel and then averaged over channels. Between scales the images are 2x2
average-pooled with zero padding of (side mod 2) on both sides, zeros counted (PyTorch's
`avg_pool2d(2, padding=s % 2)`). There is no automatic down-sampling of large images (MATLAB's
`ssim.m` has one; pytorch-msssim, TF and CompressAI do not).

Training losses are 1 - SSIM and 1 - MS-SSIM (registry names `ssim`, `ms_ssim`).

Weighted forms (saliency weighting): every mean over a map becomes a weighted mean, the pixel
weights w [B, H, W] cropped by 5 pixels on each side to the 'valid' map (each map value belongs
to the pixel at its window's centre) and, for MS-SSIM, pooled between scales exactly as the images
are. For w = 1 they equal SSIM and MS-SSIM.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry

WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# pytorch-msssim asserts min side > (WIN_SIZE - 1) * 2^4 = 160.
MS_SSIM_MIN_SIZE = (WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1) + 1


def gaussian_taps(size=WIN_SIZE, sigma=WIN_SIGMA):
  """The 1-D Gaussian window, float32 as pytorch-msssim computes it, as Python floats."""
  coords = np.arange(size, dtype=np.float32) - size // 2
  g = np.exp(-(coords**2) / np.float32(2 * sigma**2))
  return tuple(float(v) for v in g / g.sum())


def _ssim_and_cs(x, y, data_range, w=None):
  """[B, H, W, C] pair -> (ssim, cs), each [B, C]: (weighted) means of the SSIM and cs maps.

  w: None or [B, H, W] pixel weights (see the module docstring).
  """
  c1 = (K1 * data_range) ** 2
  c2 = (K2 * data_range) ** 2
  taps = gaussian_taps()
  stats = jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1)
  stats = imageops.correlate_valid(imageops.correlate_valid(stats, taps, 1), taps, 2)
  mu_x, mu_y, xx, yy, xy = jnp.split(stats, 5, axis=-1)
  mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
  cs_map = (2 * (xy - mu_xy) + c2) / ((xx - mu_xx) + (yy - mu_yy) + c2)
  ssim_map = (2 * mu_xy + c1) / (mu_xx + mu_yy + c1) * cs_map
  if w is None:
    return jnp.mean(ssim_map, axis=(1, 2)), jnp.mean(cs_map, axis=(1, 2))
  r = WIN_SIZE // 2
  w = w[:, r:w.shape[1] - r, r:w.shape[2] - r, None]
  total = jnp.sum(w, axis=(1, 2))
  return jnp.sum(w * ssim_map, axis=(1, 2)) / total, jnp.sum(w * cs_map, axis=(1, 2)) / total


def _downsample(x):
  """avg_pool2d(kernel 2, stride 2, padding = side % 2, count_include_pad) on NHWC."""
  ph, pw = x.shape[1] % 2, x.shape[2] % 2
  x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  return imageops.avg_pool2(x)


@functools.partial(jax.jit, static_argnames=("data_range",))
def ssim(x, y, data_range=1.0):
  """Single-scale SSIM per image (a similarity: 1 for identical images, higher is better).

  Args:
    x, y: [B, H, W, C] float images in [0, data_range], H, W >= 11.
    data_range: L in C1 = (0.01 L)^2, C2 = (0.03 L)^2.

  Returns:
    [B] float32, the mean over channels of the per-channel SSIM.
  """
  imageops.check_pair(x, y, name="ssim", min_size=WIN_SIZE)
  s, _ = _ssim_and_cs(imageops.as_float(x), imageops.as_float(y), data_range)
  return jnp.mean(s, axis=-1)


@functools.partial(jax.jit, static_argnames=("data_range",))
def ms_ssim(x, y, data_range=1.0):
  """Multi-scale SSIM per image (a similarity: 1 for identical images, higher is better).

  Args:
    x, y: [B, H, W, C] float images in [0, data_range], min(H, W) > 160.
    data_range: L in C1 = (0.01 L)^2, C2 = (0.03 L)^2.

  Returns:
    [B] float32, the mean over channels of the per-channel MS-SSIM. Negative cs / SSIM terms
    are clamped to 0 before the fractional powers (as pytorch-msssim, TF and piq do); the
    gradient there is 0, never NaN.
  """
  imageops.check_pair(x, y, name="ms_ssim", min_size=MS_SSIM_MIN_SIZE)
  x, y = imageops.as_float(x), imageops.as_float(y)
  terms = []
  for level, weight in enumerate(MS_SSIM_WEIGHTS):
    s, cs = _ssim_and_cs(x, y, data_range)
    if level < len(MS_SSIM_WEIGHTS) - 1:
      terms.append(imageops.safe_pow(jax.nn.relu(cs), weight))
      x, y = _downsample(x), _downsample(y)
    else:
      terms.append(imageops.safe_pow(jax.nn.relu(s), weight))
  return jnp.mean(functools.reduce(jnp.multiply, terms), axis=-1)


@functools.partial(jax.jit, static_argnames=("data_range",))
def weighted_ssim(x, y, w, data_range=1.0):
  """SSIM per image with the map averaged under pixel weights w [B, H, W] -> [B]."""
  imageops.check_pair(x, y, name="ssim", min_size=WIN_SIZE)
  s, _ = _ssim_and_cs(imageops.as_float(x), imageops.as_float(y), data_range, w)
  return jnp.mean(s, axis=-1)


@functools.partial(jax.jit, static_argnames=("data_range",))
def weighted_ms_ssim(x, y, w, data_range=1.0):
  """MS-SSIM per image with each scale's map averaged under pooled pixel weights -> [B].

  Args:
    x, y: as `ms_ssim`.
    w: [B, H, W] non-negative pixel weights.
  """
  imageops.check_pair(x, y, name="ms_ssim", min_size=MS_SSIM_MIN_SIZE)
  x, y, w = imageops.as_float(x), imageops.as_float(y), w[..., None]
  terms = []
  for level, weight in enumerate(MS_SSIM_WEIGHTS):
    s, cs = _ssim_and_cs(x, y, data_range, w[..., 0])
    if level < len(MS_SSIM_WEIGHTS) - 1:
      terms.append(imageops.safe_pow(jax.nn.relu(cs), weight))
      x, y, w = _downsample(x), _downsample(y), _downsample(w)
    else:
      terms.append(imageops.safe_pow(jax.nn.relu(s), weight))
  return jnp.mean(functools.reduce(jnp.multiply, terms), axis=-1)


@registry.register("ssim")
def _ssim_metric(arg=None):
  del arg
  return registry.Metric(
      name="ssim", kind="similarity", compute=lambda _, x, y: ssim(x, y),
      loss_fn=lambda _, x, y: 1.0 - ssim(x, y),
      weighted_loss_fn=lambda _, x, y, w: 1.0 - weighted_ssim(x, y, w))


@registry.register("ms_ssim")
def _ms_ssim_metric(arg=None):
  del arg
  return registry.Metric(
      name="ms_ssim", kind="similarity", compute=lambda _, x, y: ms_ssim(x, y),
      loss_fn=lambda _, x, y: 1.0 - ms_ssim(x, y),
      weighted_loss_fn=lambda _, x, y, w: 1.0 - weighted_ms_ssim(x, y, w))
