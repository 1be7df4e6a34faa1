"""Writes tests/fixtures/evaluate/bdrate_reference.json: BD values from the `bjontegaard` package.

Runs in the reference environment, which has bjontegaard 1.3.0 (jaxcomp does not depend on it):

    ~/.cache/jaxcomp-refenv/bin/python scripts/make_bdrate_fixtures.py \
        --anchors ../shared/reference/anchors

Cases, each for the three interpolation methods: the package's README example (x265 presets)
and the other two cases of its example_usage.py; pairs of CompressAI's Kodak result files
(real-bitstream learned codecs, paper curves, VTM/HM/BPG/AV1/JPEG/JPEG 2000/WebP) on PSNR, MS-SSIM
and MS-SSIM in dB; one distance case (1 - MS-SSIM, lower is better), referenced as the package's
result on the negated distance. Every case stores its points, so the tests need neither the
package nor the anchor files.
"""

import argparse
import json
import os
import warnings

import bjontegaard
import numpy as np

METHODS = ("cubic", "pchip", "akima")

README = {
    "rate_anchor": [9487.76, 4593.60, 2486.44, 1358.24],
    "quality_anchor": [40.037, 38.615, 36.845, 34.851],
    "rate_test": [9787.80, 4469.00, 2451.52, 1356.24],
    "quality_test": [40.121, 38.651, 36.970, 34.987],
}

# The package repository's example_usage.py, test cases 2 (high rates) and 3 (6 points).
EXAMPLE_2 = {
    "rate_anchor": [82472.76, 26875.24, 9487.76, 4593.6],
    "quality_anchor": [43.825, 41.404, 40.037, 38.615],
    "rate_test": [99896.96, 33952.04, 9787.8, 4469.0],
    "quality_test": [44.731, 41.875, 40.121, 38.651],
}
EXAMPLE_3 = {
    "rate_anchor": [82472.76, 26875.24, 9487.76, 4593.6, 3600, 2900],
    "quality_anchor": [43.825, 41.404, 40.037, 38.615, 36.5, 35.1],
    "rate_test": [99896.96, 33952.04, 9787.8, 4469.0, 4040, 3300],
    "quality_test": [44.731, 41.875, 40.121, 38.651, 37, 36.5],
}

# (anchor file, test file, results key)
PAIRS = (
    ("jpeg.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("bpg_444_x265_ycbcr.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("vtm.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("hm.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("av1.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("paper-bmshj2018-hyperprior.json", "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("compressai-mbt2018-mean_mse_cpu.json", "compressai-bmshj2018-hyperprior_mse_cpu.json",
     "psnr-rgb"),
    ("compressai-cheng2020-anchor_mse_cpu.json", "compressai-bmshj2018-hyperprior_mse_cpu.json",
     "psnr-rgb"),
    ("compressai-bmshj2018-factorized_mse_cpu.json",
     "compressai-bmshj2018-hyperprior_mse_cpu.json", "psnr-rgb"),
    ("jpeg.json", "webp.json", "psnr-rgb"),
    ("jpeg.json", "jpeg2000.json", "psnr-rgb"),
    ("vtm.json", "paper-minnen2020-cc10_mse.json", "psnr-rgb"),
    ("jpeg.json", "compressai-bmshj2018-hyperprior_ms-ssim_cpu.json", "ms-ssim-rgb"),
    ("webp.json", "compressai-mbt2018_ms-ssim_cpu.json", "ms-ssim-rgb"),
    ("paper-minnen2018-checkerboard_ms-ssim.json", "paper-elic2022_ms-ssim.json",
     "ms-ssim-db-rgb"),
)


def reference(rate_anchor, quality_anchor, rate_test, quality_test, method):
  """The package's (bd_rate, bd_psnr, warned) with require_matching_points=False."""
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    rate = bjontegaard.bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, method,
                               require_matching_points=False)
    quality = bjontegaard.bd_psnr(rate_anchor, quality_anchor, rate_test, quality_test, method,
                                  require_matching_points=False)
  return float(rate), float(quality), bool(caught)


def case(name, method, points, higher_is_better=True):
  sign = 1.0 if higher_is_better else -1.0
  rate, quality, warned = reference(
      points["rate_anchor"], sign * np.asarray(points["quality_anchor"]),
      points["rate_test"], sign * np.asarray(points["quality_test"]), method)
  return dict(name=name, method=method, higher_is_better=higher_is_better, **points,
              bd_rate=rate, bd_quality=quality, warns=warned)


def curve_points(anchors, anchor_file, test_file, key):
  with open(os.path.join(anchors, anchor_file)) as f:
    anchor = json.load(f)["results"]
  with open(os.path.join(anchors, test_file)) as f:
    test = json.load(f)["results"]
  return {"rate_anchor": anchor["bpp"], "quality_anchor": anchor[key],
          "rate_test": test["bpp"], "quality_test": test[key]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--anchors", required=True, help="folder of CompressAI's Kodak JSON files")
  parser.add_argument("--out", default=os.path.normpath(os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "evaluate",
      "bdrate_reference.json")))
  args = parser.parse_args()
  cases = [case("readme", m, README) for m in METHODS]
  cases += [case("example 2 (high rates)", m, EXAMPLE_2) for m in METHODS]
  cases += [case("example 3 (6 points)", m, EXAMPLE_3) for m in METHODS]
  for anchor_file, test_file, key in PAIRS:
    points = curve_points(args.anchors, anchor_file, test_file, key)
    name = f"{anchor_file[:-5]} -> {test_file[:-5]} ({key})"
    cases += [case(name, m, points) for m in METHODS]
  points = curve_points(args.anchors, "jpeg.json",
                        "compressai-bmshj2018-hyperprior_ms-ssim_cpu.json", "ms-ssim-rgb")
  points = {k: (v if k.startswith("rate") else [1.0 - q for q in v]) for k, v in points.items()}
  cases += [case("jpeg -> hyperprior_ms-ssim (1 - ms-ssim, lower is better)", m, points,
                 higher_is_better=False) for m in METHODS]
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:  # one case per line
    f.write(f'{{"package": "bjontegaard {bjontegaard.__version__}", "cases": [\n')
    f.write(",\n".join(json.dumps(c) for c in cases))
    f.write("\n]}\n")
  print(f"{len(cases)} cases -> {args.out}")


if __name__ == "__main__":
  main()
