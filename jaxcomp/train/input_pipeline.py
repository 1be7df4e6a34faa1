"""Training input: random crops from an image folder or a TFDS dataset, deterministic and resumable.

The data is a random-access source of RGB images (`ImageFolder`, or `TfdsSource` for
`tfds.data_source`, which is TF-free). Example g of the run (g = 0, 1, ...; the global example
index) is a crop of image perm_e[g mod n] with perm_e = a permutation drawn from (seed, e),
e = g div n the epoch; the crop offset and flip come from a numpy generator seeded with
(seed, g). A global batch of B images at step s holds g = s*B .. s*B + B - 1; host h of H
reads its B/H slice of it, and splits that over its local devices. So the stream depends only on
the seed and the global batch, never on the number of hosts or devices, and the whole iterator
state is the next global example index (saved with every checkpoint).
"""

import collections
import concurrent.futures
import functools
import os
import threading

import jax
import numpy as np
from absl import logging
from PIL import Image

from jaxcomp.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


# Modes a training image may have (after Pillow's open); others (CMYK, float, 32-bit) are skipped
# with a warning, as `jaxcomp compress` refuses them.
TRAINING_MODES = ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "I;16", "I;16B", "I;16L", "I;16N",
                  "I")


def _as_rgb(image):
  """PIL image or [H, W] / [H, W, 1|3|4] uint8 array -> [H, W, 3] uint8.

  16-bit grayscale (Pillow's I;16 modes, or I holding 16-bit values) keeps its 8 high bits
  (round(v / 257)); Pillow's own convert('RGB') would clip it to white.
  """
  if isinstance(image, Image.Image):
    if image.mode.startswith("I"):
      wide = np.asarray(image).astype(np.float64)
      image = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
    else:
      image = np.asarray(image.convert("RGB"))
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


class ImageFolder:
  """PNG/JPEG files under a folder (recursive, sorted), at least `min_size` on both sides.

  Image sizes are read from the file headers when the source is built: smaller images are skipped
  with a count, unreadable files and unsupported modes (CMYK, float) with a warning each. A file
  that passes the header scan but cannot be decoded (e.g. truncated) is skipped with a warning
  when it is first drawn (`__getitem__` gives None; `CropStream` moves on to the next image).
  UserError if nothing usable remains.
  """

  def __init__(self, root, min_size, cache_images=0):
    if not root:
      raise UserError("no training data: set --config.data.dir to an image folder")
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
      raise UserError(f"data directory not found: {root}")
    paths = sorted(
        os.path.join(d, f) for d, _, files in os.walk(root, followlinks=True) for f in files
        if f.lower().endswith(IMAGE_EXTENSIONS))
    self.paths, small = [], 0
    for path in paths:
      try:
        with Image.open(path) as image:
          width, height = image.size
          mode = image.mode
      except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        logging.warning("skipping unreadable image %s: %s", path, e)
        continue
      if mode not in TRAINING_MODES:
        logging.warning("skipping %s: unsupported image mode %s (use 8-bit RGB or grayscale)",
                        path, mode)
        continue
      if min(width, height) < min_size:
        small += 1
      else:
        self.paths.append(path)
    if small:
      logging.info("skipped %d of %d images smaller than the %dx%d crop in %s", small, len(paths),
                   min_size, min_size, root)
    self.skipped_small = small
    if not self.paths:
      raise UserError(f"no usable images in {root}: {len(paths)} PNG/JPEG files, {small} of them "
                      f"smaller than {min_size}x{min_size}")
    self._unreadable = set()
    if cache_images:
      self._decode = functools.lru_cache(maxsize=cache_images)(self._decode)
    self.name = root

  def __len__(self):
    return len(self.paths)

  def _decode(self, index):
    with Image.open(self.paths[index]) as image:
      return _as_rgb(image)

  def __getitem__(self, index):
    """[H, W, 3] uint8, or None for a file that cannot be decoded (warned about once)."""
    try:
      return self._decode(index)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
      path = self.paths[index]
      if path not in self._unreadable:
        self._unreadable.add(path)
        logging.warning("skipping unreadable image %s: %s", path, e)
      return None


class TfdsSource:
  """Images of a TFDS dataset split through `tfds.data_source` (random access, no TensorFlow).

  The dataset must already be prepared (in array_record format) in `data_dir`. Images smaller than
  the crop cannot be known without decoding them all, so they are skipped when drawn: the example
  moves on to the next image of the epoch's permutation, and the skips are counted.
  """

  def __init__(self, name, split, data_dir, image_key="image"):
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise UserError("TFDS data needs tensorflow-datasets: pip install 'jaxcomp[tfds]'") from None
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir or None,
                                      download=False)
    except Exception as e:  # TFDS raises many types (not found, not prepared, bad split)
      raise UserError(f"cannot open TFDS dataset {name!r} split {split!r}: {e}") from None
    if not len(self._source):
      raise UserError(f"TFDS dataset {name!r} split {split!r} is empty")
    self._key = image_key
    self.skipped_small = 0
    self.name = f"tfds:{name}/{split}"

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    return _as_rgb(self._source[int(index)][self._key])


def create_source(data_config, min_size):
  """The source a `config.data` names: `tfds_name` if set, else the image folder `dir`."""
  if data_config.get("tfds_name"):
    return TfdsSource(data_config.tfds_name, data_config.get("tfds_split", "train"),
                      data_config.get("tfds_data_dir", ""))
  return ImageFolder(data_config.dir, min_size, data_config.get("cache_images", 0))


