"""`jaxcomp quickstart`: the zoo against JPEG and WebP, then a model trained here in minutes.

1. The bundled zoo (`jaxcomp zoo list`): every model compresses and decompresses a held-out photo
   (scikit-image's `coffee`, or the first image in sorted order of --images) with real `.jxc`
   files; a table gives each one's bpp and PSNR next to JPEG 4:2:0 and WebP at the closest file
   size.
2. Trains `configs/zoo.py:quickstart` (`config_lib.quickstart`: N=48, M=64 on 128x128 crops,
   --steps, default 1200) on the other photos in WORKDIR, exports WORKDIR/model, codes the same
   photo to WORKDIR/test.jxc and WORKDIR/test_decoded.png and reports it beside the zoo.
A few minutes on a laptop CPU; `--zoo-only` skips the training.
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
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps (default: the quickstart recipe's 1200)")
  parser.add_argument("--zoo-only", action="store_true",
                      help="only compare the bundled zoo models with JPEG and WebP (no training)")


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


def anchor_at_size(image, target_bytes, fmt="JPEG"):
  """(bytes, decoded) of the Pillow `fmt` file (quality 1..95) whose size is closest to
  target_bytes: JPEG is Pillow's default 4:2:0, WEBP lossy WebP."""
  best = None
  lo, hi = 1, 95
  while lo <= hi:
    quality = (lo + hi) // 2
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt, quality=quality)
    size = buffer.tell()
    if best is None or abs(size - target_bytes) < abs(best[0] - target_bytes):
      best = (size, np.asarray(Image.open(buffer).convert("RGB")))
    if size < target_bytes:
      lo = quality + 1
    else:
      hi = quality - 1
  return best


def code_image(model, image, channels, bitstream_path, decoded_path):
  """Compresses `image` [H, W, 3] uint8 with a model (directory or zoo:NAME) to a real .jxc file,
  decodes that file; returns (file bytes, decoded [H, W, 3] uint8)."""
  from jaxcomp.coding import compression as codec  # pylint: disable=g-import-not-at-top
  from jaxcomp import images  # pylint: disable=g-import-not-at-top

  cm = codec.CodingModel(model)
  data = codec.compress(cm, image[None], [channels])[0]
  with open(bitstream_path, "wb") as f:
    f.write(data)
  with open(bitstream_path, "rb") as f:
    decoded = codec.decompress(cm, f.read(), where=bitstream_path)
  if decoded_path:
    images.write(decoded_path, decoded)
  return len(data), decoded


def comparison_rows(name, original, size, decoded):
  """Table rows: the learned model's point and JPEG 4:2:0 / WebP at the closest file size."""
  pixels = original.shape[0] * original.shape[1]
  rows = [(name, 8 * size / pixels, psnr(original, decoded))]
  for label, fmt in (("  JPEG 4:2:0", "JPEG"), ("  WebP", "WEBP")):
    anchor_size, anchor_decoded = anchor_at_size(original, size, fmt)
    rows.append((label, 8 * anchor_size / pixels, psnr(original, anchor_decoded)))
  return rows


def print_table(rows):
  print(f"  {'codec':<38} {'bpp':>6} {'PSNR dB':>8}")
  for label, bpp, quality in rows:
    print(f"  {label:<38} {bpp:>6.3f} {quality:>8.2f}")


def run(args):
  from jaxcomp import zoo  # pylint: disable=g-import-not-at-top
  from jaxcomp import images  # pylint: disable=g-import-not-at-top
  from jaxcomp.loop import checkpoint as loop_checkpoint  # pylint: disable=g-import-not-at-top
  from jaxcomp.train import checkpoint, config_lib, train  # pylint: disable=g-import-not-at-top

  flags.FLAGS.mark_as_parsed()  # absl logging outside app.run (no "before flag parsing" note)
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  loop_checkpoint.quiet_library_logs()
  if args.steps is not None and args.steps < 1:
    raise UserError(f"--steps must be at least 1 (got {args.steps})")
  workdir = os.path.abspath(args.workdir)
  os.makedirs(workdir, exist_ok=True)
  photos = os.path.join(workdir, "photos")
  if args.images:
    train_dir, test_image = _user_photos(args.images, photos)
  else:
    train_dir, test_image = _skimage_photos(photos)
  original, channels = images.read(test_image)
  title = (f"{os.path.basename(test_image)} ({original.shape[1]}x{original.shape[0]}), held out "
           "from every training")

  zoo_rows = []
  for e in zoo.entries():
    spec = zoo.PREFIX + e["name"]
    size, decoded = code_image(spec, original, channels,
                               os.path.join(workdir, f"zoo_{e['name']}.jxc"), None)
    zoo_rows += comparison_rows(f"{spec} (N={e['N']}, M={e['M']})", original, size, decoded)
  if zoo_rows:
    print(f"\nthe model zoo on {title}:")
    print_table(zoo_rows)
    print("  (JPEG and WebP at the file size closest to each model's; docs/zoo.md has the RD "
          "curves on ten photos)", flush=True)
  if args.zoo_only:
    return 0

  config = config_lib.quickstart(config_lib.base("bmshj2018-hyperprior", 3))
  config.data.dir = train_dir
  if args.steps is not None:
    config.num_train_steps = args.steps
  print(f"\ntraining configs/zoo.py:quickstart (N={config.N}, M={config.M}, "
        f"{config.patch_size}x{config.patch_size} crops) for {config.num_train_steps} steps on "
        f"{train_dir} (workdir {workdir})", flush=True)
  train.train_and_evaluate(config, os.path.join(workdir, "run"))

  model_dir = os.path.join(workdir, "model")
  checkpoint.export_model(os.path.join(workdir, "run"), model_dir)
  bitstream = os.path.join(workdir, "test.jxc")
  decoded_path = os.path.join(workdir, "test_decoded.png")
  size, decoded = code_image(model_dir, original, channels, bitstream, decoded_path)
  print(f"\n{title}:")
  mine = comparison_rows(f"trained here ({config.num_train_steps} steps)", original, size, decoded)
  print_table(mine + [row for row in zoo_rows if not row[0].startswith(" ")])
  print(f"  ({bitstream}, {decoded_path})")
  print(f"exported model: {model_dir}. The zoo models trained for 1.5 hours on 16 photos (docs/zoo.md); "
        "a few minutes of training is where this one stands. Train longer with --steps, or a real config: "
        "python -m jaxcomp.train --config=configs/zoo.py:base ...")
  return 0
