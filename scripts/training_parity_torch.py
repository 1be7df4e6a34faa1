"""CompressAI's side of the training-parity experiments (runs in the reference environment).

    PYTHONPATH=../shared/refenv/stub:../shared/refenv ~/.cache/jaxcomp-refenv/bin/python \
        scripts/training_parity_torch.py {trajectory,train,eval} ...

Called by scripts/trajectory_parity.py and scripts/independent_training.py, which run jaxcomp's side
and compare. Needs only torch, CompressAI 1.2.8, numpy and Pillow (no jaxcomp, no JAX).

init --N --M --seed --out FILE.npz   a fresh CompressAI model's state_dict (torch seed).
trajectory --work DIR   reads DIR/inputs.npz (initial CompressAI state_dict `sd/<name>`, batches
    [T, B, H, W, 3] uint8, noise_y [T, B, h, w, M], noise_z, lmbda, lr, clip) and trains T steps
    as CompressAI's examples/train.py does (Adam on the parameters, clip_grad_norm_ 1.0, an aux
    Adam at 1e-3 on the quantiles with `aux_loss()`), with the given noise in place of drawn noise.
    With --dtype float64 the same run in double precision (the float-drift control), written
    to DIR/torch64.npz. Writes DIR/torch.npz: per-step loss/bpp/mse/aux_loss, the parameters after every step as one
    flat float32 vector per step (names in `names`), the final state_dict `sd/<name>` (quantiles
    included).
train ...               from scratch with a torch seed; the crops are jaxcomp's `CropStream`
    (jaxcomp/train/input_pipeline.py: image order and crop offsets/flips from numpy generators
    seeded with (seed, epoch) and (seed, example)), so both frameworks see the same batches.
    Writes OUT/model.npz (state_dict) and OUT/log.json (losses, steps/s).
eval --model FILE --images DIR --out FILE.json  `update()`, then CompressAI's own compress /
    decompress per image (zero-padded to a multiple of 64 as `compressai.utils.eval_model`),
    rate = bytes of the y and z strings; PSNR on the decoded image rounded to uint8 (what a PNG
    holds, as `jaxcomp eval` measures it). With --refit-quantiles the quantiles are first refit
    by CompressAI's bisection (`update(update_quantiles=True)`) instead of the aux-trained ones.
"""

import argparse
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from compressai.losses import RateDistortionLoss
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

CLASSES = {"bmshj2018-hyperprior": ScaleHyperprior, "mbt2018-mean": MeanScaleHyperprior}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def optimizers(model, lr, aux_lr=1e-3):
  """examples/train.py's configure_optimizers: Adam(lr) on all but the quantiles, Adam(aux_lr)."""
  params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
  aux = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
  return torch.optim.Adam(params, lr=lr), torch.optim.Adam(aux, lr=aux_lr)


def train_step(model, criterion, optimizer, aux_optimizer, x, clip):
  """examples/train.py's train_one_epoch body for one batch x [B, 3, H, W]."""
  optimizer.zero_grad()
  aux_optimizer.zero_grad()
  out = criterion(model(x), x)
  out["loss"].backward()
  if clip > 0:
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
  optimizer.step()
  aux_loss = model.aux_loss()
  aux_loss.backward()
  aux_optimizer.step()
  return {"loss": out["loss"].item(), "bpp": out["bpp_loss"].item(),
          "mse": out["mse_loss"].item(), "aux_loss": aux_loss.item()}


def patch_noise(model, noise):
  """Makes the entropy models add noise['y'] / noise['z'] (NCHW tensors) instead of drawing."""
  eb, gc = model.entropy_bottleneck, model.gaussian_conditional

  def eb_quantize(inputs, mode, means=None):
    del means
    assert mode == "noise"
    z = noise["z"]
    return inputs + z.permute(1, 0, 2, 3).reshape(z.size(1), 1, -1)

  def gc_quantize(inputs, mode, means=None):
    del means
    assert mode == "noise"
    return inputs + noise["y"]

  eb.quantize, gc.quantize = eb_quantize, gc_quantize


def nchw(a):
  return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()


