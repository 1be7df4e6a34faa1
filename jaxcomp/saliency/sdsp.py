"""SDSP visual saliency (Zhang, Gu, Li, "SDSP: a novel saliency detection method by combining
simple priors", ICIP 2013), the saliency model of VSI.

For an RGB image in [0, 1], resized to 256x256 and converted to CIELab (sRGB, D50 white):

    S_F = sqrt(sum over L, a, b of (real(ifft2(fft2(channel) * G)))^2)       frequency prior
          G(r) = exp(-log(r / 0.021)^2 / (2 * 1.34^2)) for 0 < r <= 0.5, else 0 (r in cycles/px)
    S_D = exp(-((i - 128)^2 + (j - 128)^2) / 145^2), 1-based pixel coordinates    location prior
    S_C = 1 - exp(-(a'^2 + b'^2) / 0.001^2),   a', b' = a, b min-max normalised    colour prior
    SDSP = min-max normalisation of (S_F S_D S_C) resized back to H x W

`compat="matlab"` (default) resizes with antialiased bilinear interpolation (MATLAB's
`imresize(..., 'bilinear')` antialiases when shrinking; here `jax.image.resize`, which differs
from MATLAB only in how edge pixels are weighted) and uses the D50 white (0.9642, 1, 0.8251).
`compat="piq"` reproduces piq 0.8.0 `vsi.sdsp`: bilinear without antialiasing to 256x256
(`align_corners=False`), back with `align_corners=True`, white (0.96421, 1, 0.82519).
The min-max normalisations divide by (max - min + float eps), so flat images give finite values
and gradients.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.nets import imageops

WORKING_SIZE = 256
OMEGA_0 = 0.021
SIGMA_F = 1.34
SIGMA_D = 145.0
SIGMA_C = 0.001
COMPAT_MODES = ("matlab", "piq")
_WHITE = {"matlab": (0.9642, 1.0, 0.8251),
          "piq": (0.9642119944211994, 1.0, 0.8251882845188288)}
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]], np.float32)
_LAB_EPSILON, _LAB_KAPPA = 0.008856, 903.3
_EPS = float(np.finfo(np.float32).eps)
# Raw saliency ranges (S_F S_D S_C, S_F in Lab units) below this count as flat: without it, the
# float rounding noise of a flat image (1e-6) would be stretched to [0, 1] by the min-max
# normalisation, with gradients of 1e6. Photos have ranges of 1 to 100.
RANGE_FLOOR = 1e-3


def rgb_to_lab(x, white=_WHITE["matlab"]):
  """[..., 3] sRGB in [0, 1] -> [..., 3] CIELab (L in [0, 100]); finite gradients everywhere.

  Linearisation: v / 12.92 for v <= 0.04045, ((v + 0.055) / 1.055)^2.4 above; XYZ / white;
  f(t) = t^(1/3) for t > 0.008856, (903.3 t + 16) / 116 below.
  """
  linear = jnp.where(x <= 0.04045, x / 12.92,
                     ((jnp.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)
  xyz = jnp.einsum("...c,dc->...d", linear, _SRGB_TO_XYZ) / np.asarray(white, np.float32)
  f = jnp.where(xyz > _LAB_EPSILON, jnp.cbrt(jnp.maximum(xyz, _LAB_EPSILON)),
                (_LAB_KAPPA * xyz + 16.0) / 116.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


@functools.lru_cache(maxsize=4)
def _priors(n=WORKING_SIZE):
  """(log-Gabor frequency response, DC at [0, 0]; location prior), each [n, n] float32."""
  u = (np.arange(1, n + 1) - (n // 2 + 1)) / (n - n % 2)
  u1, u2 = np.meshgrid(u, u)
  radius = np.sqrt(u1 * u1 + u2 * u2)
  inside = radius <= 0.5
  radius = np.fft.ifftshift(np.where(inside, radius, 1.0))
  radius[0, 0] = 1.0  # DC, zeroed below
  lg = np.exp(-np.log(radius / OMEGA_0) ** 2 / (2 * SIGMA_F**2)) * np.fft.ifftshift(inside)
  lg[0, 0] = 0.0
  i = np.arange(1, n + 1) - n / 2
  location = np.exp(-(i[:, None] ** 2 + i[None, :] ** 2) / SIGMA_D**2)
  return lg.astype(np.float32), location.astype(np.float32)


def _align_corners_matrix(n_out, n_in):
  """[n_out, n_in] bilinear interpolation matrix with align_corners=True (PyTorch)."""
  m = np.zeros((n_out, n_in), np.float32)
  scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
  for j in range(n_out):
    src = j * scale
    i0 = min(int(math.floor(src)), n_in - 1)
    i1 = min(i0 + 1, n_in - 1)
    m[j, i0] += 1.0 - (src - i0)
    m[j, i1] += src - i0
  return m


def _to_working_size(x, compat):
  """[B, H, W, C] -> [B, 256, 256, C]: bilinear, antialiased in "matlab" mode."""
  shape = (x.shape[0], WORKING_SIZE, WORKING_SIZE, x.shape[3])
  return jax.image.resize(x, shape, "bilinear", antialias=compat == "matlab")


def _to_image_size(x, height, width, compat):
  """[B, 256, 256] -> [B, H, W]: bilinear, antialiased ("matlab") or align_corners=True ("piq")."""
  if compat == "piq":
    rows = _align_corners_matrix(height, x.shape[1])
    cols = _align_corners_matrix(width, x.shape[2])
    return jnp.einsum("oh,bhw,pw->bop", rows, x, cols)
  return jax.image.resize(x, (x.shape[0], height, width), "bilinear", antialias=True)


def _min_max(x, axes, floor=_EPS):
  """(x - min) / (max - min + floor) over `axes`."""
  low = jnp.min(x, axis=axes, keepdims=True)
  high = jnp.max(x, axis=axes, keepdims=True)
  return (x - low) / (high - low + floor)


@functools.partial(jax.jit, static_argnames=("compat",))
def sdsp(images, compat="matlab"):
  """SDSP saliency maps.

  Args:
    images: [B, H, W, 3] RGB float images in [0, 1].
    compat: "matlab" (default) or "piq" (piq 0.8.0 `vsi.sdsp`; see the module docstring).

  Returns:
    [B, H, W] float32 in [0, 1] (the most salient pixel of each image is 1, the least 0).
  """
  if compat not in COMPAT_MODES:
    raise ValueError(f"sdsp: compat must be one of {COMPAT_MODES}, got {compat!r}")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"sdsp: expected [B, H, W, 3] RGB images, got {tuple(images.shape)}")
  _, h, w, _ = images.shape
  lab = rgb_to_lab(_to_working_size(imageops.as_float(images), compat), _WHITE[compat])
  lg, location = _priors()
  band = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(lab, axes=(1, 2)) * lg[..., None], axes=(1, 2)))
  frequency = imageops.safe_sqrt(jnp.sum(band * band, axis=-1))
  ab = _min_max(lab[..., 1:], axes=(1, 2))
  colour = 1.0 - jnp.exp(-jnp.sum(ab * ab, axis=-1) / SIGMA_C**2)
  saliency = _to_image_size(frequency * location * colour, h, w, compat)
  return _min_max(saliency, axes=(1, 2), floor=RANGE_FLOOR)
