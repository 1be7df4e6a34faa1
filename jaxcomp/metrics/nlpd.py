"""NLPD: normalized Laplacian pyramid distance (Laparra, Balle, Berardino, Simoncelli,
"Perceptual image quality assessment using a normalized Laplacian pyramid", HVEI 2016).

The 2016 variant with the published constants ("learned using the McGill dataset"), on the
luminance Y in [0, 1]:

    Y     = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B   (MATLAB rgb2gray)
    L     = f f^T,  f = [.05 .25 .4 .25 .05]                                  (Burt & Adelson)
    J_1   = Y;  J_{k+1} = (J_k * L, half-sample symmetric padding)[::2, ::2],   k = 1..5
    z_k   = J_k - up(J_{k+1}),  up: replicate-pad 1, zero-insert 4 J, * L (zero padding), crop
    z_6   = J_6                                                     (the low-pass residual)
    y_k   = z_k / (sigma_k + |z_k| (*) P_k)         (*): convolution, zero 'same' padding
    NLPD  = mean over k = 1..6 of sqrt(mean over pixels of (y_k(x) - y_k(y))^2)

    sigma = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782); P_k: four-neighbour filters
    (P_1 also has a 0.0072 tap two pixels to the right of the centre).

A distance: 0 for identical images, lower is better; used directly as a loss. This is the
variant of pyiqa's calibration table and of the comparisons in the PCS 2022 study; the 2017
JOSA variant (gamma-corrected luminance, a different filter, power pooling) and Ding's
per-RGB-channel band-pass variant (IQA_pytorch) are different metrics.

`round_gray=True` rounds Y to 8 bits as MATLAB's rgb2gray does on uint8 images; the metric
value (registry `compute`) uses it, the training loss does not (rounding has no gradient).
`compat="pyiqa"` reproduces pyiqa's `nlpd_arch.NLPD`: Y of YIQ (0.299, 0.587, 0.114),
unrounded, and a 3x3 P_1 without the 0.0072 tap.
"""

import functools

import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry

LEVELS = 6
SIGMAS = (0.0248, 0.0185, 0.0179, 0.0191, 0.0220, 0.2782)
RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
_F = (0.05, 0.25, 0.4, 0.25, 0.05)
# P_k as {(row offset, column offset): weight}, offsets from the centre of the 5x5 filter.
_P = (
    {(-1, 0): 0.1011, (0, -1): 0.1493, (0, 1): 0.1460, (0, 2): 0.0072, (1, 0): 0.1015},
    {(-1, 0): 0.0757, (0, -1): 0.1986, (0, 1): 0.1846, (1, 0): 0.0837},
    {(-1, 0): 0.0477, (0, -1): 0.2138, (0, 1): 0.2243, (1, 0): 0.0467},
    {(0, -1): 0.2503, (0, 1): 0.2616},
    {(0, -1): 0.2598, (0, 1): 0.2552},
    {(0, -1): 0.2215, (0, 1): 0.0717},
)
COMPAT_MODES = ("matlab", "pyiqa")
# smallest side for which the 5th down-sampling still leaves J_6 at least 1x1
MIN_SIZE = 2 ** (LEVELS - 2) + 1


def _blur(x):
  """Separable 5x5 Burt-Adelson filter, 'valid', over axes 1, 2 of [B, H, W]."""
  return imageops.correlate_valid(imageops.correlate_valid(x, _F, 1), _F, 2)


def _downsample(j):
  """MATLAB imfilter(J, L, 'symmetric') then J(1:2:end, 1:2:end): [B, H, W] -> ceil halves."""
  p = jnp.pad(j, ((0, 0), (2, 2), (2, 2)), mode="symmetric")
  return imageops.correlate_valid(imageops.correlate_valid(p, _F, 1, stride=2), _F, 2, stride=2)


