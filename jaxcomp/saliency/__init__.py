"""Saliency models: where people look in an image, as maps that weight distortion or bits.

One interface for every model:

    from jaxcomp import saliency
    model = saliency.load("sdsp")            # or "learned:DIR" / "DIR" / "centre"
    maps = model(images)                      # [B, H, W, 3] RGB in [0, 1] -> [B, H, W] in [0, 1]
    maps = model.apply(model.params, images)  # the same, as a pure jittable function
    maps = saliency.saliency(images, "sdsp")

Models (`load(spec)`, registered in `MODELS`; `SaliencyModel.name` is the spec to record in model
files):
  "sdsp"         the classical SDSP model (frequency, colour and location priors; Zhang et al.
                 2013; sdsp.py): no weights, the saliency of VSI, the default.
  "learned:DIR"  a Flax decoder on VGG16 features (learned.py) trained with
  or "DIR"       `jaxcomp saliency train` (train.py) on saliency data (data.py).
  "centre"       a Gaussian centre-bias map (sigma = a quarter of each side): an evaluation
                 baseline that ignores the image content.

Every `apply` maps [B, H, W, 3] float images in [0, 1] (any H, W >= 1) to [B, H, W] float32 maps
in [0, 1] whose most salient pixel is 1; all are differentiable in the images.

Saliency maps supplied from files or by callers are checked with `validate_maps` (size, range
[0, 1] with a 1e-5 tolerance, NaN/inf -> UserError) and read with `read_map` (grayscale
PNG/JPEG, 8 or 16 bit). Metrics: evaluation.py; losses: losses.py.
"""

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from PIL import UnidentifiedImageError

from jaxcomp import pixels
from jaxcomp.errors import UserError
from jaxcomp.registry import Registry, parse_spec
from jaxcomp.saliency import learned
from jaxcomp.saliency.sdsp import sdsp

RANGE_TOLERANCE = 1e-5
CENTRE_SIGMA = 0.25
BUILTIN = ("sdsp", "centre")


@dataclasses.dataclass(frozen=True, eq=False)
class SaliencyModel:
  """A saliency model: `apply(params, images) -> [B, H, W]` in [0, 1], pure and jittable.

  Attributes:
    name: the spec that `load` accepts and that model files record ("sdsp", "learned:DIR").
    params: the model's pytree (None for models without weights).
    apply: (params, images [B, H, W, 3] float in [0, 1]) -> [B, H, W] float32 in [0, 1].
  """

  name: str
  params: Any
  apply: Callable[[Any, Any], Any]

  def __call__(self, images):
    return self.apply(self.params, images)


def _check_images(images):
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"saliency: expected [B, H, W, 3] RGB images, got {tuple(images.shape)}")


def _sdsp_apply(params, images):
  del params
  _check_images(images)
  return sdsp(images)


@jax.jit
def centre_map(images):
  """Gaussian centre bias [B, H, W] in [0, 1] (sigma = CENTRE_SIGMA of each side)."""
  _check_images(images)
  b, h, w, _ = images.shape
  y = (jnp.arange(h) + 0.5) / h - 0.5
  x = (jnp.arange(w) + 0.5) / w - 0.5
  g = jnp.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * CENTRE_SIGMA**2))
  g = (g - g.min()) / jnp.maximum(g.max() - g.min(), 1e-12)
  return jnp.broadcast_to(g, (b, h, w)).astype(jnp.float32)


def _centre_apply(params, images):
  del params
  return centre_map(images)


@functools.lru_cache(maxsize=8)
def _load_learned(path, mtime):
  del mtime  # part of the cache key: a retrained folder is read again
  params, config, _ = learned.load(path)
  return params, learned.make_apply(config)


def _learned_model(path):
  """The SaliencyModel of a folder of learned weights ("learned:DIR")."""
  if not path:
    raise UserError("learned: give the weights folder, e.g. learned:runs/saliency")
  if not os.path.isdir(path):
    raise UserError(f"learned:{path}: folder {path} does not exist (make learned saliency weights "
                    "with `jaxcomp saliency train`)")
  meta = os.path.join(path, "saliency.json")
  mtime = os.stat(meta).st_mtime_ns if os.path.isfile(meta) else 0
  params, apply = _load_learned(os.path.abspath(path), mtime)
  return SaliencyModel(f"learned:{os.path.normpath(path)}", params, apply)


# Saliency models by spec: name -> factory(arg) -> SaliencyModel ("learned" takes the folder).
MODELS = Registry(
    "saliency model",
    hint=": use 'sdsp', 'centre' or a folder of learned saliency weights (learned:DIR, made by "
    "`jaxcomp saliency train`)")
MODELS.register("sdsp", lambda arg: SaliencyModel("sdsp", None, _sdsp_apply))
MODELS.register("centre", lambda arg: SaliencyModel("centre", None, _centre_apply))
MODELS.register("center", MODELS["centre"])
MODELS.register("learned", _learned_model, takes_arg=True)


