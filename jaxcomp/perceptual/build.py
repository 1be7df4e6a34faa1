"""Compression 2AFC splits from photos: a reference patch and two codec reconstructions.

Each triplet crops a random `size` x `size` patch from a random photo and codes it twice with
two different (anchor, quality) settings from the Pillow anchors (JPEG 4:2:0 / 4:4:4, WebP) at
qualities up to `MAX_QUALITY`, where artefacts are visible; p0/p1 are the decoded patches.
info.json lists each triplet's photo, crop and settings.

The split is ready for judging (no judge/ folder). For tests and demonstrations,
`synthetic_judges` stands in for human observers with a rule the VGG-based metrics do not see:
the MSE of the colour-difference channels B - Y and R - Y (Y the BT.601 luma; a chroma-only
error) e0, e1 of p0, p1, turned into the probability that p1 looks closer,
p = sigmoid(SHARPNESS (e0 - e1) / (e0 + e1 + 1e-8)), and a vote of `OBSERVERS` simulated
observers, judge = Binomial(OBSERVERS, p) / OBSERVERS.
"""

import io
import os

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.evaluate import anchors
from jaxcomp.images import read_rgb
from jaxcomp.perceptual import twoafc

MAX_QUALITY = 50
SHARPNESS = 6.0
OBSERVERS = 5
_LUMA = np.array([0.299, 0.587, 0.114])


def _photos(folder):
  names = sorted(f for f in os.listdir(folder)
                 if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))
  if not names:
    raise UserError(f"{folder}: no photos (PNG/JPEG)")
  return names


def _code(anchor, patch, quality):
  buf = io.BytesIO()
  anchor.save(patch, buf, quality)
  buf.seek(0)
  return anchor.load(buf)


def build_split(photos_dir, triplets, *, size=64, anchor_spec="jpeg,webp", seed=0):
  """(Split with judge None, info dict): `triplets` compression triplets from `photos_dir`."""

  settings = [(a, q) for a in anchors.resolve(anchor_spec) for q in a.qualities
              if q <= MAX_QUALITY]
  if len(settings) < 2:
    raise UserError("need at least two codec settings to make 2AFC pairs")
  rng = np.random.default_rng(seed)
  names = _photos(photos_dir)
  photos = {}
  refs, p0s, p1s, rows = [], [], [], []
  for i in range(triplets):
    name = names[int(rng.integers(len(names)))]
    if name not in photos:
      photos[name] = read_rgb(os.path.join(photos_dir, name))
    photo = photos[name]
    if min(photo.shape[:2]) < size:
      raise UserError(f"{name}: smaller than the {size}x{size} patch")
    top = int(rng.integers(photo.shape[0] - size + 1))
    left = int(rng.integers(photo.shape[1] - size + 1))
    patch = np.ascontiguousarray(photo[top:top + size, left:left + size])
    a, b = rng.choice(len(settings), 2, replace=False)
    refs.append(patch)
    p0s.append(_code(settings[a][0], patch, settings[a][1]))
    p1s.append(_code(settings[b][0], patch, settings[b][1]))
    rows.append({"name": f"{i:06d}.png", "photo": name, "top": top, "left": left,
                 "p0": f"{settings[a][0].name}@{settings[a][1]}",
                 "p1": f"{settings[b][0].name}@{settings[b][1]}"})
  split = twoafc.Split(np.stack(refs), np.stack(p0s), np.stack(p1s), None,
                       tuple(r["name"] for r in rows))
  return split, {"size": size, "seed": seed, "triplets": rows}


def _chroma(u8):
  x = u8.astype(np.float64) / 255.0
  y = x @ _LUMA
  return np.stack([x[..., 2] - y, x[..., 0] - y], axis=-1)


def synthetic_judges(split, seed=0):
  """[N] float32 judges of the hidden rule in the module docstring (share preferring p1)."""
  ref = _chroma(split.ref)
  e0 = np.mean((_chroma(split.p0) - ref) ** 2, axis=(1, 2, 3))
  e1 = np.mean((_chroma(split.p1) - ref) ** 2, axis=(1, 2, 3))
  p = 1.0 / (1.0 + np.exp(-SHARPNESS * (e0 - e1) / (e0 + e1 + 1e-8)))
  votes = np.random.default_rng(seed).binomial(OBSERVERS, p)
  return (votes / OBSERVERS).astype(np.float32)
