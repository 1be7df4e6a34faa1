"""Writes the FSIM / VSI / SDSP / NLPD parity fixtures in tests/fixtures/metrics2/.

Runs in the reference environment (torch, piq 0.8.0, pyiqa; no jax):

    PYTHONPATH=/work/shared/refenv/stub:/work/shared/refenv:. \
      ~/.cache/jaxcomp-refenv/bin/python scripts/make_metric2_fixtures.py \
      --photos /work/shared/data/photos

Images (uint8; the photos themselves are not in the repository):
  a  96x128 crop of colorfulcups.png and five distortions: JPEG quality 10 and 50 (Pillow),
     Gaussian blur (radius 2), Gaussian noise (sigma 12, seeded), and 8x8-level quantisation;
     F = 1 (no automatic down-sampling).
  b  75x101 crop of autumn.png (odd sides) with JPEG 20, blur, noise and the red/blue channels
     swapped (negative chroma similarity products, where MATLAB's real(z^p) and piq's |z|^p
     differ); F = 1.
  c  derived from a's reference in tests/metrics2_pairs.py (384x509, F = 2; not stored).
  tid2013  pyiqa's five TID2013 calibration pairs (512x384, F = 2), when the folder is found
     (tests/metrics2_pairs.tid2013_dir); only the values are stored.

Reference values (float32 NCHW tensors in [0, 1]):
  fsim       piq.fsim(data_range=1, chromatic=True, reduction='none')    (FSIMc)
  fsim_gray  piq.fsim(data_range=1, chromatic=False, reduction='none')   (FSIM)
  vsi        piq.vsi(data_range=1, reduction='none')
  nlpd_pyiqa pyiqa.archs.nlpd_arch.NLPD()(x, y)  (Y of YIQ unrounded, 3x3 first-level filter)
  sdsp_a     piq.vsi.sdsp of set a's reference, [96, 128] float16
"""

import argparse
import io
import json
import os
import sys

import numpy as np
from PIL import Image, ImageFilter
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import metrics2_pairs  # pylint: disable=g-import-not-at-top,wrong-import-position

SETS = {
    # name: (photo, crop (top, left, height, width), distortions)
    "a": ("colorfulcups.png", (200, 300, 96, 128), ("jpeg10", "jpeg50", "blur", "noise", "quant8")),
    "b": ("autumn.png", (300, 400, 75, 101), ("jpeg20", "blur", "noise", "swaprb")),
}


def distort(img, kind, seed):
  if kind.startswith("jpeg"):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(kind[4:]))
    return np.asarray(Image.open(buf).convert("RGB"))
  if kind == "blur":
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=2)))
  if kind == "noise":
    noise = np.random.RandomState(seed).randn(img.height, img.width, 3)
    x = np.asarray(img, np.float64) + 12 * noise
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
  if kind == "quant8":
    return (np.asarray(img) // 32 * 32 + 16).astype(np.uint8)
  if kind == "swaprb":
    return np.ascontiguousarray(np.asarray(img)[..., ::-1])
  raise ValueError(kind)


def to_torch(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def reference_values(x, y):
  import piq  # pylint: disable=g-import-not-at-top
  from pyiqa.archs.nlpd_arch import NLPD  # pylint: disable=g-import-not-at-top

  tx, ty = to_torch(x), to_torch(y)
  values = {
      "fsim": piq.fsim(tx, ty, data_range=1.0, chromatic=True, reduction="none"),
      "fsim_gray": piq.fsim(tx, ty, data_range=1.0, chromatic=False, reduction="none"),
      "vsi": piq.vsi(tx, ty, data_range=1.0, reduction="none"),
      "nlpd_pyiqa": NLPD()(tx, ty),
  }
  return {k: [float(t) for t in v.reshape(-1)] for k, v in values.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", default="/work/shared/data/photos")
  parser.add_argument("--out", default=metrics2_pairs.FIXTURES)
  args = parser.parse_args()
  torch.set_grad_enabled(False)
  import piq  # pylint: disable=g-import-not-at-top
  from piq.vsi import sdsp as piq_sdsp  # pylint: disable=g-import-not-at-top

  arrays = {}
  for name, (photo, (top, left, h, w), kinds) in SETS.items():
    img = Image.open(os.path.join(args.photos, photo)).convert("RGB").crop(
        (left, top, left + w, top + h))
    arrays[f"{name}_refs"] = np.asarray(img)[None]
    arrays[f"{name}_dists"] = np.stack([distort(img, k, seed=j) for j, k in enumerate(kinds)])
    arrays[f"{name}_index"] = np.zeros(len(kinds), np.int32)
  ref_a = to_torch(arrays["a_refs"].astype(np.float32) / 255.0)
  arrays["sdsp_a"] = piq_sdsp(ref_a, data_range=1.0)[0, 0].numpy().astype(np.float16)
  os.makedirs(args.out, exist_ok=True)
  np.savez_compressed(os.path.join(args.out, "pairs.npz"), **arrays)

  values = {name: reference_values(*metrics2_pairs.load(name, args.out))
            for name in metrics2_pairs.SETS}
  tid = metrics2_pairs.tid2013_dir()
  if tid:
    values["tid2013"] = reference_values(*metrics2_pairs.load_tid2013(tid))
  meta = {
      "note": "written by scripts/make_metric2_fixtures.py; values[set][metric][i] is the "
              "metric of (dists[i], refs[index[i]]) (see tests/metrics2_pairs.py)",
      "sets": {k: {"photo": p, "crop_top_left_height_width": list(c), "distortions": list(d)}
               for k, (p, c, d) in SETS.items()}
              | {"c": {"derived_from": "a", "size": list(metrics2_pairs.C_SIZE),
                       "distortions": list(metrics2_pairs.C_DISTORTIONS)}},
      "references": {"torch": torch.__version__, "piq": piq.__version__,
                     "pyiqa": __import__("pyiqa").__version__},
      "values": values,
  }
  with open(os.path.join(args.out, "reference.json"), "w") as f:
    json.dump(meta, f, indent=1)
  print(json.dumps(values, indent=1))


if __name__ == "__main__":
  main()
