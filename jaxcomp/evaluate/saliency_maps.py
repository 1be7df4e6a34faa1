"""The saliency maps that define each image's salient region in `jaxcomp eval --saliency SPEC`.

SPEC is one of:
  sdsp, centre,     a saliency model (`jaxcomp.saliency.load`) run on the original image;
  learned:DIR, DIR  (DIR: a learned model's weights folder)
  DIR (maps)        a folder of ground-truth maps, one per image, named after the image's stem
                    (kodim01.png -> kodim01.png / kodim01.npy / ...). A folder holding a file
                    named after any of the images is taken as a maps folder.

Maps files: grayscale PNG / JPEG, 8 or 16 bit (`jaxcomp.saliency.read_map`), or .npy float
arrays [H, W]; values must be finite and within [0, 1], the size that of the image
(`jaxcomp.saliency.validate_maps`). Every map is checked before anything is evaluated; a missing,
unreadable, wrong-size, out-of-range or NaN map is a `UserError` (one line, exit status 2,
nothing written).
"""

import os

import jax
import numpy as np
from PIL import Image

from jaxcomp import saliency as saliency_models
from jaxcomp.errors import UserError

NUMPY_EXTENSION = ".npy"


class Source:
  """Saliency map of one original image: `source(name, image)` -> [H, W] float32 in [0, 1].

  Args:
    description: for messages and the results' description, e.g. 'sdsp'.
    compute: (name, image [H, W, 3] uint8) -> [H, W] map.
  """

  def __init__(self, description, compute):
    self.description = description
    self._compute = compute

  def __call__(self, name, image):
    """UserError unless the map is [H, W], finite and within [0, 1] (`validate_maps`)."""
    return saliency_models.validate_maps(self._compute(name, image), image.shape[:2],
                                         name=f"saliency map of {name} ({self.description})")


def model_source(model):
  """`Source` running a `jaxcomp.saliency.SaliencyModel` (jitted) on each original image."""

  apply = jax.jit(model.apply)

  def compute(name, image):
    del name
    return np.asarray(apply(model.params, image[None].astype(np.float32) / 255.0))[0]
  return Source(model.name, compute)


def _map_extensions():
  return set(Image.registered_extensions()) | {NUMPY_EXTENSION}


def _stem(path):
  return os.path.splitext(os.path.basename(path))[0]


def _maps_in(folder, image_paths):
  """{image name: map path} of a maps folder; {} if no file is named after any image."""
  extensions = _map_extensions()
  by_stem = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if not name.startswith(".") and os.path.isfile(path) and (
        os.path.splitext(name)[1].lower() in extensions):
      by_stem.setdefault(_stem(name), []).append(path)
  images = {os.path.basename(p): _stem(p) for p in image_paths}
  if not any(stem in by_stem for stem in images.values()):
    return {}
  maps = {}
  for image, stem in images.items():
    found = by_stem.get(stem, [])
    if not found:
      raise UserError(f"--saliency {folder}: no saliency map for {image} (expected {stem}.png, "
                      f"{stem}.npy, ...)")
    if len(found) > 1:
      raise UserError(f"--saliency {folder}: several maps for {image}: "
                      f"{', '.join(os.path.basename(p) for p in found)}")
    maps[image] = found[0]
  return maps


def read_map(path, size=None):
  """A maps file -> [H, W] float32 in [0, 1].

  Args:
    path: a grayscale image (`jaxcomp.saliency.read_map`) or a .npy float array [H, W].
    size: the expected (H, W), or None.

  Raises:
    UserError: unreadable, another size, values outside [0, 1], NaN or infinite values.
  """
  if not path.lower().endswith(NUMPY_EXTENSION):
    return saliency_models.read_map(path, size)
  try:
    array = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: cannot read saliency map ({e})") from None
  if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
    raise UserError(f"{path}: a saliency map must be a float array [H, W], got {array.dtype} "
                    f"{array.shape}")
  return saliency_models.validate_maps(array, size, name=path)


def _image_size(path):
  """(H, W) from an image's header, or None if it cannot be read (it fails later, per image)."""
  try:
    with Image.open(path) as img:
      return img.size[1], img.size[0]
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
    return None


def maps_source(folder, maps, image_paths):
  """`Source` of a maps folder, every map checked now against its image's size."""
  sizes = {os.path.basename(p): _image_size(p) for p in image_paths}
  for image, path in maps.items():
    read_map(path, sizes[image])  # unreadable images are skipped now and fail later

  def compute(name, image):
    return read_map(maps[name], image.shape[:2])
  return Source(f"maps in {folder}", compute)


def resolve(spec, image_paths):
  """`Source` for a --saliency value; UserError for anything unusable (see the module docstring).

  Args:
    spec: a saliency model spec or a folder of maps.
    image_paths: [I] the images to evaluate (their maps are checked here).
  """
  if os.path.isdir(spec):
    maps = _maps_in(spec, image_paths)
    if maps:
      return maps_source(spec, maps, image_paths)
  elif os.path.exists(spec):
    raise UserError(f"--saliency {spec}: not a saliency model nor a folder (of learned weights "
                    "or of maps)")
  return model_source(saliency_models.load(spec))
