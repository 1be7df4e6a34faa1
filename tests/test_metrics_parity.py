"""Parity with the PyTorch references on real-photo crops (fixtures from
scripts/make_metric_fixtures.py): pytorch-msssim 1.0.0, piq 0.8.0, lpips 0.1.4, DISTS_pytorch 0.1."""

import json
import os

import numpy as np
import pytest

from jaxcomp.metrics import dists
from jaxcomp.metrics import gmsd
from jaxcomp.metrics import lpips
from jaxcomp.metrics import psnr
from jaxcomp.metrics import ssim
from jaxcomp.nets import weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "metrics")
SETS = ("a", "b")
NEEDS_WEIGHTS = pytest.mark.skipif(
    not weights.available(("vgg16", "lpips_vgg_v0.1", "dists")),
    reason=f"pretrained weights not cached in {weights.cache_dir()} (run `jaxcomp weights fetch`)")


def _pairs(name):
  data = np.load(os.path.join(FIXTURES, "pairs.npz"))
  x = data[f"{name}_dists"].astype(np.float32) / 255.0
  y = data[f"{name}_refs"][data[f"{name}_index"]].astype(np.float32) / 255.0
  return x, y


def _reference(name, metric):
  with open(os.path.join(FIXTURES, "reference.json")) as f:
    return np.asarray(json.load(f)["values"][name][metric])


@pytest.mark.parametrize("name", SETS)
def test_mse_psnr(name):
  x, y = _pairs(name)
  np.testing.assert_allclose(psnr.mse(x, y), _reference(name, "mse"), rtol=1e-5)
  np.testing.assert_allclose(psnr.psnr(x, y), _reference(name, "psnr"), atol=1e-4)


@pytest.mark.parametrize("name", SETS)
def test_ssim_equals_pytorch_msssim(name):
  x, y = _pairs(name)
  np.testing.assert_allclose(ssim.ssim(x, y), _reference(name, "ssim"), atol=1e-4)


def test_ms_ssim_equals_pytorch_msssim():
  x, y = _pairs("a")  # 167x181: odd sides exercise the padded down-sampling at every scale
  np.testing.assert_allclose(ssim.ms_ssim(x, y), _reference("a", "ms_ssim"), atol=1e-4)


@pytest.mark.parametrize("name", SETS)
def test_gmsd_equals_piq(name):
  x, y = _pairs(name)
  np.testing.assert_allclose(gmsd.gmsd(x, y), _reference(name, "gmsd"), rtol=1e-3)


@pytest.mark.slow
@NEEDS_WEIGHTS
@pytest.mark.parametrize("name", SETS)
def test_lpips_equals_lpips_package(name):
  x, y = _pairs(name)
  np.testing.assert_allclose(
      lpips.lpips(x, y, lpips.load_params()), _reference(name, "lpips"), atol=1e-4)


@pytest.mark.slow
@NEEDS_WEIGHTS
@pytest.mark.parametrize("name", SETS)
def test_dists_equals_dists_pytorch(name):
  x, y = _pairs(name)
  np.testing.assert_allclose(
      dists.dists(x, y, dists.load_params()), _reference(name, "dists"), atol=1e-4)


def test_identical_images():
  x, _ = _pairs("a")
  np.testing.assert_allclose(ssim.ssim(x, x), 1.0, atol=1e-6)
  np.testing.assert_allclose(ssim.ms_ssim(x, x), 1.0, atol=1e-6)
  np.testing.assert_allclose(gmsd.gmsd(x, x), 0.0, atol=1e-7)  # FMA rounding
  np.testing.assert_array_equal(psnr.mse(x, x), 0.0)
  assert np.all(np.isinf(psnr.psnr(x, x)))


def test_batch_is_per_image():
  x, y = _pairs("b")
  for fn in (psnr.mse, ssim.ssim, gmsd.gmsd):
    np.testing.assert_allclose(fn(x[1:2], y[1:2]), fn(x, y)[1:2], rtol=1e-6, atol=1e-7)

