"""LPIPS (Zhang et al. 2018), VGG backbone, v0.1 linear heads, as lpips 0.1.4 `LPIPS(net='vgg')`.

For x, y in [0, 1]: scale to [-1, 1], apply the v0.1 ScalingLayer (z - shift) / scale with
shift = (-.030, -.088, -.188), scale = (.458, .448, .450) (= ImageNet mean/std normalisation),
take the VGG16 max-pool taps f_k (relu1_2 ... relu5_3), unit-normalise each pixel's channel
vector, f / (||f||_2 + 1e-10), and

    LPIPS = sum_k mean_{h,w} sum_c w_kc (f^x_khwc - f^y_khwc)^2,   w_kc >= 0 the v0.1 heads.

A distance: 0 for identical images, lower is better; used directly as a loss. The channel norm
has gradient 0 (not NaN) where a feature vector is all zero; values are unchanged.
"""

import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.metrics import registry
from jaxcomp.nets import vgg16
from jaxcomp.nets import weights

SHIFT = vgg16.LPIPS_SHIFT
SCALE = vgg16.LPIPS_SCALE
EPS = 1e-10
MIN_SIZE = 16  # relu5_3 sits after four 2x2 max-pools
BUNDLES = ("vgg16", "lpips_vgg_v0.1")


def load_params(cache=None):
  """{'vgg': VGG16 variables, 'lin': 5 arrays [C_k]} from the cache (UserError if absent)."""
  lins = weights.load("lpips_vgg_v0.1", cache)
  return {"vgg": vgg16.load_params(cache),
          "lin": [jnp.asarray(lins[f"lin{k}"]) for k in range(len(vgg16.TAPS))]}


def _normalize_channels(f):
  return f / (imageops.safe_sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + EPS)


def _taps(params, x):
  x = (2.0 * imageops.as_float(x) - 1.0 - jnp.asarray(SHIFT)) / jnp.asarray(SCALE)
  return vgg16.features(params["vgg"], x, pool="max")


@jax.jit
def lpips(x, y, params):
  """LPIPS-VGG v0.1 per image (a distance: 0 for identical images, lower is better).

  Args:
    x, y: [B, H, W, 3] RGB float images in [0, 1], H, W >= 16.
    params: from `load_params()`.

  Returns:
    [B] float32.
  """
  imageops.check_pair(x, y, name="lpips", min_size=MIN_SIZE, channels=3)
  total = 0.0
  for fx, fy, w in zip(_taps(params, x), _taps(params, y), params["lin"]):
    d = _normalize_channels(fx) - _normalize_channels(fy)
    total = total + jnp.mean(jnp.einsum("bhwc,c->bhw", d * d, w), axis=(1, 2))
  return total


@jax.jit
def weighted_lpips(x, y, params, w):
  """LPIPS per image with each layer's distance map averaged under pixel weights -> [B].

  Args:
    x, y, params: as `lpips`.
    w: [B, H, W] non-negative pixel weights, resampled to each VGG16 tap's resolution
      (`imageops.resize_weights`). For w = 1 this is `lpips`.
  """
  imageops.check_pair(x, y, name="lpips", min_size=MIN_SIZE, channels=3)
  total = 0.0
  for fx, fy, lin in zip(_taps(params, x), _taps(params, y), params["lin"]):
    d = _normalize_channels(fx) - _normalize_channels(fy)
    layer_map = jnp.einsum("bhwc,c->bhw", d * d, lin)
    total = total + imageops.weighted_mean(
        layer_map, imageops.resize_weights(w, layer_map.shape[1], layer_map.shape[2]))
  return total


@registry.register("lpips")
def _lpips_metric(arg=None):
  del arg
  return registry.Metric(
      name="lpips", kind="distance", compute=lambda p, x, y: lpips(x, y, p),
      loss_fn=lambda p, x, y: lpips(x, y, p), params=load_params(),
      weighted_loss_fn=lambda p, x, y, w: weighted_lpips(x, y, p, w))
