"""How much PSNR can a model gain inside the salient region by moving bits there? (issue #9)

An upper bound for saliency-driven bit allocation with a given exported model: its transforms are
kept and only the quantization steps change, chosen by an oracle that knows the saliency map S
(and, unlike a real decoder, tells the decoder):

    step = model_step * c * (S_block / mean S_block) ^ -gamma        per 16x16 latent block

model_step is the model's own step (h_q, `adaptive_step`) or 1. gamma = 0 moves the model along
its rate-distortion curve (c scales all steps); gamma > 0 quantizes salient blocks more finely.
For each gamma > 0 the script interpolates the gamma = 0 curve (linear in log bpp) at that point's
rate, so the oracle allocations are compared with the model's own at matched total rate, and it
reports the ceiling: PSNR inside the region with very fine steps everywhere (c = 0.05), i.e. what
the synthesis transform can reconstruct there at any rate. Rates come from the eval-mode
likelihoods (`jaxcomp.codec.ratemap`; within 1 % of real files), the region and PSNRs from
`jaxcomp.evaluate.saliency_stats` as `jaxcomp eval --saliency` computes them; values are means
over the images.

    python scripts/saliency_headroom.py --model models/mse-tiny --images photos/ [--saliency sdsp]

If the ceiling is only a few tenths of a dB above the model's PSNR inside the region, no bit
allocation -- learned or oracle -- can raise PSNR there by more than that at this model size.
"""

import argparse
import glob
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing

STEP_SCALES = (0.6, 0.8, 1.0, 1.25, 1.6)
CEILING_SCALE = 0.05
GAMMAS = (0.5, 1.0)
COLUMNS = ("bpp", "salient_bits_share", "psnr_salient", "psnr_nonsalient")


class Oracle:
  """A model's latents for a set of images, re-quantized with oracle steps."""

  def __init__(self, model_dir, paths, saliency_spec, fraction):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from jaxcomp import saliency  # pylint: disable=g-import-not-at-top
    from jaxcomp.codec import export, models, padding  # pylint: disable=g-import-not-at-top
    from jaxcomp.evaluate import saliency_stats  # pylint: disable=g-import-not-at-top

    self.jnp, self.padding, self.stats = jnp, padding, saliency_stats
    model, variables, _ = export.load(model_dir)
    saliency_model = saliency.load(saliency_spec)
    encoder_saliency = export.saliency_model(model_dir, export.read_config(model_dir))
    analysis = jax.jit(lambda x, s: model.apply(variables, x, s, method=model.analysis))
    hyper = jax.jit(lambda z: model.apply(
        variables, z, method=lambda m, z: (m.entropy_bottleneck(z, False),
                                           m.hyper_synthesis(m.entropy_bottleneck(z, False)[0]))))
    self.synthesis = jax.jit(lambda y: model.apply(variables, y, method=model.synthesis))
    self.images = []
    for path in paths:
      with Image.open(path) as img:
        original = np.asarray(img.convert("RGB"))
      x = jnp.asarray(original[None].astype(np.float32) / 255.0)
      x_padded, pads = padding.pad(x, models.DOWNSAMPLING)
      s = saliency_model.apply(saliency_model.params, x)
      s_padded = padding.pad(s[..., None], models.DOWNSAMPLING)[0][..., 0]
      s_encoder = None
      if encoder_saliency is not None:
        s_encoder = padding.pad(encoder_saliency.apply(encoder_saliency.params, x)[..., None],
                                models.DOWNSAMPLING)[0][..., 0]
      y, z = analysis(x_padded, s_encoder)
      (_, z_lik), (scales, means, steps) = hyper(z)
      block = x_padded.shape[1] // y.shape[1]
      h, w = y.shape[1:3]
      s_block = s_padded[0].reshape(h, block, w, block).mean(axis=(1, 3))[None, ..., None]
      self.images.append({
          "original": original, "pads": pads, "y": y, "z_lik": z_lik, "scales": scales,
          "means": means, "steps": 1.0 if steps is None else steps,
          "relative_saliency": s_block / jnp.mean(s_block),
          "region": saliency_stats.salient_region(np.asarray(s[0]), fraction)})

  def point(self, gamma, scale):
    """Mean (bpp, salient_bits_share, psnr_salient, psnr_nonsalient) over the images."""
    from jaxcomp.codec import gaussian_conditional, ratemap  # pylint: disable=g-import-not-at-top

    jnp = self.jnp
    rows = []
    for im in self.images:
      step = im["steps"] * scale * im["relative_saliency"] ** -gamma
      offset = 0.0 if im["means"] is None else im["means"]
      q = jnp.round((im["y"] - offset) / step)
      y_lik = gaussian_conditional.likelihood(q, im["scales"] / step)
      x_hat = self.padding.crop(self.synthesis(q * step + offset), im["pads"])
      decoded = np.round(np.clip(np.asarray(x_hat[0]), 0, 1) * 255).astype(np.uint8)
      rate_map = np.asarray(ratemap.rate_map({"y": y_lik, "z": im["z_lik"]},
                                             im["original"].shape[:2]))[0]
      rates = self.stats.rates(rate_map, im["region"])
      quality = self.stats.quality(im["original"], decoded, im["region"])
      rows.append((float(rate_map.mean()), rates["salient_bits_share"],
                   quality["psnr_salient"], quality["psnr_nonsalient"]))
    return np.mean(np.asarray(rows), axis=0)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", required=True, help="exported model folder")
  parser.add_argument("--images", required=True, help="folder of PNG images")
  parser.add_argument("--saliency", default="sdsp", help="saliency model spec (default sdsp)")
  parser.add_argument("--fraction", type=float, default=0.25, help="salient region share")
  args = parser.parse_args()
  paths = sorted(glob.glob(os.path.join(args.images, "*.png")))
  if not paths:
    sys.exit(f"error: no PNG images in {args.images}")
  oracle = Oracle(args.model, paths, args.saliency, args.fraction)

  curve = np.asarray([oracle.point(0.0, c) for c in STEP_SCALES])
  curve = curve[np.argsort(curve[:, 0])]
  print(f"{args.model} on {len(paths)} images; salient region = top {args.fraction:.0%} of "
        f"{args.saliency}")
  print(f"{'':26s}" + "".join(f"{k:>20s}" for k in COLUMNS))
  for c, row in zip(sorted(STEP_SCALES, reverse=True), curve):
    print(f"{'model steps x ' + format(c, 'g'):26s}" + "".join(f"{v:20.4f}" for v in row))
  for gamma in GAMMAS:
    for c in (0.8, 1.0, 1.25):
      row = oracle.point(gamma, c)
      if not curve[0, 0] <= row[0] <= curve[-1, 0]:
        continue
      matched = [np.interp(np.log(row[0]), np.log(curve[:, 0]), curve[:, k]) for k in range(4)]
      print(f"{'oracle gamma ' + format(gamma, 'g') + ' x ' + format(c, 'g'):26s}"
            + "".join(f"{v:20.4f}" for v in row) + "   vs the model at this rate: "
            + " ".join(f"{row[k] - matched[k]:+.4f}" for k in range(1, 4)))
  ceiling = oracle.point(0.0, CEILING_SCALE)
  print(f"ceiling (steps x {CEILING_SCALE:g}, {ceiling[0]:.3f} bpp): PSNR inside "
        f"{ceiling[2]:.2f} dB, outside {ceiling[3]:.2f} dB")


if __name__ == "__main__":
  main()
