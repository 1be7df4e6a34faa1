"""Image pairs of the metrics II parity fixtures (numpy only: the fixture script imports it too).

tests/fixtures/metrics2/pairs.npz holds small uint8 photo crops and their distortions (sets
"a", "b"). Set "c" (F = 2 automatic down-sampling, which needs min(H, W) >= 384) is derived
here from set "a"'s reference by exact integer operations, so that it costs no storage:
4x integer-bilinear up-sampling cropped to 384x509 (odd width), then Gaussian noise (seeded
RandomState), a [1 2 1]^2 integer blur, and quantisation to 16 levels.
"""

import os

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "metrics2")
SETS = ("a", "b", "c")
C_SIZE = (384, 509)
C_DISTORTIONS = ("noise", "blur", "quant16")


def _upsample2(u8, axis):
  """Integer 2x up-sampling along `axis`: a[i], (a[i] + a[i+1] + 1) // 2 (last sample repeated)."""
  a = u8.astype(np.int32)
  nxt = np.concatenate([np.take(a, np.arange(1, a.shape[axis]), axis=axis),
                        np.take(a, [-1], axis=axis)], axis=axis)
  mid = (a + nxt + 1) // 2
  out = np.stack([a, mid], axis=axis + 1)
  shape = list(a.shape)
  shape[axis] *= 2
  return out.reshape(shape).astype(np.uint8)


def _blur121(u8):
  a = u8.astype(np.int32)
  for axis in (0, 1):
    p = np.concatenate([np.take(a, [0], axis=axis), a, np.take(a, [-1], axis=axis)], axis=axis)
    n = a.shape[axis]
    a = (np.take(p, range(0, n), axis=axis) + 2 * np.take(p, range(1, n + 1), axis=axis)
         + np.take(p, range(2, n + 2), axis=axis) + 2) // 4
  return a.astype(np.uint8)


def derive_set_c(ref_a):
  """[H, W, 3] uint8 set-"a" reference -> (refs [1, 384, 509, 3], dists [3, ...], index [3])."""
  big = ref_a
  for _ in range(2):
    big = _upsample2(_upsample2(big, 0), 1)
  ref = big[: C_SIZE[0], : C_SIZE[1]]
  noisy = ref.astype(np.float64) + 12.0 * np.random.RandomState(7).randn(*ref.shape)
  dists = [np.clip(np.round(noisy), 0, 255).astype(np.uint8),
           _blur121(_blur121(ref)),
           ((ref // 16) * 16 + 8).astype(np.uint8)]
  return ref[None], np.stack(dists), np.zeros(len(dists), np.int32)


def load_uint8(name, fixtures=FIXTURES):
  """(refs [R, H, W, 3], dists [N, H, W, 3], index [N]) uint8 of set `name`."""
  data = np.load(os.path.join(fixtures, "pairs.npz"))
  if name == "c":
    return derive_set_c(data["a_refs"][0])
  return data[f"{name}_refs"], data[f"{name}_dists"], data[f"{name}_index"]


def load(name, fixtures=FIXTURES):
  """(x, y): distorted and reference float32 [N, H, W, 3] images in [0, 1] of set `name`."""
  refs, dists, index = load_uint8(name, fixtures)
  return dists.astype(np.float32) / 255.0, refs[index].astype(np.float32) / 255.0


def tid2013_dir():
  """pyiqa's ResultsCalibra folder (5 TID2013 pairs; not redistributed here) or None.

  $JAXCOMP_TID2013_CALIBRA, else the copy installed with pyiqa in the reference environment.
  """
  candidates = [os.environ.get("JAXCOMP_TID2013_CALIBRA", "")]
  base = os.path.expanduser("~/.cache/jaxcomp-refenv/lib")
  if os.path.isdir(base):
    candidates += [os.path.join(base, d, "site-packages", "ResultsCalibra")
                   for d in sorted(os.listdir(base))]
  for path in candidates:
    if path and os.path.isfile(os.path.join(path, "ref_dir", "I03.bmp")):
      return path
  return None


TID2013_IMAGES = ("I03", "I04", "I06", "I08", "I19")


def load_tid2013(path):
  """(x, y) float32 [5, 384, 512, 3] in [0, 1]: distorted and reference TID2013 pairs."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  def read(sub):
    return np.stack([np.asarray(Image.open(os.path.join(path, sub, f"{n}.bmp")).convert("RGB"))
                     for n in TID2013_IMAGES]).astype(np.float32) / 255.0

  return read("dist_dir"), read("ref_dir")
