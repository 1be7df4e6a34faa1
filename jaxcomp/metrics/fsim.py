"""FSIM and FSIMc: feature similarity (Zhang, Zhang, Mou, Zhang, IEEE TIP 20(8), 2011).

On the 0-255 scale, with Y, I, Q the YIQ channels of each image:

    F      = max(1, round(min(H, W) / 256));  Y, I, Q <- F x F average, every F-th pixel
    PC     = phase congruency of Y (Kovesi): log-Gabor filters, 4 scales (wavelengths 6, 12,
             24, 48: mult 2, sigma_f/f0 = 0.55), 4 orientations (angular sigma pi/4/1.2), a
             Butterworth low-pass (cutoff 0.45, order 15), noise threshold from the median
             of the finest scale's energy (k = 2, divided by 1.7)
    GM     = Scharr gradient magnitude of Y ([3 0 -3; 10 0 -10; 3 0 -3] / 16)
    S_L    = S(PC_x, PC_y, 0.85) * S(GM_x, GM_y, 160),   S(a, b, T) = (2ab + T) / (a^2 + b^2 + T)
    FSIM   = sum(S_L * PC_m) / sum(PC_m),                PC_m = max(PC_x, PC_y)
    FSIMc  = sum(S_L * real((S(I_x, I_y, 200) S(Q_x, Q_y, 200))^0.03) * PC_m) / sum(PC_m)

Similarities: 1 for identical images, higher is better. Training loss: 1 - FSIMc (registry
`fsim`; `fsim_gray` is 1 - FSIM on the luma). Not clamped to [0, 1] (piq's FSIMLoss clamps,
which zeroes the gradient of an over-contrasted reconstruction).

`compat="matlab"` (default) follows the published FSIM.m: YIQ rows (.596, -.274, -.322),
(.211, -.523, .312); F rounded half up, down-sampling by the centred F x F average
`conv2(..., 'same')` (zeros outside, last partial window kept); median averaging the two middle
values; real((S_I S_Q)^0.03) = cos(0.03 pi) |S_I S_Q|^0.03 where the product is negative.
`compat="piq"` reproduces piq 0.8.0 `fsim`: YIQ (.5959, -.2746, -.3213), (.2115, -.5227,
.3112); Python rounding of F; `avg_pool2d(F)` (windows [F i, F i + F - 1], tail dropped); the
lower median (torch.median); |S_I S_Q|^0.03; its frequency grid with rows and columns swapped.

For finite gradients everywhere: square roots have gradient 0 at 0, the amplitude sum in the
phase-congruency ratio gets +1e-4 (MATLAB divides by it bare, NaN on flat images; piq adds
float eps), and FSIM is (sum(S PC_m) + eps) / (sum(PC_m) + eps), so that two identical flat
images (PC_m = 0 everywhere) score 1 rather than 0/0.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.metrics import _zhang
from jaxcomp.nets import imageops
from jaxcomp.metrics import registry

SCALES = 4
ORIENTATIONS = 4
MIN_WAVELENGTH = 6.0
MULT = 2.0
SIGMA_ON_F = 0.55
D_THETA_ON_SIGMA = 1.2
NOISE_K = 2.0
PC_EPSILON = 1e-4  # phasecong2's epsilon, on the 0-255 scale
LOWPASS_CUTOFF, LOWPASS_ORDER = 0.45, 15
T1, T2, T3, T4, LAMBDA = 0.85, 160.0, 200.0, 200.0, 0.03
_YIQ = {
    "matlab": ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)),
    "piq": ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112)),
}
_EPS = float(np.finfo(np.float32).eps)


def _centred_axis(n):
  """Frequencies of an n-point axis centred on 0 and normalised to about +-0.5 (phasecong2)."""
  if n % 2:
    return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
  return np.arange(-n / 2, n / 2) / n


@functools.lru_cache(maxsize=16)
def log_gabor_bank(height, width, transposed=False):
  """The phase-congruency filter bank for an H x W image and its noise constants (float64).

  Args:
    height, width: image size.
    transposed: piq's grid (x along rows, y along columns) instead of MATLAB's.

  Returns:
    (filters [O, S, H, W]: frequency responses, DC at [0, 0];
     em_n [O]: sum of squared responses of the finest scale;
     noise_gain [O]: T / sqrt(noise power), the threshold per unit noise amplitude).
  """
  if transposed:
    x, y = np.meshgrid(_centred_axis(height), _centred_axis(width), indexing="ij")
  else:
    x, y = np.meshgrid(_centred_axis(width), _centred_axis(height), indexing="xy")
  radius = np.fft.ifftshift(np.sqrt(x * x + y * y))
  theta = np.fft.ifftshift(np.arctan2(-y, x))
  lowpass = 1.0 / (1.0 + (radius / LOWPASS_CUTOFF) ** (2 * LOWPASS_ORDER))
  radius[0, 0] = 1.0
  radial = []
  for s in range(SCALES):
    f0 = 1.0 / (MIN_WAVELENGTH * MULT**s)
    g = np.exp(-np.log(radius / f0) ** 2 / (2 * math.log(SIGMA_ON_F) ** 2)) * lowpass
    g[0, 0] = 0.0
    radial.append(g)
  theta_sigma = math.pi / ORIENTATIONS / D_THETA_ON_SIGMA
  filters = []
  for o in range(ORIENTATIONS):
    angle = o * math.pi / ORIENTATIONS
    ds = np.sin(theta) * math.cos(angle) - np.cos(theta) * math.sin(angle)
    dc = np.cos(theta) * math.cos(angle) + np.sin(theta) * math.sin(angle)
    spread = np.exp(-np.arctan2(ds, dc) ** 2 / (2 * theta_sigma**2))
    filters.append(np.stack([g * spread for g in radial]))
  filters = np.stack(filters)
  em_n = np.sum(filters[:, 0] ** 2, axis=(-2, -1))
  spatial = np.real(np.fft.ifft2(filters)) * math.sqrt(height * width)
  sum_an2 = np.sum(spatial**2, axis=(1, 2, 3))
  sum_ai_aj = sum(np.sum(spatial[:, i] * spatial[:, j], axis=(-2, -1))
                  for i in range(SCALES) for j in range(i + 1, SCALES))
  # tau^2 = noise power * (sum An^2 + 2 sum AiAj); T = (tau sqrt(pi/2) + k tau sqrt(2 - pi/2)) / 1.7
  gain = (math.sqrt(math.pi / 2) + NOISE_K * math.sqrt(2 - math.pi / 2)) / 1.7
  noise_gain = gain * np.sqrt(sum_an2 + 2 * sum_ai_aj)
  return filters, em_n, noise_gain


def _kth_smallest(v, k):
  """Exact k-th smallest (0-based) of v >= 0 along the last axis, without sorting.

  Bisection on the int32 bit patterns (monotonic for non-negative floats): 31 passes of
  compare-and-count, much faster on XLA:CPU than a sort. No gradient (stop it outside).
  """
  bits = jax.lax.bitcast_convert_type(jax.lax.stop_gradient(v), jnp.int32)

  def step(_, bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) // 2
    enough = jnp.sum(bits <= mid[..., None], axis=-1) >= k + 1
    return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

  lo = jnp.zeros(v.shape[:-1], jnp.int32)
  lo, _ = jax.lax.fori_loop(0, 31, step, (lo, jnp.full_like(lo, 2**31 - 1)))
  return jax.lax.bitcast_convert_type(lo, jnp.float32)


def _select(v, value):
  """`value` [...] as a differentiable function of v [..., n]: the mean of the entries equal
  to it."""
  hit = v == value[..., None]
  return jnp.sum(jnp.where(hit, v, 0.0), axis=-1) / jnp.sum(hit, axis=-1)


def median(v, lower=False):
  """Median of v >= 0 along the last axis; the gradient goes to the middle entries.

  Args:
    v: [..., n] float32, non-negative.
    lower: for even n, the lower middle value (torch.median) instead of the mean of the two
      middle values (MATLAB, numpy).

  Returns:
    [...] float32.
  """
  n = v.shape[-1]
  k = (n - 1) // 2
  low = _kth_smallest(v, k)
  if lower or n % 2:
    return _select(v, low)
  # the (k+1)-th smallest: `low` again if it occurs often enough, else the next larger value
  repeated = jnp.sum(v <= low[..., None], axis=-1) >= k + 2
  above = jnp.min(jnp.where(v > low[..., None], v, jnp.inf), axis=-1)
  high = jax.lax.stop_gradient(jnp.where(repeated, low, above))
  return 0.5 * (_select(v, low) + _select(v, high))


def phase_congruency(y, compat="matlab"):
  """Phase congruency (Kovesi's phasecong2 as used by FSIM) of gray images on the 0-255 scale.

  Args:
    y: [B, H, W] float.
    compat: "matlab" or "piq" (grid orientation, median, epsilon; see the module docstring).

  Returns:
    [B, H, W] float32 in [0, 1].
  """
  _, h, w = y.shape
  filters, em_n, noise_gain = log_gabor_bank(h, w, transposed=compat == "piq")
  eo = jnp.fft.ifft2(jnp.fft.fft2(y)[:, None, None] * filters.astype(np.float32))  # [B,O,S,H,W]
  even, odd = jnp.real(eo), jnp.imag(eo)
  amplitude = imageops.safe_sqrt(even * even + odd * odd)
  sum_e, sum_o = even.sum(axis=2, keepdims=True), odd.sum(axis=2, keepdims=True)
  eps = PC_EPSILON if compat == "matlab" else _EPS
  x_energy = imageops.safe_sqrt(sum_e * sum_e + sum_o * sum_o) + eps
  mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
  energy = jnp.sum(even * mean_e + odd * mean_o - jnp.abs(even * mean_o - odd * mean_e), axis=2)
  finest = (even[:, :, 0] ** 2 + odd[:, :, 0] ** 2).reshape(*energy.shape[:2], -1)
  noise_power = median(finest, lower=compat == "piq") / -math.log(0.5) / em_n.astype(np.float32)
  threshold = imageops.safe_sqrt(noise_power) * noise_gain.astype(np.float32)
  energy = jax.nn.relu(energy - threshold[..., None, None])
  if compat == "matlab":
    return energy.sum(axis=1) / (amplitude.sum(axis=(1, 2)) + PC_EPSILON)
  return (energy.sum(axis=1) + _EPS) / (amplitude.sum(axis=(1, 2)) + _EPS)


def _yiq(x, compat):
  rows = _YIQ[compat]
  return [sum(c * x[..., k:k + 1] for k, c in enumerate(row)) for row in rows]


@functools.partial(jax.jit, static_argnames=("chromatic", "compat"))
def fsim(x, y, chromatic=True, compat="matlab"):
  """FSIMc (chromatic=True) or FSIM per image (a similarity: 1 for identical images).

  Args:
    x, y: [B, H, W, 3] RGB float images in [0, 1]; [B, H, W, 1] gray allowed when
      chromatic=False. H, W >= 2 after the automatic F x F down-sampling.
    chromatic: FSIMc (with the I/Q chroma term) instead of FSIM.
    compat: "matlab" (default, the published FSIM.m) or "piq" (piq 0.8.0 `fsim`).

  Returns:
    [B] float32, usually in [0, 1].
  """
  _zhang.check_compat(compat, "fsim")
  imageops.check_pair(x, y, name="fsim", min_size=2, channels=3 if chromatic else None)
  if x.shape[-1] not in (1, 3):
    raise ValueError(f"fsim: expected 1 or 3 channels, got {x.shape[-1]}")
  factor = _zhang.downsample_factor(x.shape[1], x.shape[2], compat)
  pool = _zhang.matlab_downsample if compat == "matlab" else _zhang.piq_fsim_downsample
  x, y = (pool(255.0 * imageops.as_float(v), factor) for v in (x, y))
  if x.shape[-1] == 3:
    (lx, ix, qx), (ly, iy, qy) = _yiq(x, compat), _yiq(y, compat)
  else:
    lx, ly = x, y
  pc_x, pc_y = phase_congruency(lx[..., 0], compat), phase_congruency(ly[..., 0], compat)
  s = _zhang.similarity(pc_x, pc_y, T1) * _zhang.similarity(
      _zhang.gradient_magnitude(lx)[..., 0], _zhang.gradient_magnitude(ly)[..., 0], T2)
  if chromatic:
    s_c = (_zhang.similarity(ix, iy, T3) * _zhang.similarity(qx, qy, T4))[..., 0]
    s = s * (_zhang.real_power(s_c, LAMBDA) if compat == "matlab"
             else imageops.safe_pow(jnp.abs(s_c), LAMBDA))
  pc_max = jnp.maximum(pc_x, pc_y)
  return (jnp.sum(s * pc_max, axis=(1, 2)) + _EPS) / (jnp.sum(pc_max, axis=(1, 2)) + _EPS)


@registry.register("fsim")
def _fsim_metric(arg=None):
  del arg
  return registry.Metric(
      name="fsim", kind="similarity", compute=lambda _, x, y: fsim(x, y),
      loss_fn=lambda _, x, y: 1.0 - fsim(x, y))


@registry.register("fsim_gray")
def _fsim_gray_metric(arg=None):
  del arg
  return registry.Metric(
      name="fsim_gray", kind="similarity",
      compute=lambda _, x, y: fsim(x, y, chromatic=False),
      loss_fn=lambda _, x, y: 1.0 - fsim(x, y, chromatic=False))
