"""Gradient-scale ratios that set the fine-tune lambdas in configs/finetune.py.

For a distortion D, the fine-tune lambda at quality q is lambda_MSE(q) * r_D with
r_D = median ||d(255^2 MSE)/d x_hat|| / ||dD/d x_hat|| over crops of photos compressed with JPEG to
PSNRs spanning CompressAI's MSE models (27.6 .. 40.6 dB on Kodak): at the MSE model's operating
point the fine-tune then starts with the same push on x_hat as MSE training had, and the rate
term keeps its weight. JPEG's artifacts are not a learned codec's: the printed ratio relative to
MS-SSIM's (r_D / r_ms_ssim) is what configs/finetune.py uses, anchored to CompressAI's published
MS-SSIM lambdas (2.40 .. 220, a ratio of 1222 .. 1333 to the MSE lambdas).

    PYTHONPATH=. python scripts/calibrate_finetune_lambdas.py /work/shared/data/photos
"""

import glob
import io
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxcomp.metrics import registry
from jaxcomp.train import step

JPEG_QUALITIES = (8, 15, 30, 50, 75, 90, 95)
PSNR_RANGE = (27.0, 41.0)  # CompressAI's MSE hyperprior models on Kodak, q1 .. q8
CROP = 256


def crops(folder):
  for path in sorted(glob.glob(f"{folder}/*.png"))[:6]:
    image = np.asarray(Image.open(path).convert("RGB"))
    yield image[:CROP, :CROP]
    yield image[-CROP:, -CROP:]


def jpeg(image, quality):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return np.asarray(Image.open(buffer).convert("RGB"))


def grad_norm(fn, params, x, x_hat):
  g = jax.grad(lambda y: jnp.sum(fn(params, x, y)))(x_hat)
  return float(jnp.sqrt(jnp.sum(g**2)))


def main(folder):
  names = sys.argv[2:] or ["ssim", "ms_ssim", "gmsd", "lpips", "dists"]
  metrics = {n: registry.loss(n) for n in names}
  ratios = {n: [] for n in names}
  psnrs = []
  for image in crops(folder):
    x = jnp.asarray(image[None] / 255.0, jnp.float32)
    for quality in JPEG_QUALITIES:
      x_hat = jnp.asarray(jpeg(image, quality)[None] / 255.0, jnp.float32)
      psnr = float(10 * jnp.log10(1 / jnp.mean((x - x_hat) ** 2)))
      if not PSNR_RANGE[0] <= psnr <= PSNR_RANGE[1]:
        continue
      psnrs.append(psnr)
      mse = grad_norm(step.mse_distortion, None, x, x_hat)
      for name, metric in metrics.items():
        ratios[name].append(mse / grad_norm(metric.loss_fn, metric.params, x, x_hat))
  print(f"PSNR range {min(psnrs):.1f} .. {max(psnrs):.1f} dB over {len(psnrs)} crops")
  anchor = np.median(ratios["ms_ssim"]) if "ms_ssim" in ratios else None
  for name, r in ratios.items():
    line = (f"{name:8s} r = {np.median(r):9.4g}  (quartiles {np.percentile(r, 25):.4g} .. "
            f"{np.percentile(r, 75):.4g})")
    if anchor:
      line += f"  r / r_ms_ssim = {np.median(r) / anchor:.3g}"
    print(line)


if __name__ == "__main__":
  main(sys.argv[1])
