"""Saliency datasets in the common folder-pair layout (SALICON, MIT1003, CAT2000, ... exported).

    IMAGES/  name.jpg ...       RGB photos (PNG or JPEG, 8 bit)
    MAPS/    name.png ...       ground-truth saliency maps, same stem, grayscale in [0, 1] (8 or
                                16 bit; 0..255 or 0..65535 scaled to [0, 1])
    FIXATIONS/ name.png ...     optional binary fixation maps (value > 0.5 = fixated pixel)

Files pair by stem (file name without extension; .png/.jpg/.jpeg, any case); other files and
hidden files are ignored. Errors (UserError, one line): a folder without images, a stem that
appears twice in a folder, an image without a map (or fixation map when FIXATIONS is given) or a
map without an image, a map whose size differs from its image, maps with NaN or values outside
[0, 1], an all-zero fixation map.

`load_resized` reads a whole dataset at S x S for training: images with PIL's antialiased
bilinear resize, maps as float with the same filter, fixations by moving each fixated pixel
(y, x) to (floor(y S / H), floor(x S / W)) so none is lost or blurred. Evaluation uses each
sample at its own size (`load_sample`), as the MIT benchmark compares at the map's resolution.
"""

import dataclasses
import os
from typing import Optional

import numpy as np
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.images import read_rgb
from jaxcomp.saliency import read_map

EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class Sample:
  """One image and its map files (fixations None when the dataset has none)."""

  stem: str
  image: str
  map: str
  fixations: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A dataset in memory at S x S: images [N, S, S, 3] uint8, maps [N, S, S] float32 in [0, 1],
  fixations [N, S, S] bool or None."""

  stems: tuple
  images: np.ndarray
  maps: np.ndarray
  fixations: Optional[np.ndarray]

  def __len__(self):
    return len(self.stems)


def _by_stem(folder, what):
  if not os.path.isdir(folder):
    raise UserError(f"{what} folder {folder} does not exist")
  found = {}
  for name in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(name)
    if name.startswith(".") or ext.lower() not in EXTENSIONS:
      continue
    if not os.path.isfile(os.path.join(folder, name)):
      continue
    if stem in found:
      raise UserError(f"{folder}: '{stem}' appears twice ({os.path.basename(found[stem])} and "
                      f"{name}); keep one file per stem")
    found[stem] = os.path.join(folder, name)
  return found


def _few(names):
  names = sorted(names)
  return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def pair_files(images_dir, maps_dir, fixations_dir=None):
  """[Sample] of the folders, sorted by stem (UserError: empty dataset, unpaired files)."""
  images = _by_stem(images_dir, "images")
  if not images:
    raise UserError(f"empty saliency dataset: no PNG/JPEG images in {images_dir}")
  folders = [("maps", maps_dir, _by_stem(maps_dir, "maps"))]
  if fixations_dir is not None:
    folders.append(("fixation maps", fixations_dir, _by_stem(fixations_dir, "fixations")))
  for what, folder, files in folders:
    missing = set(images) - set(files)
    if missing:
      raise UserError(f"{len(missing)} image(s) in {images_dir} have no {what} in {folder}: "
                      f"{_few(missing)}")
    extra = set(files) - set(images)
    if extra:
      raise UserError(f"{len(extra)} file(s) in {folder} have no image in {images_dir}: "
                      f"{_few(extra)}")
  fix = folders[1][2] if fixations_dir is not None else {}
  maps = folders[0][2]
  return [Sample(stem, images[stem], maps[stem], fix.get(stem)) for stem in sorted(images)]


def load_sample(sample):
  """(image [H, W, 3] uint8, map [H, W] float32, fixations [H, W] bool or None) of one sample."""
  image = read_rgb(sample.image)
  size = image.shape[:2]
  smap = read_map(sample.map)
  if smap.shape != size:
    raise UserError(f"{sample.map}: map is {smap.shape[1]}x{smap.shape[0]} but its image "
                    f"{sample.image} is {size[1]}x{size[0]}")
  fixations = None
  if sample.fixations is not None:
    fmap = read_map(sample.fixations)
    if fmap.shape != size:
      raise UserError(f"{sample.fixations}: fixation map is {fmap.shape[1]}x{fmap.shape[0]} but "
                      f"its image {sample.image} is {size[1]}x{size[0]}")
    fixations = fmap > 0.5
    if not fixations.any():
      raise UserError(f"{sample.fixations}: no fixated pixel (values > 0.5)")
  return image, smap, fixations


def resize_image(image, size):
  """[H, W, 3] uint8 -> [S, S, 3] uint8 (PIL bilinear, antialiased when shrinking)."""
  if image.shape[:2] == (size, size):
    return image
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def resize_map(smap, size):
  """[H, W] float32 in [0, 1] -> [S, S] float32 in [0, 1] (PIL bilinear on floats)."""
  if smap.shape == (size, size):
    return smap.astype(np.float32)
  out = np.asarray(Image.fromarray(smap.astype(np.float32), "F").resize((size, size),
                                                                         Image.BILINEAR))
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def resize_fixations(fixations, size):
  """[H, W] bool -> [S, S] bool, each fixated pixel moved to (floor(y S/H), floor(x S/W))."""
  h, w = fixations.shape
  ys, xs = np.nonzero(fixations)
  out = np.zeros((size, size), bool)
  out[(ys * size) // h, (xs * size) // w] = True
  return out


def load_resized(samples, size, log=None):
  """All samples at size x size as a Dataset (see the module docstring)."""
  if not samples:
    raise UserError("empty saliency dataset")
  images, maps, fixations = [], [], []
  for i, sample in enumerate(samples):
    image, smap, fix = load_sample(sample)
    images.append(resize_image(image, size))
    maps.append(resize_map(smap, size))
    if fix is not None:
      fixations.append(resize_fixations(fix, size))
    if log and (i + 1) % 500 == 0:
      log(f"read {i + 1}/{len(samples)} samples")
  return Dataset(tuple(s.stem for s in samples), np.stack(images), np.stack(maps),
                 np.stack(fixations) if fixations else None)
