"""FSIM/FSIMc, VSI, SDSP and NLPD against piq 0.8.0, pyiqa and the published MATLAB values.

Fixtures from scripts/make_metric2_fixtures.py (photo crops, sets a/b/c, see
tests/metrics2_pairs.py). The TID2013 tests read pyiqa's five calibration pairs from the
reference environment (or $JAXCOMP_TID2013_CALIBRA) and are skipped where they are absent.
"""

import json
import os

import numpy as np
import pytest

from jaxcomp.metrics import fsim
from jaxcomp.metrics import nlpd
from jaxcomp.metrics import vsi
from jaxcomp.saliency import sdsp
import metrics2_pairs

# pyiqa ResultsCalibra/results_official.csv: FSIMc from FSIM.m (4 decimals), NLPD from
# NLP_dist.m on rgb2gray (uint8) images.
MATLAB_FSIMC = (0.6890, 0.9702, 0.9927, 0.9575, 0.8220)
MATLAB_NLPD = (0.561610096893874, 0.019534798560102, 0.015915631543598, 0.302802106557736,
               0.432604962261603)
TID2013 = metrics2_pairs.tid2013_dir()
NEEDS_TID2013 = pytest.mark.skipif(
    TID2013 is None, reason="TID2013 calibration pairs not found (set JAXCOMP_TID2013_CALIBRA)")


def _reference(name, metric):
  with open(os.path.join(metrics2_pairs.FIXTURES, "reference.json")) as f:
    return np.asarray(json.load(f)["values"][name][metric])


@pytest.fixture(scope="module", params=metrics2_pairs.SETS)
def pairs(request):
  return request.param, metrics2_pairs.load(request.param)


def test_fsimc_equals_piq(pairs):
  name, (x, y) = pairs
  np.testing.assert_allclose(fsim.fsim(x, y, compat="piq"), _reference(name, "fsim"), atol=1e-5)


def test_fsim_gray_equals_piq(pairs):
  name, (x, y) = pairs
  np.testing.assert_allclose(fsim.fsim(x, y, chromatic=False, compat="piq"),
                             _reference(name, "fsim_gray"), atol=1e-5)


def test_vsi_equals_piq(pairs):
  name, (x, y) = pairs
  np.testing.assert_allclose(vsi.vsi(x, y, compat="piq"), _reference(name, "vsi"), atol=1e-5)


@pytest.mark.slow
def test_nlpd_equals_pyiqa(pairs):
  name, (x, y) = pairs
  np.testing.assert_allclose(nlpd.nlpd(x, y, compat="pyiqa"), _reference(name, "nlpd_pyiqa"),
                             atol=1e-6)


@pytest.mark.slow
def test_matlab_modes_stay_close_to_piq(pairs):
  """The default (MATLAB) modes differ from piq only by the documented deviations."""
  name, (x, y) = pairs
  ours = {"fsim": fsim.fsim(x, y), "vsi": vsi.vsi(x, y), "nlpd_pyiqa": nlpd.nlpd(x, y)}
  # set b's red/blue swap makes S_I S_Q negative: real(z^0.03) = cos(0.03 pi) |z|^0.03
  tolerance = {"fsim": 5e-3 if name == "b" else 1e-3, "vsi": 3e-3, "nlpd_pyiqa": 1e-3}
  for metric, value in ours.items():
    np.testing.assert_allclose(value, _reference(name, metric), atol=tolerance[metric])


def test_sdsp_equals_piq():
  refs, _, _ = metrics2_pairs.load_uint8("a")
  expected = np.load(os.path.join(metrics2_pairs.FIXTURES, "pairs.npz"))["sdsp_a"]
  ours = sdsp(refs.astype(np.float32) / 255.0, compat="piq")[0]
  np.testing.assert_allclose(ours, expected.astype(np.float32), atol=1e-3)  # float16 fixture


@pytest.mark.slow
@NEEDS_TID2013
def test_fsimc_equals_matlab_on_tid2013():
  x, y = metrics2_pairs.load_tid2013(TID2013)  # 512x384: F = 2
  np.testing.assert_allclose(fsim.fsim(x, y), MATLAB_FSIMC, atol=5e-5)  # 4 published decimals


@pytest.mark.slow
@NEEDS_TID2013
def test_nlpd_equals_matlab_on_tid2013():
  x, y = metrics2_pairs.load_tid2013(TID2013)
  np.testing.assert_allclose(nlpd.nlpd(x, y, round_gray=True), MATLAB_NLPD, atol=1e-6)
  np.testing.assert_allclose(nlpd.nlpd(x, y, compat="pyiqa"),
                             _reference("tid2013", "nlpd_pyiqa"), atol=1e-6)


@pytest.mark.slow
@NEEDS_TID2013
def test_vsi_equals_piq_on_tid2013():
  x, y = metrics2_pairs.load_tid2013(TID2013)
  np.testing.assert_allclose(vsi.vsi(x, y, compat="piq"), _reference("tid2013", "vsi"),
                             atol=1e-5)


def test_identical_images():
  x, _ = metrics2_pairs.load("b")
  np.testing.assert_allclose(fsim.fsim(x, x), 1.0, atol=1e-6)
  np.testing.assert_allclose(vsi.vsi(x, x), 1.0, atol=1e-6)
  np.testing.assert_allclose(nlpd.nlpd(x, x), 0.0, atol=1e-6)


@pytest.mark.slow
def test_batch_is_per_image():
  x, y = metrics2_pairs.load("b")
  for fn in (fsim.fsim, vsi.vsi, nlpd.nlpd):
    np.testing.assert_allclose(fn(x[1:2], y[1:2]), fn(x, y)[1:2], rtol=1e-5, atol=1e-6)
