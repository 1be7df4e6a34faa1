"""Writes the 2AFC fixtures in tests/fixtures/perceptual/ from the lpips package's own code.

Runs in the reference environment (torch, lpips 0.1.4; no jax), built by the shared `refenv.sh`:

    PYTHONPATH=/work/shared/refenv/stub:/work/shared/refenv:. \
      ~/.cache/jaxcomp-refenv/bin/python scripts/make_perceptual_fixtures.py \
      --photos /work/shared/data/photos [--cache ~/.cache/jaxcomp/weights]

score.json: `lpips.trainer.score_2afc_dataset` on fixed random distances (a tenth of them tied)
and judgments, fed through a stand-in data loader whose "images" are triplet indices.

bapps_sample/ + lpips.json: a BAPPS-layout split of 8 triplets of 64x64 patches cut from the
photos, p0/p1 two different distortions of ref (Pillow JPEG or WebP at a quality, Gaussian blur),
arbitrary judges; with the distances d0, d1 of `lpips.LPIPS(net='vgg', version='0.1')` (the
package's v0.1 heads; the VGG16 backbone read from the jaxcomp weights cache, the file
`jaxcomp weights fetch` makes) and `score_2afc_dataset` of that network on the split, with
images fed as BAPPS's `TwoAFCDataset` does (PNG -> [-1, 1]).
"""

import argparse
import io
import json
import os
import struct
import sys

import numpy as np
from PIL import Image, ImageFilter
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxcomp.perceptual import twoafc  # pylint: disable=g-import-not-at-top  (numpy only)

SAMPLE_PHOTOS = ("autumn.png", "kite.png", "path.png", "summer_1am.png")
DISTORTIONS = ("jpeg10", "jpeg30", "webp5", "webp40", "blur1", "blur2")
SIZE = 64


class _Loader:
  """The part of lpips' CustomDatasetDataLoader that score_2afc_dataset uses."""

  def __init__(self, batches):
    self.batches = batches

  def load_data(self):
    return self.batches


def read_safetensors(path):
  """{name: float32 array} from a safetensors file (the format is a JSON header + raw bytes)."""
  with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
  out = {}
  for name, info in header.items():
    if name == "__metadata__":
      continue
    assert info["dtype"] == "F32", info
    start, end = info["data_offsets"]
    out[name] = np.frombuffer(data[start:end], np.float32).reshape(info["shape"])
  return out


def score_fixture(trainer):
  rng = np.random.default_rng(10)
  n = 200
  d0 = rng.random(n).astype(np.float32)
  d1 = rng.random(n).astype(np.float32)
  tied = rng.random(n) < 0.1
  d1[tied] = d0[tied]
  judge = rng.choice([0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0], n).astype(np.float32)
  table = {0: torch.from_numpy(d0), 1: torch.from_numpy(d1)}
  batches = [{"ref": torch.arange(i, min(i + 50, n)), "p0": 0, "p1": 1,
              "judge": torch.from_numpy(judge[i:i + 50, None])} for i in range(0, n, 50)]
  score, _ = trainer.score_2afc_dataset(_Loader(batches), lambda ref, p: table[p][ref])
  return {"d0": d0.tolist(), "d1": d1.tolist(), "judge": judge.tolist(), "score": float(score)}


def distort(img, kind):
  if kind.startswith(("jpeg", "webp")):
    buf = io.BytesIO()
    img.save(buf, "JPEG" if kind.startswith("jpeg") else "WEBP", quality=int(kind[4:]))
    return np.asarray(Image.open(buf).convert("RGB"))
  return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=int(kind[4:]))))


def make_sample(photos_dir):
  rng = np.random.default_rng(11)
  refs, p0s, p1s, names = [], [], [], []
  for i, name in enumerate(SAMPLE_PHOTOS):
    photo = Image.open(os.path.join(photos_dir, name)).convert("RGB")
    for j in range(2):
      top = int(rng.integers(0, photo.height - SIZE))
      left = int(rng.integers(0, photo.width - SIZE))
      patch = photo.crop((left, top, left + SIZE, top + SIZE))
      a, b = rng.choice(len(DISTORTIONS), 2, replace=False)
      refs.append(np.asarray(patch))
      p0s.append(distort(patch, DISTORTIONS[a]))
      p1s.append(distort(patch, DISTORTIONS[b]))
      names.append(f"{2 * i + j:06d}.png")
  judge = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], len(refs)).astype(np.float32)
  return twoafc.Split(np.stack(refs), np.stack(p0s), np.stack(p1s), judge, tuple(names))


def lpips_vgg(cache):
  import lpips  # pylint: disable=g-import-not-at-top

  model = lpips.LPIPS(net="vgg", version="0.1", verbose=False).eval()
  vgg = read_safetensors(os.path.join(cache, "vgg16.safetensors"))
  net = model.net
  convs = [m for s in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5)
           for m in s if isinstance(m, torch.nn.Conv2d)]
  assert len(convs) == 13
  with torch.no_grad():
    for i, conv in enumerate(convs):
      conv.weight.copy_(torch.from_numpy(vgg[f"Conv_{i}/kernel"].transpose(3, 2, 0, 1).copy()))
      conv.bias.copy_(torch.from_numpy(vgg[f"Conv_{i}/bias"].copy()))
  return model


def lpips_fixture(trainer, split_dir, cache):
  split = twoafc.load_split(split_dir)
  model = lpips_vgg(cache)

  def to_torch(u8):  # TwoAFCDataset: ToTensor, Normalize(0.5, 0.5)
    return torch.from_numpy(u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2) * 2.0 - 1.0

  batches = [{"ref": to_torch(split.ref[i:i + 4]), "p0": to_torch(split.p0[i:i + 4]),
              "p1": to_torch(split.p1[i:i + 4]),
              "judge": torch.from_numpy(split.judge[i:i + 4, None])}
             for i in range(0, len(split), 4)]
  score, info = trainer.score_2afc_dataset(_Loader(batches), model.forward)
  return {"d0": info["d0s"].tolist(), "d1": info["d1s"].tolist(),
          "judge": info["gts"].tolist(), "score": float(score),
          "human_ceiling": twoafc.human_ceiling(split.judge)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", default="/work/shared/data/photos")
  parser.add_argument("--cache", default=os.path.expanduser("~/.cache/jaxcomp/weights"),
                      help="jaxcomp weights folder with vgg16.safetensors")
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "perceptual"))
  args = parser.parse_args()

  from lpips import trainer  # pylint: disable=g-import-not-at-top

  torch.set_grad_enabled(False)
  os.makedirs(args.out, exist_ok=True)
  meta = {"note": "written by scripts/make_perceptual_fixtures.py", "lpips": "0.1.4",
          "torch": torch.__version__}
  with open(os.path.join(args.out, "score.json"), "w") as f:
    json.dump(dict(meta, **score_fixture(trainer)), f, indent=1)
  split_dir = os.path.join(args.out, "bapps_sample")
  twoafc.write_split(split_dir, make_sample(args.photos))
  values = lpips_fixture(trainer, split_dir, args.cache)
  meta["distortions"] = list(DISTORTIONS)
  with open(os.path.join(args.out, "lpips.json"), "w") as f:
    json.dump(dict(meta, **values), f, indent=1)
  print(json.dumps(values, indent=1))


if __name__ == "__main__":
  main()
