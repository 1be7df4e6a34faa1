"""VSI: visual saliency-induced index (Zhang, Shen, Li, IEEE TIP 23, 2014).

On the 0-255 scale, with VS the SDSP saliency map in [0, 1] (`jaxcomp.saliency.sdsp`) and
L, M, N the opponent channels L = .06R + .63G + .27B, M = .30R + .04G - .35B,
N = .34R - .60G + .17B:

    F     = max(1, round(min(H, W) / 256));  VS, L, M, N <- F x F average, every F-th pixel
    S     = S(VS_x, VS_y, 1.27) * S(G_x, G_y, 386)^0.4 * real((S_M S_N)^0.02)
            S_M = S(M_x, M_y, 130),  S_N = S(N_x, N_y, 130),
            S(a, b, C) = (2ab + C) / (a^2 + b^2 + C),  G = Scharr gradient magnitude of L
    VSI   = (sum(S * VS_m) + eps) / (sum(VS_m) + eps),    VS_m = max(VS_x, VS_y)

A similarity: 1 for identical images, higher is better. Training loss: 1 - VSI (registry `vsi`).

`compat="matlab"` (default): SDSP with antialiased resizing (as MATLAB's `imresize`), the
centred F x F average `conv2(..., 'same')` of FSIM.m (zeros outside, last partial window kept),
F rounded half up. `compat="piq"` reproduces piq 0.8.0 `vsi`: SDSP resized without antialiasing
(align_corners=True on the way back), replicate padding F//2 before / (F-1)//2 after and
`avg_pool2d(F)` (windows [F i - F//2, F i + (F-1)//2 - F//2]), Python rounding of F. Both take
real(z^0.02) = cos(0.02 pi) |z|^0.02 for negative z (gradient 0 at z = 0) and add float eps
to both sums as piq does.

`saliency_gradient=False` treats the two saliency maps as constants (`stop_gradient`). The
value is unchanged; the gradient then flows only through the gradient-magnitude and chroma
terms. SDSP ends in a min-max normalisation and its colour prior has sigma_C = 0.001, so its
gradient is concentrated on the few pixels that hold the extremes of a, b and of the raw map;
the registry loss keeps the exact gradient (as piq's VSILoss) and this switch is for
experiments that want saliency as a fixed weighting.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.metrics import _zhang
from jaxcomp.nets import imageops
from jaxcomp.metrics import registry
from jaxcomp.saliency import sdsp

C1, C2, C3 = 1.27, 386.0, 130.0
ALPHA, BETA = 0.40, 0.020
_LMN = ((0.06, 0.63, 0.27), (0.30, 0.04, -0.35), (0.34, -0.60, 0.17))
_EPS = float(np.finfo(np.float32).eps)


def _lmn(x):
  return jnp.einsum("bhwc,dc->bhwd", x, np.asarray(_LMN, np.float32))


@functools.partial(jax.jit, static_argnames=("compat", "saliency_gradient"))
def vsi(x, y, compat="matlab", saliency_gradient=True):
  """VSI per image (a similarity: 1 for identical images, higher is better).

  Args:
    x, y: [B, H, W, 3] RGB float images in [0, 1], H, W >= 2 after the automatic down-sampling.
    compat: "matlab" (default) or "piq" (piq 0.8.0 `vsi`); see the module docstring.
    saliency_gradient: False to stop the gradient through the SDSP saliency maps.

  Returns:
    [B] float32 in [0, 1].
  """
  _zhang.check_compat(compat, "vsi")
  imageops.check_pair(x, y, name="vsi", min_size=2, channels=3)
  x, y = imageops.as_float(x), imageops.as_float(y)
  vs_x, vs_y = sdsp(x, compat=compat)[..., None], sdsp(y, compat=compat)[..., None]
  if not saliency_gradient:
    vs_x, vs_y = jax.lax.stop_gradient(vs_x), jax.lax.stop_gradient(vs_y)
  factor = _zhang.downsample_factor(x.shape[1], x.shape[2], compat)
  pool = _zhang.matlab_downsample if compat == "matlab" else _zhang.piq_vsi_downsample
  vs_x, vs_y = pool(vs_x, factor)[..., 0], pool(vs_y, factor)[..., 0]
  lmn_x, lmn_y = pool(_lmn(255.0 * x), factor), pool(_lmn(255.0 * y), factor)
  s_vs = _zhang.similarity(vs_x, vs_y, C1)
  s_gm = _zhang.similarity(_zhang.gradient_magnitude(lmn_x[..., :1]),
                           _zhang.gradient_magnitude(lmn_y[..., :1]), C2)[..., 0]
  s_mn = _zhang.similarity(lmn_x[..., 1:], lmn_y[..., 1:], C3)
  s = s_vs * s_gm**ALPHA * _zhang.real_power(s_mn[..., 0] * s_mn[..., 1], BETA)
  vs_max = jnp.maximum(vs_x, vs_y)
  return (jnp.sum(s * vs_max, axis=(1, 2)) + _EPS) / (jnp.sum(vs_max, axis=(1, 2)) + _EPS)


@registry.register("vsi")
def _vsi_metric(arg=None):
  del arg
  return registry.Metric(
      name="vsi", kind="similarity", compute=lambda _, x, y: vsi(x, y),
      loss_fn=lambda _, x, y: 1.0 - vsi(x, y))
