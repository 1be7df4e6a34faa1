"""Writes tests/fixtures/train_parity/*.npz: CompressAI 1.2.8's training loss, gradients and init.

Runs in the reference environment (CompressAI 1.2.8, PyTorch CPU):

    PYTHONPATH=../shared/refenv/stub:../shared/refenv ~/.cache/jaxcomp-refenv/bin/python \
        scripts/make_training_parity_fixtures.py --train ../shared/data/train

grads_<arch>.npz: the deterministic weights of tests/parity_weights.py (small N, M) in
CompressAI's model in training mode; two 64x128 crops of training photos; uniform noise drawn
here and fed to CompressAI's entropy bottleneck and Gaussian conditional in place of their own
(`quantize(..., "noise")` patched to add it); CompressAI's `RateDistortionLoss` (examples/train.py's
criterion) and `backward()`. Stored: the crops (uint8), the noise (NHWC), lmbda, loss/bpp/mse and
the gradient of every trained parameter (`grad/<name>`, CompressAI's layout).

init_<arch>.npz: per-tensor mean and standard deviation of freshly constructed CompressAI models
(`ScaleHyperprior(N, M)` / `MeanScaleHyperprior(N, M)`, PyTorch's default init as CompressAI
leaves it) for SEEDS torch seeds, pooled over the seeds (`mean/<name>`, `std/<name>`), and the
element count per tensor (`count/<name>`).
"""

import argparse
import os
import sys

import numpy as np
import torch
from PIL import Image
from compressai.losses import RateDistortionLoss
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import parity_weights  # pylint: disable=g-import-not-at-top,wrong-import-position

CLASSES = {"bmshj2018-hyperprior": ScaleHyperprior, "mbt2018-mean": MeanScaleHyperprior}
GRAD_CASES = [  # arch, N, M, lmbda, [(photo, top, left)] crops of 64x128
    ("bmshj2018-hyperprior", 8, 12, 0.0018, [("bridge.png", 300, 700), ("wine.png", 800, 400)]),
    ("mbt2018-mean", 12, 16, 0.0001, [("dragonfly.png", 400, 500), ("sunset.png", 600, 900)]),
]
CROP = (64, 128)
INIT_CASES = [("bmshj2018-hyperprior", 64, 96), ("mbt2018-mean", 64, 96)]
SEEDS = 8


def patch_noise(model, noise_y, noise_z):
  """Makes the model's two entropy models add the given noise (NCHW tensors) in training."""
  eb, gc = model.entropy_bottleneck, model.gaussian_conditional
  # EntropyBottleneck.forward quantizes z.permute(1, 0, 2, 3).reshape(C, 1, -1).
  z_values = noise_z.permute(1, 0, 2, 3).reshape(noise_z.size(1), 1, -1)

  def eb_quantize(inputs, mode, means=None):
    assert mode == "noise" and inputs.shape == z_values.shape
    return inputs + z_values

  def gc_quantize(inputs, mode, means=None):
    assert mode == "noise" and inputs.shape == noise_y.shape
    return inputs + noise_y

  eb.quantize, gc.quantize = eb_quantize, gc_quantize


def grad_fixture(path, train_dir, arch, N, M, lmbda, crops, seed):
  h, w = CROP
  images = []
  for photo, top, left in crops:
    image = np.asarray(Image.open(os.path.join(train_dir, photo)).convert("RGB"))
    images.append(image[top:top + h, left:left + w])
  images = np.stack(images)
  rng = np.random.default_rng(seed)
  b = len(images)
  noise_y = rng.uniform(-0.5, 0.5, (b, h // 16, w // 16, M)).astype(np.float32)
  noise_z = rng.uniform(-0.5, 0.5, (b, h // 64, w // 64, N)).astype(np.float32)
  model = CLASSES[arch](N, M)
  state = {k: torch.from_numpy(v) for k, v in parity_weights.state_dict(arch, N, M).items()}
  torch.nn.Module.load_state_dict(model, state, strict=False)
  model.train()
  nchw = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()
  patch_noise(model, nchw(noise_y), nchw(noise_z))
  x = nchw(images.astype(np.float32) / 255.0)
  out = RateDistortionLoss(lmbda=lmbda)(model(x), x)
  out["loss"].backward()
  grads = {f"grad/{name}": p.grad.numpy().astype(np.float32)
           for name, p in model.named_parameters() if not name.endswith("quantiles")}
  assert all(np.isfinite(g).all() for g in grads.values())
  np.savez_compressed(path, arch=arch, N=N, M=M, lmbda=np.float32(lmbda), images=images,
                      noise_y=noise_y, noise_z=noise_z, loss=out["loss"].item(),
                      bpp=out["bpp_loss"].item(), mse=out["mse_loss"].item(), **grads)
  print(f"{os.path.basename(path)}: loss {out['loss'].item():.6f} bpp "
        f"{out['bpp_loss'].item():.4f} mse {out['mse_loss'].item():.6f}, {len(grads)} gradients")


def init_fixture(path, arch, N, M):
  sums = {}
  for seed in range(SEEDS):
    torch.manual_seed(seed)
    model = CLASSES[arch](N, M)
    for name, p in model.named_parameters():
      if name.endswith("quantiles"):
        continue
      v = p.detach().double().numpy().ravel()
      acc = sums.setdefault(name, [0.0, 0.0, 0])
      acc[0] += v.sum()
      acc[1] += (v * v).sum()
      acc[2] += v.size
  out = {}
  for name, (s1, s2, n) in sums.items():
    mean = s1 / n
    out[f"mean/{name}"] = np.float64(mean)
    out[f"std/{name}"] = np.float64(np.sqrt(max(s2 / n - mean * mean, 0.0)))
    out[f"count/{name}"] = np.int64(n)
  np.savez_compressed(path, arch=arch, N=N, M=M, seeds=SEEDS, **out)
  print(f"{os.path.basename(path)}: {len(sums)} tensors, {SEEDS} seeds")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--train", required=True, help="the training photos folder")
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                    "fixtures", "train_parity"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  torch.set_num_threads(1)
  for i, (arch, N, M, lmbda, crops) in enumerate(GRAD_CASES):
    grad_fixture(os.path.join(args.out, f"grads_{arch}.npz"), args.train, arch, N, M, lmbda,
                 crops, seed=i)
  for arch, N, M in INIT_CASES:
    init_fixture(os.path.join(args.out, f"init_{arch}.npz"), arch, N, M)


if __name__ == "__main__":
  main()
