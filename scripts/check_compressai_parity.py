"""Evaluation-mode parity of jaxcomp with CompressAI on whole photos, side by side in one process.

Needs jaxcomp, torch and compressai in the same interpreter. Uses a real CompressAI checkpoint
(`--checkpoint`) or, by default, the deterministic test weights of tests/parity_weights.py:

    python scripts/check_compressai_parity.py --photos ../shared/data/photos \
        [--arch bmshj2018-hyperprior] [--channels 128,192] [--checkpoint FILE]

Prints the max |difference| of x_hat and of the y/z likelihoods per photo; exits 1 if any
exceeds --tolerance (default 1e-4).
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

  worst = 0.0
  print(f"{args.arch} N={N} M={M}: max |jaxcomp - CompressAI|")
  for path in sorted(glob.glob(os.path.join(args.photos, "*.png"))):
    image = np.asarray(Image.open(path).convert("RGB"), np.float32)[None] / 255.0
    ours = forward(variables, image)
    padded, pads = padding.pad(image)
    with torch.no_grad():
      ref = net(torch.from_numpy(np.asarray(padded)).permute(0, 3, 1, 2))
    nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()
    errors = {
        "x_hat": np.abs(np.asarray(ours["x_hat"]) - np.asarray(padding.crop(nhwc(ref["x_hat"]), pads))).max(),
        "y": np.abs(np.asarray(ours["likelihoods"]["y"]) - nhwc(ref["likelihoods"]["y"])).max(),
        "z": np.abs(np.asarray(ours["likelihoods"]["z"]) - nhwc(ref["likelihoods"]["z"])).max(),
    }
    worst = max(worst, *errors.values())
    print(f"  {os.path.basename(path):<20} " + "  ".join(f"{k} {v:.2e}" for k, v in errors.items()))
  print(f"worst {worst:.2e} (tolerance {args.tolerance:g})")
  return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
  sys.exit(main())