def load(spec):
  """The SaliencyModel for "sdsp", "centre", "learned:DIR" or a weights folder DIR.

  Raises UserError for an unknown spec or a missing / invalid weights folder.
  """
  if not isinstance(spec, str) or not spec.strip():
    raise UserError(f"saliency model must be 'sdsp', 'centre' or a weights folder, got {spec!r}")
  spec = spec.strip()
  if parse_spec(spec)[0] not in MODELS and os.path.isdir(spec):
    return _learned_model(spec)  # a bare folder of learned weights
  factory, arg = MODELS.lookup(spec)
  return factory(arg)


def saliency(images, model="sdsp"):
  """Saliency maps [B, H, W] in [0, 1] of images [B, H, W, 3] in [0, 1] with a model or spec."""
  if not isinstance(model, SaliencyModel):
    model = load(model)
  return model(images)


def validate_maps(maps, shape=None, name="saliency map"):
  """Checks caller-supplied saliency maps; returns them as a float32 numpy array.

  Args:
    maps: [B, H, W] or [H, W] array-like of values in [0, 1].
    shape: the expected shape: [B, H, W] or [H, W], or an image batch shape [B, H, W, 3] (its
      first three sides are used); None skips the size check.
    name: how error messages call the maps.

  Returns:
    float32 array of maps' shape, clipped to [0, 1] (values within RANGE_TOLERANCE outside).

  Raises:
    UserError: wrong rank or size, NaN or infinite values, values outside [0, 1].
  """
  try:
    x = np.asarray(maps)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"{name}: not an array ({e})") from e
  if x.dtype == bool:
    x = x.astype(np.float32)
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise UserError(f"{name}: expected numbers, got dtype {x.dtype}")
  if x.ndim not in (2, 3):
    raise UserError(f"{name}: expected [B, H, W] or [H, W], got shape {tuple(x.shape)}")
  if shape is not None:
    expected = tuple(int(s) for s in shape)
    if len(expected) == 4:
      expected = expected[:3]
    if x.shape != expected:
      raise UserError(f"{name}: shape {tuple(x.shape)} does not match the expected "
                      f"{expected} (one map per image, same height and width)")
  if x.size == 0:
    raise UserError(f"{name}: empty (shape {tuple(x.shape)})")
  x = x.astype(np.float32)
  if not np.all(np.isfinite(x)):
    raise UserError(f"{name}: has {int(np.sum(~np.isfinite(x)))} NaN or infinite values")
  low, high = float(x.min()), float(x.max())
  if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
    hint = " (8-bit values? divide by 255)" if high > 1.0 + RANGE_TOLERANCE and high <= 255 else ""
    raise UserError(f"{name}: values must be in [0, 1], got [{low:.6g}, {high:.6g}]{hint}")
  return np.clip(x, 0.0, 1.0)


_GRAY_TOLERANCE = 8  # max channel difference (8-bit levels) for an RGB file to count as gray


def read_map(path, size=None):
  """A grayscale saliency / fixation map file (PNG/JPEG, 8 or 16 bit) -> [H, W] float32 in [0, 1].

  1-bit PNGs read as 0/1; 8-bit as value / 255; 16-bit as value / 65535. RGB(A) or palette files
  are accepted when their channels are equal within 8 levels (gray saved as colour); alpha is
  ignored. `size` = (H, W) checks the map's size (UserError if it differs).
  """
  path = os.fspath(path)
  try:
    with pixels.open_image(path) as img:  # the pixel budget, checked from the header
      img.load()
      mode = img.mode
      if mode == "1":
        x = np.asarray(img, dtype=np.float32)
      elif mode in ("L", "LA"):
        x = np.asarray(img.getchannel(0), dtype=np.float32) / 255.0
      elif mode.startswith("I;16"):
        x = np.asarray(img, dtype=np.float32) / 65535.0
      elif mode == "I":
        x = np.asarray(img, dtype=np.float32)
        x = x / (65535.0 if x.max() > 255 or _png_bit_depth(path) == 16 else 255.0)
      elif mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
        rgb = np.asarray(img.convert("RGB"), dtype=np.int32)
        spread = int((rgb.max(axis=-1) - rgb.min(axis=-1)).max())
        if spread > _GRAY_TOLERANCE:
          raise UserError(f"{path}: a saliency map must be grayscale; this {mode} image has "
                          f"colour (channels differ by up to {spread} levels)")
        x = rgb.mean(axis=-1).astype(np.float32) / 255.0
      else:
        raise UserError(f"{path}: unsupported image mode {mode} for a saliency map "
                        "(use 8- or 16-bit grayscale PNG or JPEG)")
  except (UnidentifiedImageError, OSError) as e:
    if isinstance(e, (FileNotFoundError, IsADirectoryError, PermissionError)):
      raise
    raise UserError(f"{path}: cannot read saliency map ({e})") from e
  return validate_maps(x, size, name=path)


def _png_bit_depth(path):
  with open(path, "rb") as f:
    head = f.read(26)
  if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 24:
    return head[24]
  return None


__all__ = ["SaliencyModel", "load", "saliency", "validate_maps", "read_map", "sdsp", "centre_map"]
