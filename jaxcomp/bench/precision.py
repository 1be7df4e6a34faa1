"""`jaxcomp bench precision`: the codec with bfloat16 transforms against float32, same weights.

    jaxcomp bench precision [--model DIR] [--image PNG | --size H W] [--repeats 5] [--json]

Runs the model's inference forward pass (rounded latents, `training=False`) twice on the same
variables and image: transforms in float32, and in bfloat16 (`Hyperprior.dtype`; the entropy
bottleneck and Gaussian conditional stay float32). Reports the rate of each (bits per pixel from
the likelihoods), the relative rate difference, each reconstruction's PSNR against the input, the
PSNR of the bfloat16 reconstruction against the float32 one, and the forward time of each (median
after compilation). Without --model an untrained model is used: its rates are not those of a
trained codec, pass one for figures that mean something.

Stated tolerances (RATE_TOLERANCE, PSNR_TOLERANCE_DB, AGREEMENT_PSNR_DB), checked by
tests/test_bench_precision.py on calibrated test models (both architectures, photo crops): the rate
within 1% (relative) of float32, the reconstruction's PSNR within 0.1 dB of float32's, and the two
reconstructions at least 40 dB PSNR from each other. Measured on the CPU backend: rates within
0.01%, PSNR within 0.003 dB, reconstructions 49-62 dB apart.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp import images
from jaxcomp.bench import inputs, timing
from jaxcomp.codec import export
from jaxcomp.codec import models

RATE_TOLERANCE = 0.01  # relative
PSNR_TOLERANCE_DB = 0.1
AGREEMENT_PSNR_DB = 40.0


def add_arguments(parser):
  parser.add_argument("--model", help="exported model directory (default: an untrained model)")
  parser.add_argument("--arch", default="bmshj2018-hyperprior", choices=list(models.ARCHS),
                      help="architecture of the untrained model")
  parser.add_argument("--image", help="PNG to code (default: a synthetic image of --size)")
  parser.add_argument("--size", type=int, nargs=2, default=(512, 768), metavar=("H", "W"))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def psnr(a, b):
  """PSNR in dB of two [..] arrays in [0, 1] (inf when equal)."""
  mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
  return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def forward_fn(model):
  """Jitted inference forward pass: (variables, x) -> (x_hat clipped to [0, 1], bits [B])."""

  def forward(variables, x):
    out = model.apply(variables, x, training=False)
    return jnp.clip(out["x_hat"], 0, 1), models.rate_bits(out["likelihoods"])

  return jax.jit(forward)


def compare(model, variables, x, repeats=1):
  """float32 vs bfloat16 transforms of `model` on `variables` and images x [B, H, W, 3] in [0, 1].

  Returns:
    dict: bpp_float32, bpp_bfloat16, rate_rel_diff, psnr_float32, psnr_bfloat16, psnr_diff_db,
    agreement_psnr_db (bfloat16 reconstruction against the float32 one), and the median forward
    time of each (forward_float32_s, forward_bfloat16_s) with their compile times.
  """
  pixels = x.shape[0] * x.shape[1] * x.shape[2]
  result = {}
  x_hats = {}
  for dtype in ("float32", "bfloat16"):
    fn = forward_fn(model.clone(dtype=jnp.dtype(dtype)))
    measured = timing.time_call(fn, variables, x, repeats=repeats)
    x_hat, bits = jax.device_get(fn(variables, x))
    x_hats[dtype] = x_hat
    result[f"bpp_{dtype}"] = float(np.sum(bits)) / pixels
    result[f"psnr_{dtype}"] = psnr(x, x_hat)
    result[f"forward_{dtype}_s"] = measured["median_s"]
    result[f"forward_{dtype}_min_s"] = measured["min_s"]
    result[f"forward_{dtype}_max_s"] = measured["max_s"]
    result[f"compile_{dtype}_s"] = measured["first_s"] - measured["median_s"]
  result["rate_rel_diff"] = abs(result["bpp_bfloat16"] - result["bpp_float32"]) / result["bpp_float32"]
  result["psnr_diff_db"] = abs(result["psnr_bfloat16"] - result["psnr_float32"])
  result["agreement_psnr_db"] = psnr(x_hats["float32"], x_hats["bfloat16"])
  return result


def run(args):
  if args.model:
    model, variables, _ = export.load(args.model)
  else:
    model, variables = inputs.untrained_variables(args.arch)
  if args.image:
    pixels = images.read(args.image)[0]
  else:
    pixels = inputs.synthetic_image(*args.size)
  x = (np.asarray(pixels, np.float32) / 255.0)[None]
  result = {"benchmark": "precision", "model": args.model or f"untrained {args.arch}",
            "height": x.shape[1], "width": x.shape[2], "machine": timing.machine(),
            **compare(model, variables, x, args.repeats)}
  print(f"{x.shape[1]}x{x.shape[2]}, inference forward pass, float32 vs bfloat16 transforms")
  for dtype in ("float32", "bfloat16"):
    print(f"{dtype:<9} {result[f'bpp_{dtype}']:.4f} bpp  {result[f'psnr_{dtype}']:.2f} dB  "
          f"{result[f'forward_{dtype}_s']:.4f} s")
  print(f"rate differs by {100 * result['rate_rel_diff']:.3f}%, PSNR by "
        f"{result['psnr_diff_db']:.3f} dB; reconstructions agree to "
        f"{result['agreement_psnr_db']:.1f} dB PSNR")
  if args.json:
    print(json.dumps(result))
  return 0
