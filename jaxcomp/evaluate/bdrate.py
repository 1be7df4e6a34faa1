"""Bjøntegaard-delta rate and quality between two rate-distortion curves.

Same conventions and numbers as the `bjontegaard` package 1.3.0 (FAU-LMS), without depending on it:

  BD-rate: fit log10(rate) as a function of quality for the anchor and the test curve, integrate
    both over the *overlap* of their quality ranges, take the mean difference d of the two
    integrals over that interval and report (10**d - 1) * 100 percent. Negative: the test codec
    needs fewer bits for the same quality.
  BD-quality (BD-PSNR for PSNR): fit quality as a function of log10(rate), integrate over the
    overlap of the log-rate ranges, report the mean difference test - anchor. Positive: the test
    codec gives better quality at the same rate.

Interpolation (`method`):
  'cubic': one least-squares cubic polynomial through all points (`np.polyfit(x, y, 3)`), the
    VCEG-M33 original; needs at least 4 points and can overshoot with uneven spacing.
  'pchip': piecewise cubic Hermite (`scipy.interpolate.PchipInterpolator`), as in the JCT-VC /
    JVET common-test-condition sheets.
  'akima': Akima spline (`scipy.interpolate.Akima1DInterpolator`; linear for 2 points).

Overlap: the fraction |overlap| / |union| of the two ranges of the integration variable. None at
all raises `NoOverlapError`; less than `min_overlap` (default 0.75, as the package) warns.

Differences from the package, all on inputs it rejects or mishandles: points may come in any
order (they are sorted by the integration variable; the package only reverses fully descending
input and otherwise hands unsorted points to scipy, which refuses them); a curve whose quality
is not monotonic in rate is accepted with a warning; repeated values of the integration variable
and 'cubic' with fewer than 4 points raise ValueError; the anchor and test may have different
numbers of points (the package's `require_matching_points=False`).

Metrics where lower is better (MSE, LPIPS, DISTS, GMSD, NLPD) are handled by the caller passing
`higher_is_better=False`: the quality is negated before fitting, so a negative BD-rate still
means "fewer bits for equal quality" and a positive BD-quality means "better", i.e. BD-quality
is then the mean *reduction* of the distance at equal rate.
"""

import dataclasses
import warnings

import numpy as np
from scipy import interpolate

METHODS = ("cubic", "pchip", "akima")
DEFAULT_MIN_OVERLAP = 0.75


class NoOverlapError(ValueError):
  """The two curves share no interval of the integration variable."""


class _Cubic:
  """Least-squares cubic polynomial y(x) with an exact antiderivative."""

  def __init__(self, x, y):
    coefficients = np.polyfit(x, y, 3)
    self._antiderivative = np.polyint(coefficients)

  def integrate(self, a, b):
    return np.polyval(self._antiderivative, b) - np.polyval(self._antiderivative, a)


def fit(x, y, method):
  """Interpolant of y(x) with an `integrate(a, b)` method.

  Args:
    x: [n] integration variable, distinct values, any order.
    y: [n] values.
    method: one of METHODS.

  Returns:
    an object with `integrate(a, b) -> float`.
  """
  if method not in METHODS:
    raise ValueError(f"unknown BD interpolation method {method!r}; choose from "
                     f"{', '.join(METHODS)}")
  order = np.argsort(x, kind="stable")
  x, y = np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
  if np.any(np.diff(x) == 0):
    raise ValueError(f"repeated values {np.unique(x[1:][np.diff(x) == 0]).tolist()} on the "
                     "integration axis; each rate-distortion point must be distinct")
  if method == "cubic":
    if len(x) < 4:
      raise ValueError(f"the cubic BD fit needs at least 4 points per curve, got {len(x)}")
    return _Cubic(x, y)
  if method == "pchip":
    return interpolate.PchipInterpolator(x, y)
  if len(x) > 2:
    return interpolate.Akima1DInterpolator(x, y)
  return interpolate.make_interp_spline(x, y, k=1)


def overlap(a, b):
  """(lo, hi, fraction): the common interval of the ranges of a and b and |common| / |union|."""
  lo, hi = max(np.min(a), np.min(b)), min(np.max(a), np.max(b))
  union = max(np.max(a), np.max(b)) - min(np.min(a), np.min(b))
  return lo, hi, (max(hi - lo, 0.0) / union if union > 0 else 0.0)


