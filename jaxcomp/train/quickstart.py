"""`jaxcomp quickstart`: train the tiny config, export, compress + decompress, compare with JPEG.

On a small photo set that scikit-image ships (or `--images DIR`): trains
`configs/hyperprior.py:tiny` for `--steps` steps in WORKDIR, exports WORKDIR/model, compresses
the held-out image (the first image in sorted order of --images, or scikit-image's `coffee`) to
WORKDIR/test.jxc, decompresses it to WORKDIR/test_decoded.png, and prints its bpp and PSNR next
to JPEG's at the closest file size.
Minutes on a laptop CPU; the numbers show the pipeline working, not a trained codec's quality.
"""

import io
import os
import shutil

import numpy as np
from absl import flags, logging
from PIL import Image

from jaxcomp.errors import UserError

# Colour photographs bundled in scikit-image's package data (no download).
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                  "hubble_deep_field.jpg", "ihc.png")
SKIMAGE_TEST = "coffee.png"


def add_arguments(parser):
  parser.add_argument("--images", help="folder of training photos (PNG/JPEG) instead of "
                      "scikit-image's; its first image (sorted) is held out for the test")
  parser.add_argument("--workdir", default="jaxcomp-quickstart",
                      help="run directory (default: ./jaxcomp-quickstart; resumed if present)")
  parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")


def _skimage_photos(folder):
  """Copies scikit-image's bundled photos into folder/train; returns the test image's path."""
  try:
    import skimage.data  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("no photos: pip install scikit-image, or pass --images DIR") from None
  source = os.path.dirname(skimage.data.__file__)
  os.makedirs(os.path.join(folder, "train"), exist_ok=True)
  for name in SKIMAGE_PHOTOS:
    shutil.copy(os.path.join(source, name), os.path.join(folder, "train", name))
  test = os.path.join(folder, SKIMAGE_TEST)
  shutil.copy(os.path.join(source, SKIMAGE_TEST), test)
  return os.path.join(folder, "train"), test


def _user_photos(images, folder):
  """Splits --images into folder/train (links) and the held-out first image."""
  from jaxcomp.train import input_pipeline  # pylint: disable=g-import-not-at-top

  paths = input_pipeline.ImageFolder(images, min_size=64).paths
  if len(paths) < 2:
    raise UserError(f"{images}: need at least 2 usable images (one is held out for the test)")
  train_dir = os.path.join(folder, "train")
  shutil.rmtree(train_dir, ignore_errors=True)
  os.makedirs(train_dir)
  for i, path in enumerate(paths[1:]):
    os.symlink(os.path.abspath(path), os.path.join(train_dir, f"{i:05d}_{os.path.basename(path)}"))
  return train_dir, paths[0]


def psnr(a, b):
  """PSNR in dB of two uint8 images."""
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def jpeg_at_size(image, target_bytes):
  """(bytes, decoded) of the JPEG (quality 1..95) whose size is closest to target_bytes."""
  best = None
  lo, hi = 1, 95
  while lo <= hi:
    quality = (lo + hi) // 2
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    size = buffer.tell()
    if best is None or abs(size - target_bytes) < abs(best[0] - target_bytes):
      best = (size, np.asarray(Image.open(buffer).convert("RGB")))
    if size < target_bytes:
      lo = quality + 1
    else:
      hi = quality - 1
  return best


def run(args):
  from jaxcomp import cli  # pylint: disable=g-import-not-at-top
  from jaxcomp.train import checkpoint, config_lib, train  # pylint: disable=g-import-not-at-top

  flags.FLAGS.mark_as_parsed()  # absl logging outside app.run (no "before flag parsing" note)
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  train.quiet_library_logs()
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  photos = os.path.join(workdir, "photos")
  if args.images:
    train_dir, test_image = _user_photos(args.images, photos)
  else:
    train_dir, test_image = _skimage_photos(photos)

  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.data.dir = train_dir
  config.num_train_steps = args.steps
  config.eval.every_steps = 0  # the comparison below is the evaluation
  print(f"training configs/hyperprior.py:tiny for {args.steps} steps on {train_dir} "
        f"(workdir {workdir})", flush=True)
  train.train_and_evaluate(config, os.path.join(workdir, "run"))

  model_dir = os.path.join(workdir, "model")
  checkpoint.export_model(os.path.join(workdir, "run"), model_dir)
  bitstream = os.path.join(workdir, "test.jxc")
  decoded_path = os.path.join(workdir, "test_decoded.png")
  for command in (["compress", "--model", model_dir, test_image, bitstream],
                  ["decompress", "--model", model_dir, bitstream, decoded_path]):
    if cli.main(command) != 0:
      raise UserError(f"jaxcomp {command[0]} failed")

  with Image.open(test_image) as image:
    original = np.asarray(image.convert("RGB"))
  with Image.open(decoded_path) as image:
    decoded = np.asarray(image.convert("RGB"))
  pixels = original.shape[0] * original.shape[1]
  size = os.path.getsize(bitstream)
  jpeg_size, jpeg_decoded = jpeg_at_size(original, size)
  print(f"\n{os.path.basename(test_image)} ({original.shape[1]}x{original.shape[0]}), "
        f"held out from training:")
  print(f"  jaxcomp tiny  {8 * size / pixels:.3f} bpp  PSNR {psnr(original, decoded):.2f} dB  "
        f"({bitstream})")
  print(f"  JPEG          {8 * jpeg_size / pixels:.3f} bpp  "
        f"PSNR {psnr(original, jpeg_decoded):.2f} dB  (closest size)")
  print(f"exported model: {model_dir}; train longer with --steps, or a real config: "
        f"python -m jaxcomp.train --config=configs/hyperprior.py:q3 ...")
  return 0
