"""BD values between two results files, on the averaged curves or per image then averaged.

Two ways to summarise a test set, which generally give different numbers:
  'curve' (default): BD of the mean curves, `results[bpp]` against `results[key]` -- what
    CompressAI-style comparisons and published results files allow.
  'per-image': BD of each image's own curve (`per_image`, jaxcomp's results files only), then the
    arithmetic mean of the BD-rates (percent) and of the BD-qualities over the images both files
    have. Images whose curves do not overlap are left out and counted.
"""

import dataclasses
import re
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
  deltas, skipped, caught = [], [], {}
  for name in common:
    with warnings.catch_warnings(record=True) as records:
      warnings.simplefilter("always")
      try:
        deltas.append(bdrate.compare(*results.curve(anchor["per_image"][name], key),
                                     *results.curve(test["per_image"][name], key),
                                     method, higher_is_better, min_overlap))
      except ValueError:
        skipped.append(name)
        continue
    caught[name] = [str(r.message) for r in records]
  if not deltas:
    raise UserError(f"no image has overlapping anchor and test curves for '{key}'")
  for message in _summarise_warnings(caught, min_overlap):
    warnings.warn(message, stacklevel=3)
  if skipped:
    warnings.warn(f"{len(skipped)} of {len(common)} images left out (curves without overlap or "
                  f"too few points): {', '.join(skipped)}", stacklevel=2)
  return Comparison(float(np.mean([d.bd_rate for d in deltas])),
                    float(np.mean([d.bd_quality for d in deltas])), key, higher_is_better,
                    images=len(deltas), skipped=tuple(skipped))


_OVERLAP = re.compile(r"the (.+?) overlap by only ([0-9.]+)%")
_NOT_MONOTONIC = re.compile(r"the (anchor|test) curve's quality does not increase strictly")


def _summarise_warnings(caught, min_overlap):
  """One warning text per kind of problem over the images, naming them (worst first).

  Args:
    caught: {image: [warning texts of its BD computation]} (`bdrate`'s overlap and
      monotonicity warnings).
    min_overlap: the overlap threshold, for the text.

  Returns:
    [str]: 'the quality ranges overlap by less than 75% in 3 of 10 images (a.png 41%, ...)' and
    'the test curve's quality does not increase strictly with its rate in 2 of 10 images (...)'.
  """
  overlaps, monotonic = {}, {}
  for image, texts in caught.items():
    for text in texts:
      match = _OVERLAP.search(text)
      if match:
        what = overlaps.setdefault(match.group(1), {})
        what[image] = min(float(match.group(2)), what.get(image, 100.0))
      match = _NOT_MONOTONIC.search(text)
      if match:
        monotonic.setdefault(match.group(1), [])
        if image not in monotonic[match.group(1)]:
          monotonic[match.group(1)].append(image)
  total = len(caught)
  messages = []
  for what, by_image in overlaps.items():
    worst = sorted(by_image.items(), key=lambda item: item[1])
    listed = ", ".join(f"{image} {value:.0f}%" for image, value in worst)
    messages.append(f"the {what} overlap by less than {min_overlap * 100:.0f}% of their union in "
                    f"{len(by_image)} of {total} images ({listed}); their BD values cover the "
                    "overlap only")
  for role, images in monotonic.items():
    messages.append(f"the {role} curve's quality does not increase strictly with its rate in "
                    f"{len(images)} of {total} images ({', '.join(images)}); the BD fit treats "
                    "their points in order of quality")
  return messages
