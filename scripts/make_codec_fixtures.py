"""Writes tests/fixtures/codec/*.npz: CompressAI's evaluation-mode outputs for parity tests.

Runs in the reference environment (CompressAI 1.2.8, PyTorch CPU; ../shared/refenv.sh builds it):

    PYTHONPATH=../shared/refenv/stub:../shared/refenv ~/.cache/jaxcomp-refenv/bin/python \
        scripts/make_codec_fixtures.py --photos ../shared/data/photos

For each architecture and (N, M) it loads the deterministic weights of tests/parity_weights.py
into the CompressAI model, fits the entropy bottleneck's quantiles with CompressAI's own
bisection (`_update_quantiles`), and stores, for a crop of a real photo: the input crop (uint8),
the quantiles, x_hat and the y/z likelihoods. One case uses a size that is not a multiple of 64,
padded and cropped as `compressai.utils.eval_model` does.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from compressai.entropy_models import GaussianConditional
from compressai.layers import GDN
from compressai.models import MeanScaleHyperprior, ScaleHyperprior
from compressai.models.utils import deconv

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import parity_weights  # pylint: disable=g-import-not-at-top,wrong-import-position

CASES = [  # name, arch, N, M, photo, (top, left, height, width)
    ("hyperprior_128_192", "bmshj2018-hyperprior", 128, 192, "kite.png", (200, 300, 64, 128)),
    ("hyperprior_192_320", "bmshj2018-hyperprior", 192, 320, "autumn.png", (100, 400, 64, 128)),
    ("mean_128_192", "mbt2018-mean", 128, 192, "colorfulcups.png", (220, 200, 64, 128)),
    ("mean_192_320", "mbt2018-mean", 192, 320, "path.png", (300, 100, 64, 128)),
    ("hyperprior_128_192_odd", "bmshj2018-hyperprior", 128, 192, "summer_1am.png",
     (50, 60, 70, 100)),
]
CLASSES = {"bmshj2018-hyperprior": ScaleHyperprior, "mbt2018-mean": MeanScaleHyperprior}


def pad_like_eval_model(x, p=64):
  """compressai.utils.eval_model's centred zero padding."""
  h, w = x.size(2), x.size(3)
  new_h, new_w = (h + p - 1) // p * p, (w + p - 1) // p * p
  left, top = (new_w - w) // 2, (new_h - h) // 2
  pads = (left, new_w - w - left, top, new_h - h - top)
  return F.pad(x, pads, mode="constant", value=0), pads


def layer_fixture(path):
  """GDN, IGDN, ConvTranspose2d and Gaussian-conditional likelihoods on random inputs."""
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 16, 7, 9)).astype(np.float32) * 3
  gdn, igdn = GDN(16), GDN(16, inverse=True)
  beta = rng.uniform(0.2, 2.0, 16).astype(np.float32)
  gamma = (0.1 * np.eye(16) + 0.05 * rng.uniform(0, 1, (16, 16))).astype(np.float32)
  for layer in (gdn, igdn):
    layer.beta.data = layer.beta_reparam.init(torch.from_numpy(beta))
    layer.gamma.data = layer.gamma_reparam.init(torch.from_numpy(gamma))
  up = deconv(16, 5)
  values = np.concatenate([np.linspace(-60, 60, 241), [0.5, -0.5, 1e-3]]).astype(np.float32)
  scales = np.exp(np.linspace(np.log(0.05), np.log(300), 37)).astype(np.float32)
  vv, ss = np.meshgrid(values, scales, indexing="ij")
  gc = GaussianConditional(None)
  with torch.no_grad():
    xt = torch.from_numpy(x)
    outputs = {k: m(xt) for k, m in (("gdn", gdn), ("igdn", igdn), ("deconv", up))}
    lik = gc._likelihood(torch.from_numpy(vv), torch.from_numpy(ss))  # pylint: disable=protected-access
    lik = gc.likelihood_lower_bound(lik)
  nhwc = lambda t: t.permute(0, 2, 3, 1).numpy()
  np.savez_compressed(
      path, x=nhwc(xt), gdn_beta=gdn.beta.detach().numpy(), gdn_gamma=gdn.gamma.detach().numpy(),
      gdn=nhwc(outputs["gdn"]), igdn=nhwc(outputs["igdn"]),
      deconv_weight=up.weight.detach().numpy(), deconv_bias=up.bias.detach().numpy(),
      deconv=nhwc(outputs["deconv"]), gc_values=vv, gc_scales=ss, gc_likelihood=lik.numpy())
  print(f"layers: GDN/IGDN/deconv on {x.shape}, {vv.size} Gaussian likelihoods")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--photos", required=True)
  parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                    "fixtures", "codec"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  torch.set_num_threads(1)
  torch.manual_seed(0)
  layer_fixture(os.path.join(args.out, "layers.npz"))
  for name, arch, N, M, photo, (top, left, h, w) in CASES:
    image = np.asarray(Image.open(os.path.join(args.photos, photo)).convert("RGB"))
    crop = image[top:top + h, left:left + w]
    model = CLASSES[arch](N, M)
    state = {k: torch.from_numpy(v) for k, v in parity_weights.state_dict(arch, N, M).items()}
    # nn.Module's loader: CompressionModel.load_state_dict expects CDF buffers in the dict.
    torch.nn.Module.load_state_dict(model, state, strict=False)
    model.entropy_bottleneck._update_quantiles()  # pylint: disable=protected-access
    model.eval()
    x = torch.from_numpy(crop.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    x_padded, (pl, pr, pt, pb) = pad_like_eval_model(x)
    with torch.no_grad():
      out = model(x_padded)
    x_hat = out["x_hat"][:, :, pt:x_padded.size(2) - pb, pl:x_padded.size(3) - pr]
    nhwc = lambda t: t.permute(0, 2, 3, 1).numpy().astype(np.float32)
    np.savez_compressed(
        os.path.join(args.out, f"{name}.npz"),
        arch=arch, N=N, M=M, image=crop,
        quantiles=model.entropy_bottleneck.quantiles.detach().numpy()[:, 0, :],
        x_hat=nhwc(x_hat), y_likelihoods=nhwc(out["likelihoods"]["y"]),
        z_likelihoods=nhwc(out["likelihoods"]["z"]))
    bits = sum(float((-torch.log2(l)).sum()) for l in out["likelihoods"].values())
    print(f"{name}: {arch} N={N} M={M} {photo} {h}x{w}, {bits / (h * w):.3f} bpp (estimated)")


if __name__ == "__main__":
  main()
