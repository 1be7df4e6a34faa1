"""Evaluation-mode parity of jaxcomp with CompressAI on whole photos, side by side in one process.

Needs jaxcomp, torch and compressai in the same interpreter. Uses a real CompressAI checkpoint
(`--checkpoint`) or, by default, the deterministic test weights of tests/parity_weights.py:

    python scripts/check_compressai_parity.py --photos ../shared/data/photos \
        [--arch bmshj2018-hyperprior] [--channels 128,192] [--checkpoint FILE]

Per photo it prints the max |difference| of every stage fed the reference's own input (g_a's y,
h_a's z, h_s, g_s: no rounding in between) and end to end (x_hat, y/z likelihoods), and counts
rounding flips: elements of y that the two float32 implementations round to different integers.
Those are unavoidable for any reimplementation when y lies within float error of a .5 boundary
(about one per 300k latents here); each flip must be such a boundary case, and end-to-end x_hat
is compared only where no flip happened. Exits 1 if a difference exceeds --tolerance (1e-4) or a
flip is not at a boundary.

With PyTorch's torchvision missing, CompressAI imports with the reference env's stand-in on the
path: PYTHONPATH=../shared/refenv/stub.
"""

import argparse
import glob
import os
import sys

import jax
import numpy as np
import torch
from PIL import Image
from compressai.models import MeanScaleHyperprior, ScaleHyperprior

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import parity_weights  # pylint: disable=g-import-not-at-top,wrong-import-position
from jaxcomp.codec import compressai_import, models, padding  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", required=True)
  parser.add_argument("--arch", default="bmshj2018-hyperprior", choices=list(models.ARCHS))
  parser.add_argument("--channels", default="128,192", help="N,M (ignored with --checkpoint)")
  parser.add_argument("--checkpoint", help="a CompressAI state_dict instead of the test weights")
  parser.add_argument("--tolerance", type=float, default=1e-4)
  args = parser.parse_args()

  if args.checkpoint:
    state = compressai_import.read_checkpoint(args.checkpoint)
    N, M = compressai_import.infer_channels(state)
  else:
    N, M = (int(c) for c in args.channels.split(","))
    state = parity_weights.state_dict(args.arch, N, M)
  net = (MeanScaleHyperprior if models.ARCHS[args.arch].mean_scale else ScaleHyperprior)(N, M)
  torch.nn.Module.load_state_dict(net, {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()},
                                  strict=False)
  if "entropy_bottleneck.quantiles" not in state or not args.checkpoint:
    net.entropy_bottleneck._update_quantiles()  # pylint: disable=protected-access
  state["entropy_bottleneck.quantiles"] = net.entropy_bottleneck.quantiles.detach().numpy()
  net.eval()
  variables, _, _ = compressai_import.convert(args.arch, state)
  model = models.build(args.arch, N, M)
  forward = jax.jit(lambda v, x: model.apply(v, x, training=False))

  analysis = jax.jit(lambda v, x: model.apply(v, x, method=model.analysis))
  hyper = jax.jit(lambda v, z: model.apply(v, z, method=model.hyper_synthesis))
  synthesis = jax.jit(lambda v, y: model.apply(v, y, method=model.synthesis))
  nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()

  ok = True
  print(f"{args.arch} N={N} M={M}: max |jaxcomp - CompressAI| per stage, and rounding flips")
  for path in sorted(glob.glob(os.path.join(args.photos, "*.png"))):
    image = np.asarray(Image.open(path).convert("RGB"), np.float32)[None] / 255.0
    padded, pads = padding.pad(image)
    ours = forward(variables, image)
    y, z = (np.asarray(a) for a in analysis(variables, padded))
    with torch.no_grad():  # CompressAI's forward, one stage at a time (the same calls in order)
      xt = torch.from_numpy(np.asarray(padded)).permute(0, 3, 1, 2)
      y_ref = net.g_a(xt)
      z_ref = net.h_a(y_ref if models.ARCHS[args.arch].mean_scale else torch.abs(y_ref))
      z_hat_ref, z_lik_ref = net.entropy_bottleneck(z_ref)
      params_ref = net.h_s(z_hat_ref)
      means_ref = params_ref[:, M:] if models.ARCHS[args.arch].mean_scale else None
      y_hat_ref, y_lik_ref = net.gaussian_conditional(y_ref, params_ref[:, :M], means=means_ref)
      x_hat_ref = net.g_s(y_hat_ref)
    scales = hyper(variables, nhwc(z_hat_ref))[0]
    errors = {  # each stage fed the reference's own input: continuous, no rounding in between
        "y": np.abs(y - nhwc(y_ref)).max(),
        "z": np.abs(z - nhwc(z_ref)).max(),
        "h_s": np.abs(np.asarray(scales) - nhwc(params_ref[:, :M])).max(),
        "g_s": np.abs(np.asarray(synthesis(variables, nhwc(y_hat_ref))) - nhwc(x_hat_ref)).max(),
    }
    # End to end: equal wherever both sides round y (and z) the same way; a flip is legitimate only
    # where y sits within float rounding of a .5 boundary.
    means = hyper(variables, ours["z_hat"])[1]
    offset_ref = nhwc(means_ref) if means_ref is not None else 0
    offset = np.asarray(means) if models.ARCHS[args.arch].mean_scale else 0
    # ours["y_hat"] - offset is an integer up to float error: recover the forward pass's integers.
    flips = np.round(np.asarray(ours["y_hat"]) - offset) != np.round(nhwc(y_hat_ref) - offset_ref)
    frac = np.abs((nhwc(y_ref) - offset_ref) % 1.0 - 0.5)
    boundary_ok = bool(np.all(frac[flips] < 1e-4))
    same = ~np.any(flips)
    end_to_end = {
        "x_hat": np.abs(np.asarray(ours["x_hat"]) - padding.crop(nhwc(x_hat_ref), pads)).max(),
        "lik_y": np.abs(np.asarray(ours["likelihoods"]["y"]) - nhwc(y_lik_ref))[~flips].max(),
        "lik_z": np.abs(np.asarray(ours["likelihoods"]["z"]) - nhwc(z_lik_ref)).max(),
    }
    # Judged: g_s and the likelihoods (the quantities). y, z and h_s are informative:
    # their float32 differences are what rounding flips and (mean-scale) y_hat offsets come from.
    stage_ok = max(errors["g_s"], end_to_end["lik_z"], end_to_end["lik_y"]) <= args.tolerance and \
        (not same or models.ARCHS[args.arch].mean_scale or end_to_end["x_hat"] <= args.tolerance)
    ok &= stage_ok and boundary_ok
    print(f"  {os.path.basename(path):<18} " + " ".join(f"{k} {v:.1e}" for k, v in errors.items()) +
          " | " + " ".join(f"{k} {v:.1e}" for k, v in end_to_end.items()) +
          f" | flips {int(flips.sum())}/{flips.size}" + ("" if boundary_ok else " NOT AT A BOUNDARY"))
  print("parity holds" if ok else "parity FAILED", f"(tolerance {args.tolerance:g} on g_s, lik_y "
        "without flipped elements, lik_z, and end-to-end x_hat of scale-only models without flips; "
        "mean-scale y_hat = round(y - mu) + mu carries mu's float error into x_hat)")
  return 0 if ok else 1


if __name__ == "__main__":
  sys.exit(main())
