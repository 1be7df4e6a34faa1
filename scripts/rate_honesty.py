"""Rate honesty on full photos: real .jxc size vs the model's estimate -sum log2 likelihoods.

    python scripts/rate_honesty.py [--model DIR] [--photos DIR] [--coder constriction|tfc]

Without --model it exports the calibrated 128/192 test model (tests/coding_models.py) to a
temporary directory. Prints one line per photo and a JSON summary as the last line; exits 1 if
any photo's real size (without the fixed 48-byte header) is more than 1% away from the estimate.
"""

import argparse
import glob
import json
import os
import sys
import tempfile

import jax
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from jaxcomp.codec import export, models  # pylint: disable=wrong-import-position
from jaxcomp.coding import compression, container  # pylint: disable=wrong-import-position


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="exported model directory (default: 128/192 test model)")
  parser.add_argument("--photos", default=os.path.join(ROOT, "..", "shared", "data", "photos"))
  parser.add_argument("--coder", default="constriction", choices=sorted(compression.BACKENDS))
  parser.add_argument("--tolerance", type=float, default=0.01)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    model_dir = args.model
    if model_dir is None:
      import coding_models  # pylint: disable=g-import-not-at-top
      model_dir = coding_models.export_model(os.path.join(tmp, "model"), N=128, M=192)
    model, variables, _ = export.load(model_dir)
    estimate = jax.jit(
        lambda x: models.rate_bits(model.apply(variables, x, training=False)["likelihoods"]))
    cm = compression.CodingModel(model_dir)
    rows = []
    for path in sorted(glob.glob(os.path.join(args.photos, "*.png"))):
      image = np.asarray(Image.open(path).convert("RGB"))
      est = float(estimate(image[None].astype(np.float32) / 255.0)[0])
      data = compression.compress(cm, image[None], backend=args.coder)[0]
      real = 8 * (len(data) - container.OVERHEAD_BYTES)
      pixels = image.shape[0] * image.shape[1]
      rows.append({"photo": os.path.basename(path), "estimated_bpp": est / pixels,
                   "real_bpp": 8 * len(data) / pixels, "gap": real / est - 1})
      print(f"{rows[-1]['photo']:20s} estimated {est / pixels:.4f} bpp, file "
            f"{8 * len(data) / pixels:.4f} bpp ({len(data)} bytes), streams vs estimate "
            f"{100 * (real / est - 1):+.3f}%")
  worst = max(abs(r["gap"]) for r in rows)
  print(json.dumps({"photos": len(rows), "max_abs_gap": worst, "coder": args.coder}))
  return 0 if rows and worst <= args.tolerance else 1


if __name__ == "__main__":
  sys.exit(main())
