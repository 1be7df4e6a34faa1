"""Array ops shared by metrics and saliency models: input checks, safe sqrt, luma, filters.

Every metric takes a pair of NHWC float images in [0, 1] (RGB unless stated) and returns one
value per image, shape [B]. The filters here are written as sums of shifted slices, which
XLA fuses into one loop (forward and backward); on CPU that is several times faster than a
depthwise `lax.conv_general_dilated` with the same taps.
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

# Y of YIQ (NTSC), as in piq's `rgb2yiq`.
YIQ_LUMA = (0.299, 0.587, 0.114)


def check_pair(x, y, *, name, min_size=1, channels=None):
  """Raises ValueError unless x and y are [B, H, W, C] of equal shape with min(H, W) >= min_size."""
  if x.ndim != 4 or x.shape != y.shape:
    raise ValueError(
        f"{name}: expected two NHWC images of the same shape, got {tuple(x.shape)} and "
        f"{tuple(y.shape)}")
  if channels is not None and x.shape[-1] != channels:
    raise ValueError(f"{name}: expected {channels} channels (RGB), got {x.shape[-1]}")
  if min(x.shape[1:3]) < min_size:
    raise ValueError(
        f"{name}: images must be at least {min_size}x{min_size} pixels, got "
        f"{x.shape[1]}x{x.shape[2]}")


def as_float(x):
  """Casts to float32 (metrics are computed in float32 whatever the caller's dtype)."""
  return jnp.asarray(x, jnp.float32)


def safe_sqrt(x):
  """sqrt(x) for x >= 0, with gradient 0 (instead of inf/NaN) where x == 0. Value is exact."""
  positive = x > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def safe_pow(x, p):
  """x**p for x >= 0 and 0 < p < 1, with gradient 0 (instead of inf/NaN) where x == 0."""
  positive = x > 0
  return jnp.where(positive, jnp.where(positive, x, 1.0) ** p, 0.0)


def luma(x):
  """[..., 3] RGB -> [..., 1] Y of YIQ (0.299 R + 0.587 G + 0.114 B)."""
  r, g, b = YIQ_LUMA
  return r * x[..., 0:1] + g * x[..., 1:2] + b * x[..., 2:3]


def correlate_valid(x, taps, axis, stride=1):
  """1-D correlation with `taps` along `axis`, 'valid', every `stride`-th output.

  Output length along `axis`: (L - len(taps)) // stride + 1. The gradient is computed as the
  transposed correlation (zero-dilated, padded, reversed taps) rather than as XLA's sum of
  padded slices, which makes the backward pass as cheap as the forward one.
  """
  return _correlate(x, tuple(float(t) for t in taps), axis, stride, x.shape[axis])


def _correlate_slices(x, taps, axis, stride):
  n = (x.shape[axis] - len(taps)) // stride + 1
  out = None
  for k, t in enumerate(taps):
    if t == 0:
      continue
    term = t * lax.slice_in_dim(x, k, k + (n - 1) * stride + 1, stride, axis=axis)
    out = term if out is None else out + term
  return out


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _correlate(x, taps, axis, stride, length):
  del length
  return _correlate_slices(x, taps, axis, stride)


def _correlate_fwd(x, taps, axis, stride, length):
  return _correlate(x, taps, axis, stride, length), None


def _correlate_bwd(taps, axis, stride, length, _, g):
  n = g.shape[axis]
  config = [(0, 0, 0)] * g.ndim
  dilated = (n - 1) * stride + 1
  config[axis] = (len(taps) - 1, length - dilated, stride - 1)
  padded = lax.pad(g, jnp.zeros((), g.dtype), config)
  return (_correlate_slices(padded, taps[::-1], axis, 1),)


_correlate.defvjp(_correlate_fwd, _correlate_bwd)


def avg_pool2(x):
  """2x2 average pooling with stride 2 over axes 1, 2 of NHWC; an odd last row/column is dropped."""
  b, h, w, c = x.shape
  x = x[:, : h // 2 * 2, : w // 2 * 2]
  return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def weighted_mean(m, w):
  """Per-image mean of a map under weights: sum(w m) / sum(w) over axes 1, 2 (and channels).

  Args:
    m: [B, h, w] or [B, h, w, C] map.
    w: [B, h, w] non-negative weights at the map's resolution (see `resize_weights`).

  Returns:
    [B]; for C channels the mean over them as well (the weights are shared by the channels).
  """
  if m.ndim == 4:
    m = jnp.mean(m, axis=-1)
  return jnp.sum(w * m, axis=(1, 2)) / jnp.sum(w, axis=(1, 2))


def resize_weights(w, height, width):
  """[B, H, W] pixel weights -> [B, height, width] at a map's resolution (area-like).

  A smaller map (a pooled feature layer) gets antialiased linear down-sampling, i.e. each map
  location the average weight of the pixels it summarises; the same size is returned as is.
  """
  if w.shape[1:] == (height, width):
    return w
  return jax.image.resize(w, (w.shape[0], height, width), "linear", antialias=True)
