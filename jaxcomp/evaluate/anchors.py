"""Classical anchor codecs by name: JPEG (4:2:0, 4:4:4) and WebP through Pillow.

An anchor writes a real file at one quality setting and reads it back; `rd_eval` measures the
file size and the decoded pixels, exactly as for a learned model. A quality sweep gives the
anchor's rate-distortion curve.

More codecs plug in by name:

    anchors.register(anchors.Anchor(
        name="avif", description="AVIF via pillow-avif", extension=".avif",
        qualities=(10, 30, 50, 70, 90), save=lambda image, path, q: ...,
        load=anchors.pillow_load))

`resolve("jpeg,webp")` expands the aliases ('jpeg' = both chroma subsamplings).
"""

import dataclasses
from typing import Callable, Tuple

import numpy as np
import PIL
from PIL import Image, features

from jaxcomp.errors import UserError
from jaxcomp.registry import Registry

JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
WEBP_QUALITIES = (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


@dataclasses.dataclass(frozen=True)
class Anchor:
  """A classical codec swept over a quality parameter.

  Attributes:
    name: registry name, also the curve's name in results files (e.g. 'jpeg-420').
    description: free text for the results file (codec, library and version, settings).
    extension: file extension of its files, with the dot.
    qualities: default quality sweep, low to high.
    save: (image [H, W, 3] uint8, path, quality) -> None; writes one compressed file.
    load: path -> [H, W, 3] uint8 decoded image.
  """

  name: str
  description: str
  extension: str
  qualities: Tuple[int, ...]
  save: Callable[[np.ndarray, str, int], None]
  load: Callable[[str], np.ndarray]


ANCHORS = Registry("anchor")
_ALIASES = {"jpeg": ("jpeg-420", "jpeg-444")}


def register(anchor):
  """Adds `anchor` under `anchor.name` (ValueError if the name is taken)."""
  if anchor.name in _ALIASES:
    raise ValueError(f"anchor '{anchor.name}' is registered twice")
  return ANCHORS.register(anchor.name, anchor)


def names():
  """Registered anchor names and aliases, sorted."""
  return sorted(set(ANCHORS) | set(_ALIASES))


def get(name):
  """The `Anchor` called `name` (UserError if unknown; an alias is expanded by `resolve`)."""
  if name not in ANCHORS:
    raise ANCHORS.unknown(name, names())
  return ANCHORS[name]


def resolve(spec):
  """'jpeg,webp' -> [jpeg-420, jpeg-444, webp] `Anchor`s (aliases expanded, no repeats)."""
  result = []
  for name in (n.strip() for n in spec.split(",")):
    if not name:
      continue
    for member in _ALIASES.get(name, (name,)):
      anchor = get(member)
      if anchor not in result:
        result.append(anchor)
  if not result:
    raise UserError("--anchors: give at least one anchor name")
  return result


def pillow_load(path):
  """Decodes any Pillow-readable file to [H, W, 3] uint8 RGB."""
  with Image.open(path) as img:
    return np.asarray(img.convert("RGB"), np.uint8)


def _jpeg_saver(subsampling):
  def save(image, path, quality):
    Image.fromarray(image).save(path, format="JPEG", quality=int(quality), subsampling=subsampling)
  return save


def _webp_save(image, path, quality):
  if not features.check("webp"):
    raise UserError("this Pillow build has no WebP support")
  Image.fromarray(image).save(path, format="WEBP", quality=int(quality))


register(Anchor(name="jpeg-420", extension=".jpg", qualities=JPEG_QUALITIES,
                description=f"JPEG 4:2:0 (Pillow {PIL.__version__}, libjpeg defaults)",
                save=_jpeg_saver("4:2:0"), load=pillow_load))
register(Anchor(name="jpeg-444", extension=".jpg", qualities=JPEG_QUALITIES,
                description=f"JPEG 4:4:4 (Pillow {PIL.__version__}, libjpeg defaults)",
                save=_jpeg_saver("4:4:4"), load=pillow_load))
register(Anchor(name="webp", extension=".webp", qualities=WEBP_QUALITIES,
                description=f"WebP lossy (Pillow {PIL.__version__}, libwebp method 4)",
                save=_webp_save, load=pillow_load))
