"""BAPPS-layout 2AFC splits (Zhang et al. 2018) and the 2AFC score with its human ceiling.

A split is a folder with `ref/`, `p0/`, `p1/` (PNG patches) and `judge/` (one `.npy` per
triplet holding the share of humans who judged p1 closer to ref, in [0, 1]). As BAPPS's
`TwoAFCDataset`, each folder is sorted by file name and triplets are paired by index.

    score = mean((d0 < d1) (1 - judge) + (d1 < d0) judge + (d0 == d1) / 2)
    ceiling = mean(judge^2 + (1 - judge)^2)   (agreement of two random humans)

with d0, d1 the distances of p0, p1 to ref (`score_2afc_dataset` in lpips/trainer.py).
This module imports only numpy and Pillow, so scripts in other environments can use it.
"""

import dataclasses
import json
import os

import numpy as np
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.images import read_rgb

IMAGE_FOLDERS = ("ref", "p0", "p1")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")


@dataclasses.dataclass(frozen=True)
class Split:
  """One 2AFC split held in memory.

  Attributes:
    ref, p0, p1: [N, H, W, 3] uint8 RGB patches.
    judge: [N] float32 share of humans preferring p1 (None for a split not yet judged).
    names: N file names (of ref/) identifying the triplets.
  """

  ref: np.ndarray
  p0: np.ndarray
  p1: np.ndarray
  judge: np.ndarray
  names: tuple

  def __len__(self):
    return len(self.ref)

  def subset(self, index):
    """The triplets at `index` (array of ints or a slice) as a new `Split`."""
    names = np.asarray(self.names, dtype=object)[index]
    return Split(self.ref[index], self.p0[index], self.p1[index], self.judge[index],
                 tuple(names))


def score_2afc(d0, d1, judge):
  """2AFC score in [0, 1]: how often the distances agree with the humans (ties count 1/2).

  Args:
    d0, d1: [N] distances of p0 and p1 to the reference (lower = closer).
    judge: [N] share of humans preferring p1.

  Returns:
    Python float.
  """
  d0, d1, judge = (np.asarray(a, np.float64).reshape(-1) for a in (d0, d1, judge))
  if not d0.shape == d1.shape == judge.shape:
    raise ValueError(f"d0, d1, judge sizes differ: {d0.size}, {d1.size}, {judge.size}")
  scores = (d0 < d1) * (1.0 - judge) + (d1 < d0) * judge + (d0 == d1) * 0.5
  return float(np.mean(scores))


def human_ceiling(judge):
  """Expected agreement of two random humans, mean(p^2 + (1 - p)^2), for judge p [N]."""
  p = np.asarray(judge, np.float64).reshape(-1)
  return float(np.mean(p * p + (1.0 - p) * (1.0 - p)))


def _listing(folder, extensions):
  if not os.path.isdir(folder):
    raise UserError(f"{folder}: missing (a 2AFC split has ref/, p0/, p1/ and judge/)")
  return sorted(f for f in os.listdir(folder) if f.lower().endswith(extensions))


def _read_judge(path):
  try:
    value = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: cannot read judge ({e})") from e
  value = np.asarray(value, np.float64).reshape(-1)
  if value.size != 1 or not 0.0 <= value[0] <= 1.0:
    raise UserError(f"{path}: a judge is one number in [0, 1], got {value.tolist()}")
  return value[0]


def load_split(path):
  """Reads a BAPPS-layout split folder into a `Split` (UserError on malformed input)."""

  lists = {k: _listing(os.path.join(path, k), _IMAGE_EXTENSIONS) for k in IMAGE_FOLDERS}
  lists["judge"] = _listing(os.path.join(path, "judge"), (".npy",))
  counts = {k: len(v) for k, v in lists.items()}
  if not counts["judge"]:
    raise UserError(f"{os.path.join(path, 'judge')}: no judge files (*.npy)")
  if len(set(counts.values())) != 1:
    raise UserError(f"{path}: file counts differ: "
                    + ", ".join(f"{k}/ {n}" for k, n in counts.items()))
  images, shape = {}, None
  for k in IMAGE_FOLDERS:
    stack = []
    for name in lists[k]:
      file = os.path.join(path, k, name)
      img = read_rgb(file)
      if shape is None:
        shape, first = img.shape, file
      elif img.shape != shape:
        raise UserError(f"image sizes differ: {first} is {shape[1]}x{shape[0]}, "
                        f"{file} is {img.shape[1]}x{img.shape[0]}")
      stack.append(img)
    images[k] = np.stack(stack)
  judge = np.asarray([_read_judge(os.path.join(path, "judge", n)) for n in lists["judge"]],
                     np.float32)
  return Split(images["ref"], images["p0"], images["p1"], judge, tuple(lists["ref"]))


def write_split(path, split, info=None):
  """Writes `split` as a BAPPS-layout folder (PNGs and [1] float32 judges), atomically.

  A split with judge None (not yet judged) gets no judge/ folder; `info`, a JSON-able dict, is
  written to info.json beside the folders when given.
  """
  folders = IMAGE_FOLDERS + (() if split.judge is None else ("judge",))
  with atomic_path(path) as tmp:
    for k in folders:
      os.makedirs(os.path.join(tmp, k))
    if info is not None:
      with open(os.path.join(tmp, "info.json"), "w") as f:
        json.dump(info, f, indent=1)
    for i, name in enumerate(split.names):
      stem = os.path.splitext(name)[0]
      for k in IMAGE_FOLDERS:
        Image.fromarray(getattr(split, k)[i]).save(os.path.join(tmp, k, f"{stem}.png"))
      if split.judge is not None:
        np.save(os.path.join(tmp, "judge", f"{stem}.npy"),
                np.asarray([split.judge[i]], np.float32))