def bd_delta(x_anchor, y_anchor, x_test, y_test, method, min_overlap=DEFAULT_MIN_OVERLAP,
             what="curves"):
  """Mean of y_test(x) - y_anchor(x) over the overlap of the x ranges (the linear BD value).

  Args:
    x_anchor, y_anchor: [n] anchor points (x: integration variable).
    x_test, y_test: [m] test points.
    method: one of METHODS.
    min_overlap: warn when |overlap| / |union| of the x ranges is below this.
    what: name of the x axis for messages.

  Returns:
    float.

  Raises:
    NoOverlapError: if the x ranges do not overlap.
    ValueError: for mismatched lengths, too few points, repeated x values, or non-finite values.
  """
  arrays = [np.asarray(v, np.float64).ravel() for v in (x_anchor, y_anchor, x_test, y_test)]
  x_anchor, y_anchor, x_test, y_test = arrays
  if len(x_anchor) != len(y_anchor) or len(x_test) != len(y_test):
    raise ValueError("each curve needs as many rate values as quality values")
  if min(len(x_anchor), len(x_test)) < 2:
    raise ValueError("each curve needs at least 2 rate-distortion points")
  if not all(np.all(np.isfinite(v)) for v in arrays):
    raise ValueError("rate-distortion points must be finite (and rates positive)")
  lo, hi, fraction = overlap(x_anchor, x_test)
  if fraction == 0:
    raise NoOverlapError(
        f"the {what} do not overlap (anchor {x_anchor.min():.6g} ... {x_anchor.max():.6g}, "
        f"test {x_test.min():.6g} ... {x_test.max():.6g}); BD cannot be computed")
  if fraction < min_overlap:
    warnings.warn(f"the {what} overlap by only {fraction * 100:.1f}% of their union (below "
                  f"{min_overlap * 100:.0f}%); the BD value covers the overlap only", stacklevel=3)
  integral_anchor = fit(x_anchor, y_anchor, method).integrate(lo, hi)
  integral_test = fit(x_test, y_test, method).integrate(lo, hi)
  return float((integral_test - integral_anchor) / (hi - lo))


def _curve(rate, quality, sign, name):
  """(log10 rate [n], sign * quality [n]) float64, checked; warns if quality is not monotonic."""
  rate, quality = np.asarray(rate, np.float64).ravel(), np.asarray(quality, np.float64).ravel()
  if len(rate) != len(quality):
    raise ValueError(f"the {name} curve needs as many rate values as quality values")
  if np.any(~(rate > 0)):
    raise ValueError(f"the {name} curve's rates must be positive")
  quality = sign * quality
  if np.any(np.diff(quality[np.argsort(rate, kind="stable")]) <= 0):
    warnings.warn(f"the {name} curve's quality does not increase strictly with its rate; the BD "
                  "fit treats its points in order of quality", stacklevel=4)
  return np.log10(rate), quality


def bd_rate(rate_anchor, quality_anchor, rate_test, quality_test, method,
            higher_is_better=True, min_overlap=DEFAULT_MIN_OVERLAP):
  """BD-rate in percent: the test codec's mean rate change at equal quality.

  Args:
    rate_anchor: [n] anchor rates (bpp, bytes, kbit/s: any positive unit, same for both).
    quality_anchor: [n] anchor quality (PSNR dB, MS-SSIM, LPIPS ...).
    rate_test, quality_test: [m] test curve.
    method: 'cubic', 'pchip' or 'akima'.
    higher_is_better: False for distances (quality negated, see the module docstring).
    min_overlap: warn below this overlap fraction of the quality ranges.

  Returns:
    float percent, e.g. -10.0 when the test needs 10% fewer bits.
  """
  sign = 1.0 if higher_is_better else -1.0
  log_anchor, q_anchor = _curve(rate_anchor, quality_anchor, sign, "anchor")
  log_test, q_test = _curve(rate_test, quality_test, sign, "test")
  delta = bd_delta(q_anchor, log_anchor, q_test, log_test, method, min_overlap,
                   what="quality ranges")
  return (10.0**delta - 1.0) * 100.0


def bd_quality(rate_anchor, quality_anchor, rate_test, quality_test, method,
               higher_is_better=True, min_overlap=DEFAULT_MIN_OVERLAP):
  """BD-quality (BD-PSNR for PSNR): the test codec's mean quality gain at equal rate.

  Arguments as `bd_rate`; the overlap is that of the log10-rate ranges. For a distance
  (higher_is_better=False) the result is the mean reduction of the distance (positive = better).
  """
  sign = 1.0 if higher_is_better else -1.0
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*does not increase strictly")
    log_anchor, q_anchor = _curve(rate_anchor, quality_anchor, sign, "anchor")
    log_test, q_test = _curve(rate_test, quality_test, sign, "test")
  return bd_delta(log_anchor, q_anchor, log_test, q_test, method, min_overlap, what="rate ranges")


@dataclasses.dataclass(frozen=True)
class Delta:
  """A BD comparison of two curves.

  Attributes:
    bd_rate: percent (negative = the test saves bits).
    bd_quality: quality units (positive = the test is better).
  """

  bd_rate: float
  bd_quality: float


def compare(rate_anchor, quality_anchor, rate_test, quality_test, method, higher_is_better=True,
            min_overlap=DEFAULT_MIN_OVERLAP):
  """Both BD values of a test curve against an anchor curve (arguments as `bd_rate`)."""
  args = (rate_anchor, quality_anchor, rate_test, quality_test, method, higher_is_better,
          min_overlap)
  return Delta(bd_rate=bd_rate(*args), bd_quality=bd_quality(*args))
