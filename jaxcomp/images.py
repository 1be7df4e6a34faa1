"""Reading images to code and writing decoded ones (Pillow), with clear refusals.

Accepted: 8-bit RGB, grayscale (L, and 1-bit), palette (P), RGBA / LA / palette with
transparency (alpha dropped with a warning). Refused: 16-bit and 32-bit integer or float images,
CMYK and other colour spaces, and anything Pillow cannot decode (a truncated file included).
Images larger than the pixel budget (`jaxcomp.pixels`) are refused from their header, before any
pixel is decoded. An EXIF orientation tag is applied as image viewers do (the pixels are rotated
or mirrored upright, `ImageOps.exif_transpose`); of an animated image (GIF, APNG, WebP) only the
first frame is read, with a warning.

This is the one reader of images to code or measure: `jaxcomp compress`, `eval`, `metric`, the
2AFC, saliency and study data (`read_rgb`) and the commands built on them all come here.
"""

import os
import sys
import warnings

import numpy as np
from PIL import Image, ImageOps

from jaxcomp import pixels
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path

_GRAY = {"L", "1"}
_ALPHA = {"RGBA": "RGB", "LA": "L", "PA": "RGB"}
_ACCEPTED = _GRAY | set(_ALPHA) | {"RGB", "P"}


def read(path):
  """(image [H, W, 3] uint8, channels) where channels is 1 for grayscale input and 3 otherwise.

  Grayscale is replicated to three channels for the model. UserError for unsupported images.
  """
  if os.path.isdir(path):
    raise UserError(f"{path} is a directory, not an image file")
  try:
    with pixels.open_image(path) as img:
      if any(";16" in str(tile[3]) for tile in img.tile) or img.mode not in _ACCEPTED:
        raise UserError(f"{path}: unsupported image ({img.mode}, {_bits(img)} bits per sample); "
                        "need 8-bit RGB, grayscale or palette")
      if getattr(img, "n_frames", 1) > 1:
        warnings.warn(f"{path}: animated image ({img.n_frames} frames); only the first frame is "
                      "used", stacklevel=2)
      img.load()
      upright = ImageOps.exif_transpose(img)
      return _to_rgb(img if upright is None else upright, path)
  except (FileNotFoundError, IsADirectoryError, PermissionError):
    raise
  except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
    raise UserError(f"cannot read {path} as an image: {e}") from None


def read_rgb(path):
  """8-bit image file -> [H, W, 3] uint8 RGB (`read` without the channel count)."""
  return read(path)[0]


def _bits(img):
  if any(";16" in str(tile[3]) for tile in img.tile) or img.mode.startswith("I;16"):
    return 16
  return {"I": 32, "F": 32, "1": 1}.get(img.mode, 8)


def _to_rgb(img, path):
  """Loaded image in an accepted mode -> (uint8 [H, W, 3], channels)."""
  if img.mode == "P":
    img = img.convert("RGBA" if "transparency" in img.info else "RGB")
  if img.mode in _ALPHA:
    warnings.warn(f"{path}: alpha channel ignored (dropped)", stacklevel=3)
    img = img.convert(_ALPHA[img.mode])
  if img.mode in _GRAY:
    gray = np.asarray(img.convert("L"), np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1), 1
  return np.asarray(img.convert("RGB"), np.uint8), 3


def check_extension(path):
  """UserError unless `path`'s extension names an image format Pillow writes (e.g. .png)."""
  if os.path.splitext(path)[1].lower() not in Image.registered_extensions():
    raise UserError(f"{path}: unknown image file extension (use e.g. .png)")


def write(path, image):
  """Writes an [H, W] or [H, W, 3] uint8 image atomically; the format follows the extension.

  UserError naming `path` (never the temporary file) if it cannot be written.
  """
  check_extension(path)
  img = Image.fromarray(np.ascontiguousarray(image))
  ext = os.path.splitext(path)[1]
  with atomic_path(path) as tmp:
    try:
      img.save(tmp, format=Image.registered_extensions()[ext.lower()])
    except OSError as e:
      raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    except (ValueError, KeyError) as e:
      raise UserError(f"cannot write {path}: {e}") from None


def show_warnings():
  """Prints Python warnings as one line `warning: ...` on stderr (for the command line)."""
  warnings.showwarning = (
      lambda message, *args, **kwargs: sys.stderr.write(f"warning: {message}\n"))
