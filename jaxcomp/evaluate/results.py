"""Rate-distortion results files in CompressAI's layout, plus per-image values.

One file holds one codec's curve (one point per model or quality setting):

    {"name": "jaxcomp-mse", "description": "...",
     "results": {"bpp": [p0, p1, ...], "psnr-rgb": [...], "ms-ssim-rgb": [...], ...,
                 "encoding_time": [...], "decoding_time": [...]},
     "points": ["models/q1", "models/q2", ...],
     "per_image": {"kodim01.png": {"bpp": [...], "psnr-rgb": [...], ...}, ...},
     "errors": [{"image": "x.png", "point": "models/q2", "error": "..."}, ...]}

`name`, `description` and `results` are exactly CompressAI's (`compressai.utils.eval_model`,
results/image/kodak/*.json): `results[key][i]` is the mean over the images of point i. The
other keys are jaxcomp's additions, which CompressAI's plotting ignores: `points` labels the
points, `per_image[image][key][i]` is one image's value (null where that image failed at that
point) and `errors` lists what failed. An image that failed at any point of the curve is left
out of every mean of the curve, so all points average the same images.

Metric keys: a registered metric `name` is stored as `metric_key(name)`: 'psnr' -> 'psnr-rgb',
'ms_ssim' -> 'ms-ssim-rgb', 'lpips' -> 'lpips-rgb' (all computed on RGB in [0, 1]). Times are in
seconds per image. With a saliency map (`jaxcomp eval --saliency`) the salient-region keys of
`saliency_stats` are added: 'psnr_salient' and 'psnr_nonsalient' are quality keys like the
metrics; 'salient_bits_share', 'bpp_salient' and 'bpp_nonsalient' describe the rate and are
neither plotted nor offered as qualities. Such files also record the region's definition:
"salient_region": {"saliency": "sdsp", "fraction": 0.25}.
"""

import json
import math
import warnings

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.evaluate import saliency_stats
from jaxcomp.fileio import atomic_path
from jaxcomp.metrics import registry

RATE_KEY = "bpp"
TIME_KEYS = ("encoding_time", "decoding_time")
# Keys of a results table that are not qualities (not plotted against bpp, not BD-rate metrics).
NON_QUALITY_KEYS = frozenset({RATE_KEY, *TIME_KEYS, *saliency_stats.RATE_KEYS})
MS_SSIM_DB_KEY = "ms-ssim-db-rgb"
# Metric directions known without importing the metrics registry (which imports jax).
LOWER_IS_BETTER = frozenset({"mse", "lpips", "dists", "gmsd", "nlpd", "dpl"})
HIGHER_IS_BETTER = frozenset({"psnr", "ssim", "ms_ssim", "ms_ssim_db", "fsim", "vsi", "vif",
                              "iw_ssim", "vmaf", *saliency_stats.QUALITY_KEYS})


def metric_key(name):
  """Registry metric name -> results key: 'ms_ssim' -> 'ms-ssim-rgb', 'dpl:/x' -> 'dpl-rgb'."""
  return name.partition(":")[0].replace("_", "-") + "-rgb"


def metric_name(key):
  """Results key -> the metric's base name: 'ms-ssim-rgb' -> 'ms_ssim', 'lpips' -> 'lpips'."""
  base = key[:-len("-rgb")] if key.endswith("-rgb") else key
  return base.partition(":")[0].replace("-", "_")


def higher_is_better(key):
  """Whether larger values of results key `key` (or metric name) mean better quality.

  Known names are answered directly; otherwise a registered metric's `kind` decides
  ('distance' = lower is better). Other keys are taken as higher-is-better, with a warning.
  """
  name = metric_name(key)
  if name in LOWER_IS_BETTER or name in HIGHER_IS_BETTER:
    return name not in LOWER_IS_BETTER

  try:
    return registry.get(name).kind != "distance"
  except UserError:
    warnings.warn(f"'{key}' is not a known metric; taking higher values as better (use "
                  "--lower-is-better otherwise)", stacklevel=2)
    return True


def curve_document(name, description, points, means, per_image, errors):
  """The JSON object of one curve (see the module docstring).

  Args:
    name, description: strings.
    points: [P] point labels.
    means: {key: [P] floats} including 'bpp'.
    per_image: {image name: {key: [P] float or None}}.
    errors: [{'image': ..., 'point': ..., 'error': ...}] (point absent for unreadable images).
  """
  return {"name": name, "description": description,
          "results": {k: [_number(v) for v in values] for k, values in means.items()},
          "points": list(points),
          "per_image": {image: {k: [_number(v) for v in values] for k, values in table.items()}
                        for image, table in per_image.items()},
          "errors": list(errors)}


def _number(value):
  return None if value is None else float(value)


def write(path, document):
  """Writes one curve's JSON object atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(document, f, indent=1)
      f.write("\n")


def load(path):
  """Reads a results file (CompressAI's or jaxcomp's); UserError unless it has results.bpp."""
  try:
    with open(path) as f:
      document = json.load(f)
  except json.JSONDecodeError as e:
    raise UserError(f"{path}: not a JSON file ({e})") from None
  if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
    raise UserError(f"{path}: not a results file (no 'results' object)")
  if RATE_KEY not in document["results"]:
    raise UserError(f"{path}: its results have no '{RATE_KEY}'")
  document.setdefault("name", path)
  return document


def quality_keys(document):
  """The quality keys a curve offers (results keys but `NON_QUALITY_KEYS`, plus derived ones)."""
  keys = [k for k in document["results"] if k not in NON_QUALITY_KEYS]
  if "ms-ssim-rgb" in keys and MS_SSIM_DB_KEY not in keys:
    keys.append(MS_SSIM_DB_KEY)
  return keys


def resolve_key(document, key, where="results"):
  """Maps a results key or a registered metric name to a key of this document.

  'psnr' -> 'psnr-rgb', 'ms_ssim' -> 'ms-ssim-rgb'; keys present verbatim win. UserError listing
  the available keys when nothing matches.
  """
  available = quality_keys(document)
  for candidate in (key, metric_key(key)):
    if candidate in available:
      return candidate
  raise UserError(f"{where}: no '{key}' values (available: {', '.join(available) or 'none'})")


def _derived(table, key):
  if key == MS_SSIM_DB_KEY and key not in table and "ms-ssim-rgb" in table:
    return [None if v is None else -10.0 * math.log10(max(1.0 - v, 1e-12))
            for v in table["ms-ssim-rgb"]]
  return table[key]


def curve(table, key):
  """(bpp [P], quality [P]) float64 arrays of one results table, failed (null) points dropped.

  Args:
    table: a document's 'results', or one image's entry of 'per_image'.
    key: a key of `quality_keys` (already resolved).
  """
  rates, values = table[RATE_KEY], _derived(table, key)
  if len(rates) != len(values):
    raise UserError(f"'{RATE_KEY}' has {len(rates)} values but '{key}' has {len(values)}")
  pairs = [(r, v) for r, v in zip(rates, values) if r is not None and v is not None]
  return (np.array([p[0] for p in pairs], np.float64), np.array([p[1] for p in pairs], np.float64))
