"""LPIPS-style heads on the VGG16 taps, their files, and LPIPS's ranking network.

A head set is five non-negative weight vectors w_k [C_k] (C = 64, 128, 256, 512, 512) on the
taps relu1_2 ... relu5_3; the distance is lpips.py's,

    d(x, y) = sum_k sum_c w_kc g_kc(x, y),   g_kc = mean_{h,w} (f^x_khwc - f^y_khwc)^2

with f the unit-normalised VGG16 features. With the backbone frozen d is linear in w, so training
precomputes g per pair once (`channel_stats`, or `triplet_stats` for both pairs of a triplet in
one VGG16 pass) and scores heads with `distance_from_stats`; fine-tuning the backbone computes
them per batch.

Files: `heads.safetensors` (lin0 ... lin4, float32) and `heads.json` (format, channels, how the
heads were made), plus `backbone.safetensors` when the VGG16 backbone was fine-tuned with the
heads (Conv_0/kernel ... Conv_12/bias, the layout of the pretrained cache file; heads.json then
names it under "backbone"). Safetensors only, no pickle. `save` writes the folder atomically;
`load` checks shapes and signs, `load_backbone` the backbone's shapes and values.

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
from safetensors.numpy import load_file, save_file

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.metrics import lpips
from jaxcomp.nets import vgg16
from jaxcomp.nets import weights

CHANNELS = weights.LPIPS_CHANNELS
FORMAT = "jaxcomp-dpl-heads"
HEADS_FILE = "heads.safetensors"
BACKBONE_FILE = "backbone.safetensors"
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
  return [_diff_stats(fx, fy) for fx, fy in zip(_taps(params, x), _taps(params, y))]


def _diff_stats(fx, fy):
  d = _normalize_channels(fx) - _normalize_channels(fy)
  return jnp.mean(d * d, axis=(1, 2))


def triplet_stats(vgg, ref, p0, p1):
  """`channel_stats` of (p0, ref) and (p1, ref) with one VGG16 pass over [ref; p0; p1].

  Args:
    vgg: VGG16 variables.
    ref, p0, p1: [B, H, W, 3] float images in [0, 1], H, W >= 16.

  Returns:
    (stats0, stats1): lists of 5 arrays [B, C_k].
  """
  b = ref.shape[0]
  taps = _taps({"vgg": vgg}, jnp.concatenate([ref, p0, p1]))
  stats0 = [_diff_stats(f[b:2 * b], f[:b]) for f in taps]
  stats1 = [_diff_stats(f[2 * b:], f[:b]) for f in taps]
  return stats0, stats1


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


def save(path, heads, meta, backbone=None):
  """Writes heads and `meta` (a JSON-able dict) to the folder `path`, atomically.

  Args:
    path: folder to (re)write.
    heads: 5 arrays [C_k].
    meta: how the heads were made (stored in heads.json).
    backbone: fine-tuned VGG16 variables {'params': {'Conv_i': {'kernel', 'bias'}}} to store in
      backbone.safetensors, or None (the metric then uses the pretrained VGG16).
  """
  meta = dict(meta, format=FORMAT, channels=list(CHANNELS),
              backbone=None if backbone is None else BACKBONE_FILE)
  with atomic_path(path) as tmp:
    os.makedirs(tmp)
    save_file({f"lin{k}": np.asarray(w, np.float32) for k, w in enumerate(heads)},
              os.path.join(tmp, HEADS_FILE))
    if backbone is not None:
      flat = {f"{layer}/{name}": np.asarray(value, np.float32)
              for layer, tensors in backbone["params"].items() for name, value in tensors.items()}
      save_file(flat, os.path.join(tmp, BACKBONE_FILE))
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump(meta, f, indent=1)


def load(path):
  """(heads: 5 jnp arrays [C_k], meta dict) from a folder written by `save` (UserError if bad)."""
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


def load_backbone(path, meta):
  """The fine-tuned VGG16 variables saved beside the heads, or None if the heads have none.

  Args:
    path: a folder written by `save`.
    meta: its heads.json, from `load`.

  Raises:
    UserError: the file is missing, unreadable, or not a finite VGG16 of the expected shapes.
  """
  name = meta.get("backbone")
  if not name:
    return None
  if name != BACKBONE_FILE:
    raise UserError(f"{os.path.join(path, META_FILE)}: backbone must be {BACKBONE_FILE!r}, "
                    f"got {name!r}")
  file = os.path.join(path, BACKBONE_FILE)
  if not os.path.isfile(file):
    raise UserError(f"{file}: missing (heads.json names a fine-tuned backbone)")
  try:
    tensors = load_file(file)
  except Exception as e:  # safetensors raises its own error types
    raise UserError(f"{file}: cannot read ({e})") from e
  expected = weights.BUNDLES["vgg16"][1]
  for key, shape in expected.items():
    w = tensors.get(key)
    if w is None or w.shape != shape:
      raise UserError(f"{file}: {key} must have shape {shape}, "
                      f"got {None if w is None else w.shape}")
    if not np.all(np.isfinite(w)):
      raise UserError(f"{file}: {key} must be finite")
  extra = sorted(set(tensors) - set(expected))
  if extra:
    raise UserError(f"{file}: unexpected tensors {extra[:3]}")
  return {"params": vgg16.unflatten(tensors)}