def _upsample(i, shape):
  """Expands the coarser level I to `shape` (H, W) as NLP_dist.m's upsampling does."""
  h, w = shape
  p = jnp.pad(i, ((0, 0), (1, 1), (1, 1)), mode="edge")
  r = jax.lax.pad(4.0 * p, jnp.zeros((), p.dtype), ((0, 0, 0), (0, 1, 1), (0, 1, 1)))
  r = _blur(jnp.pad(r, ((0, 0), (2, 2), (2, 2))))
  odd_h, odd_w = 2 * i.shape[1] - h, 2 * i.shape[2] - w
  return r[:, 2: r.shape[1] - 2 - odd_h, 2: r.shape[2] - 2 - odd_w]


def _local_amplitude(z, taps):
  """conv2(|z|, P, 'same'): sum over taps of P(dr, dc) |z|(i - dr, j - dc), zeros outside."""
  a = jnp.pad(jnp.abs(z), ((0, 0), (2, 2), (2, 2)))
  _, h, w = z.shape
  return sum(t * a[:, 2 - dr: 2 - dr + h, 2 - dc: 2 - dc + w] for (dr, dc), t in taps.items())


def normalized_laplacian_pyramid(y, compat="matlab"):
  """The six normalised bands y_k of a gray image batch.

  Args:
    y: [B, H, W] float luminance in [0, 1], min(H, W) >= 17.
    compat: "matlab" or "pyiqa" (3x3 P_1).

  Returns:
    list of 6 arrays [B, H_k, W_k], H_k = ceil(H / 2^(k-1)).
  """
  filters = list(_P)
  if compat == "pyiqa":
    filters[0] = {k: v for k, v in _P[0].items() if k != (0, 2)}
  bands = []
  j = y
  for k in range(LEVELS - 1):
    coarse = _downsample(j)
    z = j - _upsample(coarse, j.shape[1:])
    bands.append(z / (SIGMAS[k] + _local_amplitude(z, filters[k])))
    j = coarse
  bands.append(j / (SIGMAS[-1] + _local_amplitude(j, filters[-1])))
  return bands


def _gray(x, compat, round_gray):
  if x.shape[-1] == 1:
    g = x[..., 0]
  else:
    r, gr, b = RGB2GRAY if compat == "matlab" else imageops.YIQ_LUMA
    g = r * x[..., 0] + gr * x[..., 1] + b * x[..., 2]
  if round_gray:
    g = jnp.floor(255.0 * g + 0.5) / 255.0
  return g


@functools.partial(jax.jit, static_argnames=("round_gray", "compat"))
def nlpd(x, y, round_gray=False, compat="matlab"):
  """NLPD per image (a distance: 0 for identical images, lower is better).

  Args:
    x, y: [B, H, W, 3] RGB (or [B, H, W, 1] gray) float images in [0, 1], min(H, W) >= 17.
    round_gray: round the luminance to 8 bits first (MATLAB on uint8 images; no gradient).
    compat: "matlab" (default, NLP_dist.m) or "pyiqa" (pyiqa 0.1 `nlpd_arch.NLPD`).

  Returns:
    [B] float32.
  """
  if compat not in COMPAT_MODES:
    raise ValueError(f"nlpd: compat must be one of {COMPAT_MODES}, got {compat!r}")
  imageops.check_pair(x, y, name="nlpd", min_size=MIN_SIZE)
  if x.shape[-1] not in (1, 3):
    raise ValueError(f"nlpd: expected 1 or 3 channels, got {x.shape[-1]}")
  bands_x = normalized_laplacian_pyramid(_gray(imageops.as_float(x), compat, round_gray), compat)
  bands_y = normalized_laplacian_pyramid(_gray(imageops.as_float(y), compat, round_gray), compat)
  rms = [imageops.safe_sqrt(jnp.mean((bx - by) ** 2, axis=(1, 2)))
         for bx, by in zip(bands_x, bands_y)]
  return jnp.mean(jnp.stack(rms, axis=-1), axis=-1)


@registry.register("nlpd")
def _nlpd_metric(arg=None):
  del arg
  return registry.Metric(
      name="nlpd", kind="distance", compute=lambda _, x, y: nlpd(x, y, round_gray=True),
      loss_fn=lambda _, x, y: nlpd(x, y))
