"""LPIPS-style heads on the VGG16 taps, their files, and LPIPS's ranking network.

A head set is five non-negative weight vectors w_k [C_k] (C = 64, 128, 256, 512, 512) on the
taps relu1_2 ... relu5_3; the distance is lpips.py's,

    d(x, y) = sum_k sum_c w_kc g_kc(x, y),   g_kc = mean_{h,w} (f^x_khwc - f^y_khwc)^2

with f the unit-normalised VGG16 features. With the backbone frozen d is linear in w, so training
precomputes g per pair once (`channel_stats`) and scores heads with `distance_from_stats`.

Files: `heads.safetensors` (lin0 ... lin4, float32) and `heads.json` (format, channels, how the
heads were made); `save` writes both atomically, `load` checks shapes and signs.

The ranking network (`Dist2Logit`, LPIPS's Dist2LogitLayer) maps two distances to the
probability that a human prefers p1: [d0, d1, d0 - d1, d0 / (d1 + .1), d1 / (d0 + .1)] through
layers 5 -> 32 -> 32 -> 1 (1x1 convolutions = dense layers), LeakyReLU(0.2), sigmoid.
"""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.metrics import lpips
from jaxcomp.metrics import weights

CHANNELS = weights.LPIPS_CHANNELS
FORMAT = "jaxcomp-dpl-heads"
HEADS_FILE = "heads.safetensors"
META_FILE = "heads.json"
RATIO_EPS = 0.1
# lpips.py's feature taps and channel normalisation, shared rather than copied.
_taps = lpips._taps  # pylint: disable=protected-access
_normalize_channels = lpips._normalize_channels  # pylint: disable=protected-access


def uniform_heads():
  """Heads w_kc = 1 / C_k: each tap's mean over channels (LPIPS's 'baseline', lin off)."""
  return [jnp.full((c,), 1.0 / c, jnp.float32) for c in CHANNELS]


def lpips_heads(cache=None):
  """The LPIPS v0.1 VGG heads from the weights cache (UserError if absent)."""
  return lpips.load_params(cache)["lin"]


@jax.jit
def channel_stats(vgg, x, y):
  """Per-channel squared feature differences g_k of lpips.py for a pair batch.

  Args:
    vgg: VGG16 variables (lpips.load_params()['vgg']).
    x, y: [B, H, W, 3] float images in [0, 1], H, W >= 16.

  Returns:
    list of 5 arrays [B, C_k].
  """
  params = {"vgg": vgg}
  stats = []
  for fx, fy in zip(_taps(params, x), _taps(params, y)):
    d = _normalize_channels(fx) - _normalize_channels(fy)
    stats.append(jnp.mean(d * d, axis=(1, 2)))
  return stats


def distance_from_stats(stats, heads):
  """[B] distances sum_k g_k . w_k from `channel_stats` output and heads (lists of 5)."""
  return sum(jnp.einsum("bc,c->b", g, w) for g, w in zip(stats, heads))


class Dist2Logit(nn.Module):
  """LPIPS's ranking network: (d0, d1) [B] each -> [B] logit of 'p1 is closer'."""

  hidden: int = 32

  @nn.compact
  def __call__(self, d0, d1):
    x = jnp.stack([d0, d1, d0 - d1, d0 / (d1 + RATIO_EPS), d1 / (d0 + RATIO_EPS)], axis=-1)
    x = nn.leaky_relu(nn.Dense(self.hidden)(x), 0.2)
    x = nn.leaky_relu(nn.Dense(self.hidden)(x), 0.2)
    return nn.Dense(1)(x)[..., 0]


def save(path, heads, meta):
  """Writes heads (5 arrays [C_k]) and `meta` (a JSON-able dict) to the folder `path`."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top

  with atomic_path(path) as tmp:
    os.makedirs(tmp)
    save_file({f"lin{k}": np.asarray(w, np.float32) for k, w in enumerate(heads)},
              os.path.join(tmp, HEADS_FILE))
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump(dict(meta, format=FORMAT, channels=list(CHANNELS)), f, indent=1)


def load(path):
  """(heads: 5 jnp arrays [C_k], meta dict) from a folder written by `save` (UserError if bad)."""
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top

  files = [os.path.join(path, n) for n in (HEADS_FILE, META_FILE)]
  for file in files:
    if not os.path.isfile(file):
      raise UserError(f"{file}: missing (make heads with `jaxcomp perceptual train`)")
  with open(files[1]) as f:
    try:
      meta = json.load(f)
    except ValueError as e:
      raise UserError(f"{files[1]}: not JSON ({e})") from e
  if meta.get("format") != FORMAT:
    raise UserError(f"{files[1]}: not a {FORMAT} file")
  try:
    tensors = load_file(files[0])
  except Exception as e:  # safetensors raises its own error types
    raise UserError(f"{files[0]}: cannot read ({e})") from e
  heads = []
  for k, c in enumerate(CHANNELS):
    w = tensors.get(f"lin{k}")
    if w is None or w.shape != (c,):
      raise UserError(f"{files[0]}: lin{k} must have shape ({c},), "
                      f"got {None if w is None else w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
      raise UserError(f"{files[0]}: lin{k} must be finite and non-negative")
    heads.append(jnp.asarray(w, jnp.float32))
  return heads, meta
