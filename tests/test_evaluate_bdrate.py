"""BD-rate / BD-quality: parity with the bjontegaard package and the conventions around it."""

import json
import os
import warnings

import numpy as np
import pytest

from jaxcomp.evaluate import bdrate

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "evaluate", "bdrate_reference.json")
with open(FIXTURE) as _f:
  CASES = json.load(_f)["cases"]

RATES = [0.12, 0.2, 0.31, 0.47, 0.66, 0.93, 1.25, 1.66]
PSNR = [27.6, 29.2, 31.0, 32.8, 34.5, 36.7, 38.6, 40.6]


def _points(case):
  return (case["rate_anchor"], case["quality_anchor"], case["rate_test"], case["quality_test"])


@pytest.mark.parametrize("case", CASES, ids=[f"{c['name']}-{c['method']}" for c in CASES])
def test_matches_the_bjontegaard_package(case):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    delta = bdrate.compare(*_points(case), case["method"], case["higher_is_better"])
  assert abs(delta.bd_rate - case["bd_rate"]) < 1e-6
  assert abs(delta.bd_quality - case["bd_quality"]) < 1e-6
  overlap_warnings = [w for w in caught if "overlap" in str(w.message)]
  assert bool(overlap_warnings) == case["warns"]


def test_readme_values():
  case = {c["method"]: c for c in CASES if c["name"] == "readme"}
  got = {m: bdrate.bd_rate(*_points(case[m]), m) for m in bdrate.METHODS}
  assert got == pytest.approx({"cubic": -4.4205, "pchip": -4.4175, "akima": -4.4252}, abs=5e-5)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_constant_rate_ratio_is_exact(method):
  # The test curve needs 10% fewer bits at every quality: BD-rate is -10% for every method.
  rate = bdrate.bd_rate(RATES, PSNR, [0.9 * r for r in RATES], PSNR, method)
  assert rate == pytest.approx(-10.0, abs=1e-9)
  assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR, method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_point_order_does_not_matter(method):
  order = np.random.default_rng(0).permutation(len(RATES))
  shuffled = ([RATES[i] for i in order], [PSNR[i] for i in order])
  test = ([0.95 * r for r in RATES], [p + 0.1 * (i % 3) for i, p in enumerate(PSNR)])
  reference = bdrate.compare(RATES, PSNR, *test, method)
  got = bdrate.compare(*shuffled, *test, method)
  assert got.bd_rate == pytest.approx(reference.bd_rate, abs=1e-10)
  assert got.bd_quality == pytest.approx(reference.bd_quality, abs=1e-10)


@pytest.mark.parametrize("method", bdrate.METHODS)
def test_lower_is_better_is_the_negated_metric(method):
  distance = [1.0 / p for p in PSNR]
  test_distance = [0.97 * d for d in distance]
  flipped = bdrate.compare(RATES, distance, RATES, test_distance, method, higher_is_better=False)
  negated = bdrate.compare(RATES, [-d for d in distance], RATES, [-d for d in test_distance],
                           method)
  assert flipped.bd_rate == negated.bd_rate and flipped.bd_quality == negated.bd_quality
  # Lower distance at equal rate: the test saves bits and its quality gain is positive.
  assert flipped.bd_rate < 0 and flipped.bd_quality > 0


def test_no_overlap_raises():
  with pytest.raises(bdrate.NoOverlapError, match="do not overlap"):
    bdrate.bd_rate(RATES, PSNR, RATES, [p + 20 for p in PSNR], "pchip")


def test_partial_overlap_warns():
  with pytest.warns(UserWarning, match="overlap by only"):
    bdrate.bd_rate(RATES, PSNR, RATES, [p + 7 for p in PSNR], "akima")


def test_invalid_inputs():
  with pytest.raises(ValueError, match="at least 4 points"):
    bdrate.bd_rate(RATES[:3], PSNR[:3], RATES[:3], PSNR[:3], "cubic")
  with pytest.raises(ValueError, match="repeated"), pytest.warns(UserWarning, match="increase"):
    bdrate.bd_rate(RATES, PSNR[:7] + [PSNR[6]], RATES, PSNR, "pchip")
  with pytest.raises(ValueError, match="positive"):
    bdrate.bd_rate([0.0] + RATES[1:], PSNR, RATES, PSNR, "pchip")
  with pytest.raises(ValueError, match="as many"):
    bdrate.bd_rate(RATES, PSNR[:-1], RATES, PSNR, "pchip")
  with pytest.raises(ValueError, match="unknown BD interpolation"):
    bdrate.bd_rate(RATES, PSNR, RATES, PSNR, "linear")


def test_non_monotonic_curve_warns_but_computes():
  bumpy = list(PSNR)
  bumpy[3], bumpy[4] = bumpy[4], bumpy[3]
  with pytest.warns(UserWarning, match="does not increase"):
    value = bdrate.bd_rate(RATES, PSNR, RATES, bumpy, "pchip")
  assert np.isfinite(value)


def test_two_points_akima_is_linear():
  rate = bdrate.bd_rate([0.1, 1.0], [30.0, 40.0], [0.05, 0.5], [30.0, 40.0], "akima")
  assert rate == pytest.approx(-50.0)