def state_arrays(model):
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def trajectory(work, dtype):
  with np.load(os.path.join(work, "inputs.npz"), allow_pickle=False) as f:
    inputs = {k: f[k] for k in f.files}
  arch = str(inputs["arch"])
  sd = {k[3:]: torch.from_numpy(v) for k, v in inputs.items() if k.startswith("sd/")}
  N, M = sd["g_a.0.weight"].shape[0], sd["g_a.6.weight"].shape[0]
  model = CLASSES[arch](N, M)
  torch.nn.Module.load_state_dict(model, sd, strict=False)
  model.train()
  wide = dtype == "float64"  # the control run: the same training in double precision
  if wide:
    model.double()
  optimizer, aux_optimizer = optimizers(model, float(inputs["lr"]))
  criterion = RateDistortionLoss(lmbda=float(inputs["lmbda"]))
  names = [n for n, _ in model.named_parameters() if not n.endswith(".quantiles")]
  params = dict(model.named_parameters())
  steps = inputs["batches"].shape[0]
  flat = np.zeros((steps, sum(params[n].numel() for n in names)), np.dtype(dtype))
  logs = []
  began = time.process_time()
  noise = {}
  patch_noise(model, noise)
  for t in range(steps):
    noise["y"], noise["z"] = nchw(inputs["noise_y"][t]), nchw(inputs["noise_z"][t])
    x = nchw(inputs["batches"][t].astype(np.float32) / 255.0)
    if wide:
      noise["y"], noise["z"], x = noise["y"].double(), noise["z"].double(), x.double()
    logs.append(train_step(model, criterion, optimizer, aux_optimizer, x, float(inputs["clip"])))
    flat[t] = np.concatenate([params[n].detach().numpy().ravel() for n in names])
  cpu_s = time.process_time() - began
  out = {f"sd/{k}": v for k, v in state_arrays(model).items()}
  out.update({k: np.array([log[k] for log in logs]) for k in logs[0]})
  np.savez(os.path.join(work, "torch.npz" if not wide else "torch64.npz"),
           names=np.array(names), params=flat,
           cpu_s=cpu_s, **out)
  print(f"torch ({dtype}): {steps} steps, {cpu_s:.1f} CPU s, final loss {logs[-1]['loss']:.4f}")


def init(args):
  """A fresh CompressAI model (torch seed) saved as a state_dict npz."""
  torch.manual_seed(args.seed)
  model = CLASSES[args.arch](args.N, args.M)
  np.savez(args.out, **state_arrays(model))


def image_paths(folder):
  return sorted(os.path.join(d, f) for d, _, files in os.walk(folder, followlinks=True)
                for f in files if f.lower().endswith(IMAGE_EXTENSIONS))


class CropStream:
  """jaxcomp.train.input_pipeline.CropStream over an image folder, re-implemented with numpy."""

  def __init__(self, folder, size, seed, flip=True):
    self.images = [np.asarray(Image.open(p).convert("RGB")) for p in image_paths(folder)]
    self.size, self.seed, self.flip = size, seed, flip

  def example(self, g):
    n = len(self.images)
    epoch, position = divmod(g, n)
    order = np.random.default_rng([self.seed, epoch]).permutation(n)
    image = next(self.images[order[(position + i) % n]] for i in range(n)
                 if min(self.images[order[(position + i) % n]].shape[:2]) >= self.size)
    rng = np.random.default_rng([self.seed, g])
    top = rng.integers(0, image.shape[0] - self.size + 1)
    left = rng.integers(0, image.shape[1] - self.size + 1)
    crop = image[top:top + self.size, left:left + self.size]
    if self.flip and rng.integers(2):
      crop = crop[:, ::-1]
    return crop.astype(np.float32) / 255.0

  def batch(self, first, count):
    return np.stack([self.example(g) for g in range(first, first + count)])


def train(args):
  torch.manual_seed(args.seed)
  model = CLASSES[args.arch](args.N, args.M)
  model.train()
  optimizer, aux_optimizer = optimizers(model, args.lr)
  drop = int(args.lr_drop_fraction * args.steps)
  scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [drop], 0.1)
  criterion = RateDistortionLoss(lmbda=args.lmbda)
  stream = CropStream(args.data, args.patch, args.seed)
  logs = []
  began = time.process_time()
  for t in range(args.steps):
    x = nchw(stream.batch(t * args.batch, args.batch))
    logs.append(train_step(model, criterion, optimizer, aux_optimizer, x, args.clip))
    scheduler.step()
    if (t + 1) % 100 == 0:
      print(f"step {t + 1}: loss {logs[-1]['loss']:.4f} bpp {logs[-1]['bpp']:.4f} "
            f"({(t + 1) / (time.process_time() - began):.2f} steps per CPU s)", flush=True)
  cpu_s = time.process_time() - began
  os.makedirs(args.out, exist_ok=True)
  np.savez(os.path.join(args.out, "model.npz"), **state_arrays(model))
  with open(os.path.join(args.out, "log.json"), "w") as f:
    json.dump({"steps": args.steps, "cpu_s": cpu_s, "steps_per_cpu_s": args.steps / cpu_s,
               "loss": [log["loss"] for log in logs], "bpp": [log["bpp"] for log in logs],
               "mse": [log["mse"] for log in logs]}, f)