class SaliencySource:
  """A source whose images carry their saliency as two more channels, [H, W, 5] uint8.

  The map is computed on the whole image (as the encoder sees it when compressing that image), so
  a crop's saliency is the crop of the image's map, not the map of the crop. Channel 4 holds
  round(255 S), channel 5 round(255 mean(S)) everywhere (the whole image's mean, which normalises
  the saliency weights of its crops); `random_crop` crops and flips them with the image. Maps of
  up to `cache` images are kept (least recently used dropped): a map costs more than decoding.

  Args:
    source: the image source (`ImageFolder`, `TfdsSource`).
    saliency: a `jaxcomp.saliency.SaliencyModel`.
    cache: number of maps kept in memory.
  """

  def __init__(self, source, saliency, cache=256):
    self._source, self._cache_size = source, cache
    self._apply = jax.jit(saliency.apply)
    self._params = saliency.params
    self._maps = collections.OrderedDict()
    self._lock = threading.Lock()

  def __getattr__(self, name):  # name, skipped_small, ... of the wrapped source
    return getattr(self._source, name)

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    image = self._source[index]
    if image is None:  # undecodable: skipped by CropStream
      return None
    with self._lock:
      s = self._maps.get(int(index))
      if s is not None:
        self._maps.move_to_end(int(index))
    if s is None:
      x = image[None].astype(np.float32) / 255.0
      s = np.clip(np.asarray(self._apply(self._params, x))[0], 0.0, 1.0)
      s = np.stack([s, np.full_like(s, s.mean())], axis=-1)
      s = np.round(s * 255.0).astype(np.uint8)
      with self._lock:
        self._maps[int(index)] = s
        while len(self._maps) > self._cache_size:
          self._maps.popitem(last=False)
    return np.concatenate([image, s], axis=-1)


def permutation(seed, epoch, n):
  """The order of the n images in an epoch."""
  return np.random.default_rng([seed, epoch]).permutation(n)


def random_crop(image, size, rng, flip):
  """[H, W, C] uint8 -> [size, size, C] float32 in [0, 1], offset (and flip) drawn from rng."""
  top = rng.integers(0, image.shape[0] - size + 1)
  left = rng.integers(0, image.shape[1] - size + 1)
  crop = image[top:top + size, left:left + size]
  if flip and rng.integers(2):
    crop = crop[:, ::-1]
  return crop.astype(np.float32) / 255.0


class CropStream:
  """Batches of random crops, deterministic in (seed, global example index).

  Attributes:
    source: random-access images (`ImageFolder`, `TfdsSource`).
    size: crop side in pixels.
    seed: data seed.
    flip: random horizontal flips.
  """

  def __init__(self, source, size, seed, flip=True):
    self.source, self.size, self.seed, self.flip = source, size, seed, flip
    self._permutations = {}

  def _permutation(self, epoch):
    if epoch not in self._permutations:
      self._permutations = {epoch: permutation(self.seed, epoch, len(self.source))}
    return self._permutations[epoch]

  def example(self, g):
    """Crop number g: [size, size, 3] float32 in [0, 1]."""
    n = len(self.source)
    epoch, position = divmod(g, n)
    order = self._permutation(epoch)
    for offset in range(n):
      image = self.source[order[(position + offset) % n]]
      if image is None:  # undecodable (warned about by the source)
        continue
      if min(image.shape[:2]) >= self.size:
        return random_crop(image, self.size, np.random.default_rng([self.seed, g]), self.flip)
      self.source.skipped_small += 1
    raise UserError(f"no readable image in {self.source.name} is at least "
                    f"{self.size}x{self.size}")

  def batch(self, first, count, pool=None):
    """Crops first .. first + count - 1 stacked: [count, size, size, 3]."""
    indices = range(first, first + count)
    crops = pool.map(self.example, indices) if pool else map(self.example, indices)
    return np.stack(list(crops))


def host_batches(stream, global_batch, first_example, process_index, process_count,
                 local_devices, prefetch=2, threads=4):
  """Yields (first_index [D], images [D, B/(H*D), size, size, 3]) for this host, step after step.

  Batch k covers global examples first_example + k*B .. first_example + (k+1)*B - 1 (B =
  global_batch); this host gets the slice of process_index, and first_index[d] is the global index
  of device d's first image. Resuming is restarting at the saved next example. Batches are made
  `prefetch` steps ahead on a thread pool (PIL decodes without the GIL).
  """
  if global_batch % (process_count * local_devices):
    raise UserError(f"batch_size {global_batch} is not divisible by {process_count} hosts x "
                    f"{local_devices} local devices")
  per_host = global_batch // process_count
  per_device = per_host // local_devices

  def make(k):
    first = first_example + k * global_batch + process_index * per_host
    images = stream.batch(first, per_host, pool)
    firsts = first + per_device * np.arange(local_devices)
    return firsts, images.reshape((local_devices, per_device) + images.shape[1:])

  with concurrent.futures.ThreadPoolExecutor(threads) as pool, \
       concurrent.futures.ThreadPoolExecutor(1) as ahead:
    pending = [ahead.submit(make, k) for k in range(prefetch)]
    k = prefetch
    while True:
      result = pending.pop(0).result()
      pending.append(ahead.submit(make, k))
      k += 1
      yield result
