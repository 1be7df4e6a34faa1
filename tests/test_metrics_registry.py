"""The metric registry: names, kinds, loss forms, prefix families, size errors."""

import numpy as np
import pytest

from jaxcomp.errors import UserError
from jaxcomp.metrics import registry
from jaxcomp.metrics import ssim


def test_names():
  assert {"mse", "psnr", "ssim", "ms_ssim", "gmsd", "lpips", "dists"} <= set(registry.names())


def test_kinds_and_losses():
  x = np.random.RandomState(0).rand(2, 16, 16, 3).astype(np.float32)
  for name, kind in (("mse", "distance"), ("psnr", "similarity"), ("ssim", "similarity"),
                     ("gmsd", "distance")):
    metric = registry.get(name)
    assert metric.kind == kind and metric.name == name
    assert metric(x, x).shape == (2,)
  for name in ("mse", "ssim", "gmsd"):
    np.testing.assert_allclose(registry.get(name).loss(x, x), 0.0, atol=1e-6)


def test_psnr_is_not_a_loss():
  with pytest.raises(UserError, match="not available as a loss"):
    registry.loss("psnr")


def test_unknown_name():
  with pytest.raises(UserError, match="unknown metric 'nope'"):
    registry.get("nope")
  with pytest.raises(UserError, match="unknown metric"):
    registry.get("nope:arg")


def test_prefix_family(monkeypatch):
  monkeypatch.setattr(registry, "METRICS", registry.METRICS.copy())

  @registry.register("toy", prefix=True)
  def _toy(arg):
    return registry.Metric(name=f"toy:{arg}", kind="distance",
                           compute=lambda p, x, y: p * np.ones(x.shape[0]),
                           loss_fn=lambda p, x, y: p * np.ones(x.shape[0]), params=float(arg))

  metric = registry.get("toy:3")
  assert metric.name == "toy:3"
  np.testing.assert_array_equal(metric.loss(np.zeros((2, 4, 4, 3)), None), [3.0, 3.0])
  assert "toy:<arg>" in registry.names()


def test_double_registration_fails():
  with pytest.raises(ValueError, match="twice"):
    registry.register("ssim")(lambda arg: None)


@pytest.mark.parametrize("fn,size,message", [
    (ssim.ms_ssim, 160, "at least 161x161"),
    (ssim.ssim, 10, "at least 11x11"),
])
def test_clear_error_below_minimum_size(fn, size, message):
  x = np.zeros((1, size, 200, 3), np.float32)
  with pytest.raises(ValueError, match=message):
    fn(x, x)


def test_shape_mismatch():
  with pytest.raises(ValueError, match="same shape"):
    ssim.ssim(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 17, 3)))
