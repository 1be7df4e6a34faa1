"""BD values between two results files, on the averaged curves or per image then averaged.

Two ways to summarise a test set, which generally give different numbers:
  'curve' (default): BD of the mean curves, `results[bpp]` against `results[key]` -- what
    CompressAI-style comparisons and published results files allow.
  'per-image': BD of each image's own curve (`per_image`, jaxcomp's results files only), then the
    arithmetic mean of the BD-rates (percent) and of the BD-qualities over the images both files
    have. Images whose curves do not overlap are left out and counted.
"""

import dataclasses
import warnings

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.evaluate import bdrate, results

MODES = ("curve", "per-image")


@dataclasses.dataclass(frozen=True)
class Comparison:
  """BD values of a test results file against an anchor file.

  Attributes:
    bd_rate: percent (negative = the test needs fewer bits for equal quality).
    bd_quality: in the metric's units; positive = the test is better (for a lower-is-better
      metric: the mean reduction of the distance).
    key: results key used.
    higher_is_better: the direction assumed for the key.
    images: number of images averaged ('per-image'), or None ('curve').
    skipped: images left out for lack of overlap ('per-image').
  """

  bd_rate: float
  bd_quality: float
  key: str
  higher_is_better: bool
  images: int = None
  skipped: tuple = ()


def compare(anchor, test, key, method, mode="curve", higher_is_better=None,
            min_overlap=bdrate.DEFAULT_MIN_OVERLAP):
  """BD of results document `test` against `anchor`.

  Args:
    anchor, test: results documents (`results.load`).
    key: results key or registered metric name ('psnr-rgb', 'psnr', 'lpips' ...).
    method: 'cubic', 'pchip' or 'akima'.
    mode: 'curve' or 'per-image'.
    higher_is_better: direction of the metric; None to infer it from the name.
    min_overlap: warn when curves overlap less than this fraction.

  Returns:
    `Comparison`. UserError when the data do not allow a BD value.
  """
  if mode not in MODES:
    raise UserError(f"unknown BD mode {mode!r}; choose from {', '.join(MODES)}")
  anchor_key = results.resolve_key(anchor, key, f"anchor '{anchor['name']}'")
  test_key = results.resolve_key(test, key, f"test '{test['name']}'")
  if anchor_key != test_key:
    raise UserError(f"'{key}' means '{anchor_key}' in the anchor but '{test_key}' in the test")
  if higher_is_better is None:
    higher_is_better = results.higher_is_better(anchor_key)
  if mode == "curve":
    delta = _delta(results.curve(anchor["results"], anchor_key),
                   results.curve(test["results"], test_key), method, higher_is_better, min_overlap)
    return Comparison(delta.bd_rate, delta.bd_quality, anchor_key, higher_is_better)
  return _per_image(anchor, test, anchor_key, method, higher_is_better, min_overlap)


def _delta(anchor_curve, test_curve, method, higher_is_better, min_overlap):
  try:
    return bdrate.compare(*anchor_curve, *test_curve, method, higher_is_better, min_overlap)
  except ValueError as e:
    raise UserError(str(e)) from None


def _per_image(anchor, test, key, method, higher_is_better, min_overlap):
  for document, role in ((anchor, "anchor"), (test, "test")):
    if not document.get("per_image"):
      raise UserError(f"{role} '{document['name']}' has no per-image results (only jaxcomp eval "
                      "writes them); use --mode curve")
  common = [name for name in anchor["per_image"] if name in test["per_image"]]
  if not common:
    raise UserError("the anchor and test files have no image in common")
  deltas, skipped = [], []
  for name in common:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      try:
        deltas.append(bdrate.compare(*results.curve(anchor["per_image"][name], key),
                                     *results.curve(test["per_image"][name], key),
                                     method, higher_is_better, min_overlap))
      except ValueError:
        skipped.append(name)
  if not deltas:
    raise UserError(f"no image has overlapping anchor and test curves for '{key}'")
  if skipped:
    warnings.warn(f"{len(skipped)} of {len(common)} images left out (curves without overlap or "
                  f"too few points): {', '.join(skipped)}", stacklevel=2)
  return Comparison(float(np.mean([d.bd_rate for d in deltas])),
                    float(np.mean([d.bd_quality for d in deltas])), key, higher_is_better,
                    images=len(deltas), skipped=tuple(skipped))
