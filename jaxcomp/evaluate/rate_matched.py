"""Rate-matched comparison: every curve's quality at chosen bits-per-pixel targets.

The default targets, 0.23 / 0.37 / 0.67 / 1.0 bpp, are the operating points of the saliency-driven
compression study (Patel et al., WACV 2021). A curve's value at a target is read off its points by
monotone piecewise-cubic (PCHIP) interpolation of quality against log(bpp); outside the curve's
bpp range there is no value (no extrapolation).
"""

import numpy as np
from scipy import interpolate

from jaxcomp.evaluate import results

DEFAULT_TARGETS = (0.23, 0.37, 0.67, 1.0)


def at_rates(rates, values, targets):
  """Quality at each target rate.

  Args:
    rates: [P] bpp, positive, distinct (any order).
    values: [P] quality.
    targets: [T] bpp.

  Returns:
    [T] list of float, or None where a target is outside [min(rates), max(rates)].
  """
  rates, values = np.asarray(rates, np.float64), np.asarray(values, np.float64)
  order = np.argsort(rates)
  log_rates, values = np.log(rates[order]), values[order]
  if len(log_rates) < 2 or np.any(np.diff(log_rates) <= 0):
    return [float(values[0]) if len(values) == 1 and np.isclose(t, rates[0]) else None
            for t in targets]
  fn = interpolate.PchipInterpolator(log_rates, values, extrapolate=False)
  out = fn(np.log(np.asarray(targets, np.float64)))
  return [None if np.isnan(v) else float(v) for v in out]


def table(documents, keys, targets=DEFAULT_TARGETS):
  """{(curve name, key): [T] values or None} for every document that has the key."""
  rows = {}
  for document in documents:
    available = results.quality_keys(document)
    for key in keys:
      if key in available:
        rates, values = results.curve(document["results"], key)
        rows[document["name"], key] = at_rates(rates, values, targets) if len(rates) else [
            None] * len(targets)
  return rows


def markdown(rows, targets=DEFAULT_TARGETS):
  """The table as Markdown: one row per (curve, metric), one column per target bpp."""
  lines = ["| curve | metric | " + " | ".join(f"{t:g} bpp" for t in targets) + " |",
           "|---|---|" + "---|" * len(targets)]
  for (name, key), values in rows.items():
    cells = ["—" if v is None else f"{v:.4f}" for v in values]
    lines.append(f"| {name} | {key} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