def load_model(path, arch):
  with np.load(path, allow_pickle=False) as f:
    sd = {k: torch.from_numpy(f[k]) for k in f.files}
  N, M = sd["g_a.0.weight"].shape[0], sd["g_a.6.weight"].shape[0]
  model = CLASSES[arch](N, M)
  state = model.state_dict()
  state.update({k: v for k, v in sd.items() if k in state and state[k].shape == v.shape})
  torch.nn.Module.load_state_dict(model, state, strict=False)
  return model.eval()


def evaluate(args):
  model = load_model(args.model, args.arch)
  model.update(force=True, update_quantiles=args.refit_quantiles)
  per_image = {}
  for path in image_paths(args.images):
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    pad_h, pad_w = (-h) % 64, (-w) % 64
    top, left = pad_h // 2, pad_w // 2
    x = nchw(image[None].astype(np.float32) / 255.0)
    x = F.pad(x, (left, pad_w - left, top, pad_h - top))
    with torch.no_grad():
      out = model.compress(x)
      x_hat = model.decompress(out["strings"], out["shape"])["x_hat"]
    x_hat = x_hat[0, :, top:top + h, left:left + w].clamp(0, 1).permute(1, 2, 0).numpy()
    decoded = np.round(x_hat * 255.0).astype(np.uint8)
    mse = np.mean((decoded.astype(np.float64) - image) ** 2) / 255.0**2
    nbytes = sum(len(s) for strings in out["strings"] for s in strings)
    per_image[os.path.basename(path)] = {"bpp": [nbytes * 8.0 / (h * w)],
                                         "psnr-rgb": [10 * math.log10(1.0 / mse)]}
  mean = lambda k: float(np.mean([v[k][0] for v in per_image.values()]))
  doc = {"name": args.name, "description": "CompressAI 1.2.8 compress/decompress",
         "results": {"bpp": [mean("bpp")], "psnr-rgb": [mean("psnr-rgb")]},
         "points": [args.model], "per_image": per_image}
  with open(args.out, "w") as f:
    json.dump(doc, f, indent=1)
  print(f"{args.name}: {mean('bpp'):.4f} bpp, {mean('psnr-rgb'):.2f} dB")


def main():
  parser = argparse.ArgumentParser()
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("trajectory")
  p.add_argument("--work", required=True)
  p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
  p = sub.add_parser("init")
  p.add_argument("--arch", default="bmshj2018-hyperprior", choices=sorted(CLASSES))
  p.add_argument("--N", type=int, required=True)
  p.add_argument("--M", type=int, required=True)
  p.add_argument("--seed", type=int, required=True)
  p.add_argument("--out", required=True)
  p = sub.add_parser("train")
  p.add_argument("--arch", default="bmshj2018-hyperprior", choices=sorted(CLASSES))
  p.add_argument("--N", type=int, required=True)
  p.add_argument("--M", type=int, required=True)
  p.add_argument("--data", required=True)
  p.add_argument("--patch", type=int, required=True)
  p.add_argument("--batch", type=int, required=True)
  p.add_argument("--steps", type=int, required=True)
  p.add_argument("--lmbda", type=float, required=True)
  p.add_argument("--lr", type=float, required=True)
  p.add_argument("--lr-drop-fraction", type=float, required=True)
  p.add_argument("--clip", type=float, default=1.0)
  p.add_argument("--seed", type=int, required=True)
  p.add_argument("--out", required=True)
  p = sub.add_parser("eval")
  p.add_argument("--arch", default="bmshj2018-hyperprior", choices=sorted(CLASSES))
  p.add_argument("--model", required=True)
  p.add_argument("--images", required=True)
  p.add_argument("--name", required=True)
  p.add_argument("--refit-quantiles", action="store_true")
  p.add_argument("--out", required=True)
  args = parser.parse_args()
  torch.set_num_threads(1)
  if args.command == "trajectory":
    trajectory(args.work, args.dtype)
  elif args.command == "init":
    init(args)
  elif args.command == "train":
    train(args)
  else:
    evaluate(args)


if __name__ == "__main__":
  main()
