"""Writes the golden bitstream files under tests/expected/golden/ (CompressAI's tests/expected).

    python scripts/make_golden_bitstream.py [--out tests/expected/golden]

  model/        a tiny exported bmshj2018-hyperprior (N=8, M=12), built deterministically from
                `tests/coding_models.state_dict` (seeded CompressAI-layout weights, calibrated
                scales) and written by `jaxcomp.codec.export.save`: model.json, params.safetensors,
                tables.npz (deflated, for the repository: same arrays), fingerprint.txt
  image.png     a 70x54 crop of tests/fixtures/coding/kite_96x80.png (a crop of a shared photo;
                not a multiple of 64, so padding and cropping are exercised)
  image.jxc     `jaxcomp compress --model model image.png image.jxc` (constriction backend)
  decoded.png   `jaxcomp decompress --model model image.jxc decoded.png`
  fingerprint.txt  the model's fingerprint (a copy of model/fingerprint.txt, for review diffs)

tests/test_golden_bitstream.py compares against these byte for byte. Regenerate them only for a
deliberate format change (and bump the container or model format version with it): a change
that alters the bytes without a version bump would make old files undecodable or decode them
differently.
"""

import argparse
import os
import shutil
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import coding_models  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxcomp import images  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxcomp.coding import compression  # pylint: disable=g-import-not-at-top,wrong-import-position

ARCH, N, M = "bmshj2018-hyperprior", 8, 12
SOURCE_IMAGE = os.path.join(ROOT, "tests", "fixtures", "coding", "kite_96x80.png")
CROP = (13, 9, 13 + 70, 9 + 54)  # left, upper, right, lower


def _compress_tables(path):
  """Rewrites tables.npz deflated: the same integer arrays (so the same fingerprint, which covers
  the arrays, not the file), 0.8 MB -> a few KB, since the y rows are padded with 2^16."""
  with np.load(path, allow_pickle=False) as f:
    arrays = {k: f[k] for k in f.files}
  with open(path, "wb") as f:
    np.savez_compressed(f, **arrays)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(ROOT, "tests", "expected", "golden"))
  args = parser.parse_args()
  model_dir = os.path.join(args.out, "model")
  os.makedirs(args.out, exist_ok=True)
  if os.path.isdir(model_dir):
    shutil.rmtree(model_dir)
  coding_models.export_model(model_dir, ARCH, N, M)
  _compress_tables(os.path.join(model_dir, "tables.npz"))
  with Image.open(SOURCE_IMAGE) as img:
    img.convert("RGB").crop(CROP).save(os.path.join(args.out, "image.png"))
  image, channels = images.read(os.path.join(args.out, "image.png"))
  cm = compression.CodingModel(model_dir)
  (data,) = compression.compress(cm, image[None], [channels])
  with open(os.path.join(args.out, "image.jxc"), "wb") as f:
    f.write(data)
  decoded = compression.decompress(cm, data, "image.jxc")
  images.write(os.path.join(args.out, "decoded.png"), decoded)
  shutil.copyfile(os.path.join(model_dir, "fingerprint.txt"),
                  os.path.join(args.out, "fingerprint.txt"))
  psnr = 10 * np.log10(255.0**2 / np.mean((decoded.astype(float) - image) ** 2))
  print(f"{args.out}: {image.shape[1]}x{image.shape[0]} -> {len(data)} bytes "
        f"({8 * len(data) / image.shape[0] / image.shape[1]:.3f} bpp), PSNR {psnr:.2f} dB")


if __name__ == "__main__":
  main()
