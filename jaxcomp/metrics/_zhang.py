"""Building blocks shared by FSIM and VSI (both from Lin Zhang's group): the automatic
down-sampling, the Scharr gradient magnitude, the similarity map and MATLAB's real power.

All functions take NHWC float arrays on the 0-255 scale the original constants were tuned for.
`compat` selects the reference being reproduced: "matlab" (the published MATLAB code, the
default everywhere) or "piq" (piq 0.8.0, for the parity tests).
"""

import math

import jax.numpy as jnp

from jaxcomp.nets import imageops

COMPAT_MODES = ("matlab", "piq")
_SCHARR_SMOOTH = (3.0 / 16.0, 10.0 / 16.0, 3.0 / 16.0)
_SCHARR_DIFF = (1.0, 0.0, -1.0)


def check_compat(compat, name):
  if compat not in COMPAT_MODES:
    raise ValueError(f"{name}: compat must be one of {COMPAT_MODES}, got {compat!r}")


def downsample_factor(height, width, compat):
  """F = max(1, round(min(H, W) / 256)); MATLAB rounds halves up, piq (Python) to even."""
  ratio = min(height, width) / 256.0
  rounded = math.floor(ratio + 0.5) if compat == "matlab" else round(ratio)
  return max(1, int(rounded))


def _pad_and_pool(x, factor, before, after, mode):
  """Pads rows and columns of NHWC x (before, after), then F x F means, stride F, tail dropped."""
  if before or after:
    x = jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode=mode)
  b, h, w, c = x.shape
  oh, ow = h // factor, w // factor
  x = x[:, : oh * factor, : ow * factor]
  return x.reshape(b, oh, factor, ow, factor, c).mean(axis=(2, 4))


def matlab_downsample(x, factor):
  """MATLAB `conv2(x, ones(F)/F^2, 'same')` then `x(1:F:end, 1:F:end)`, per channel.

  Window of output i: input rows [F i - floor((F-1)/2), F i + floor(F/2)], zeros outside the
  image (counted in the mean). Output side: ceil(n / F). Identity for F = 1.

  Args:
    x: [B, H, W, C] float.
    factor: F >= 1.

  Returns:
    [B, ceil(H / F), ceil(W / F), C].
  """
  if factor == 1:
    return x
  return _pad_and_pool(x, factor, (factor - 1) // 2, factor // 2, "constant")


def piq_fsim_downsample(x, factor):
  """piq's `avg_pool2d(x, F)`: windows [F i, F i + F - 1]; a tail shorter than F is dropped."""
  return x if factor == 1 else _pad_and_pool(x, factor, 0, 0, None)


def piq_vsi_downsample(x, factor):
  """piq's VSI pooling: replicate-pad F//2 before and (F-1)//2 after, then `avg_pool2d(F)`."""
  if factor == 1:
    return x
  return _pad_and_pool(x, factor, factor // 2, (factor - 1) // 2, "edge")


def gradient_magnitude(x):
  """[B, H, W, 1] -> [B, H, W, 1]: sqrt(Gx^2 + Gy^2), Scharr kernels [3 0 -3; 10 0 -10; 3 0 -3]/16
  and its transpose, zero 'same' padding; gradient 0 where the magnitude is 0."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  gx = imageops.correlate_valid(imageops.correlate_valid(p, _SCHARR_SMOOTH, 1), _SCHARR_DIFF, 2)
  gy = imageops.correlate_valid(imageops.correlate_valid(p, _SCHARR_DIFF, 1), _SCHARR_SMOOTH, 2)
  return imageops.safe_sqrt(gx * gx + gy * gy)


def similarity(a, b, constant):
  """(2 a b + C) / (a^2 + b^2 + C), elementwise; in (0, 1] for a, b >= 0."""
  return (2.0 * a * b + constant) / (a * a + b * b + constant)


def real_power(z, exponent):
  """MATLAB's real(z .^ p) for real z and 0 < p < 1: |z|^p, times cos(p pi) where z < 0.

  The gradient is 0 (instead of infinite) at z = 0.
  """
  magnitude = imageops.safe_pow(jnp.abs(z), exponent)
  return jnp.where(z < 0, math.cos(exponent * math.pi) * magnitude, magnitude)
