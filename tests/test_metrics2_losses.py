"""FSIM, VSI, NLPD and SDSP as losses: finite gradients on identical, flat, random and
colour-swapped images (negative chroma products), one compilation per shape, the registry and
CLI entries, and the MATLAB building blocks (F rounding, conv2 'same' down-sampling, real power)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

import loss_images

from jaxcomp import cli
from jaxcomp.metrics import _zhang
from jaxcomp.metrics import fsim
from jaxcomp.metrics import nlpd
from jaxcomp.metrics import registry
from jaxcomp.metrics import vsi
from jaxcomp.saliency import sdsp

# name -> (loss(x, y) -> [B], H, W)
LOSSES = {
    "fsim": (registry.loss("fsim").loss, 24, 21),
    "fsim_gray": (registry.loss("fsim_gray").loss, 24, 21),
    "vsi": (registry.loss("vsi").loss, 24, 21),
    "vsi_fixed_saliency": (lambda x, y: 1.0 - vsi.vsi(x, y, saliency_gradient=False), 24, 21),
    "nlpd": (registry.loss("nlpd").loss, 24, 21),
    "sdsp": (lambda x, y: jnp.mean(sdsp(x) * sdsp(y), axis=(1, 2)), 24, 21),
}
TRACES = {name: [] for name in LOSSES}


_images = loss_images.image_pair


def _grad_fn(name, _cache={}):  # pylint: disable=dangerous-default-value
  if name not in _cache:
    loss = LOSSES[name][0]

    def counted(x, y):
      TRACES[name].append(x.shape)
      return jnp.sum(loss(x, y))

    _cache[name] = jax.jit(jax.value_and_grad(counted))
  return _cache[name]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["identical", "flat", "flat_identical", "black", "swapped",
                                  "random"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_is_finite(name, kind):
  _, h, w = LOSSES[name]
  value, grad = _grad_fn(name)(*_images(kind, h, w))
  assert np.isfinite(value)
  assert np.all(np.isfinite(grad)), f"{name}/{kind}: non-finite gradient"
  if kind in ("random", "swapped"):
    assert np.any(grad != 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_grad_compiles_once_per_shape(name):
  _, h, w = LOSSES[name]
  for seed in range(3):
    _grad_fn(name)(*_images("random", h, w, seed))
  assert TRACES[name].count((2, h, w, 3)) == 1
  for seed in range(2):
    _grad_fn(name)(*_images("random", h + 2, w, seed))
  assert TRACES[name].count((2, h + 2, w, 3)) == 1


@pytest.mark.slow
def test_registry_entries():
  x, y = _images("random", 24, 21)
  expected = {"fsim": ("similarity", fsim.fsim(x, y)),
              "fsim_gray": ("similarity", fsim.fsim(x, y, chromatic=False)),
              "vsi": ("similarity", vsi.vsi(x, y)),
              "nlpd": ("distance", nlpd.nlpd(x, y, round_gray=True))}
  for name, (kind, value) in expected.items():
    metric = registry.get(name)
    assert metric.kind == kind and name in registry.names()
    np.testing.assert_allclose(metric(x, y), value, rtol=1e-6)
  np.testing.assert_allclose(registry.get("fsim").loss(x, y), 1.0 - fsim.fsim(x, y), rtol=1e-6)
  np.testing.assert_allclose(registry.get("vsi").loss(x, y), 1.0 - vsi.vsi(x, y), rtol=1e-6)
  np.testing.assert_allclose(registry.get("nlpd").loss(x, y), nlpd.nlpd(x, y), rtol=1e-6)


@pytest.mark.slow
def test_metric_cli(capsys, tmp_path, monkeypatch):
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.metrics.cli",))
  rng = np.random.RandomState(0)
  ref = (rng.rand(40, 48, 3) * 255).astype(np.uint8)
  dist = np.clip(ref.astype(int) + rng.randint(-20, 21, ref.shape), 0, 255).astype(np.uint8)
  Image.fromarray(ref).save(tmp_path / "ref.png")
  Image.fromarray(dist).save(tmp_path / "dist.png")
  code = cli.main(["metric", "--metric", "fsim,vsi,nlpd", str(tmp_path / "ref.png"),
                   str(tmp_path / "dist.png"), "--json"])
  values = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
  assert code == 0 and list(values) == ["fsim", "vsi", "nlpd"]
  x, y = dist[None] / np.float32(255), ref[None] / np.float32(255)
  np.testing.assert_allclose(values["fsim"], fsim.fsim(x, y)[0], rtol=1e-6)
  np.testing.assert_allclose(values["vsi"], vsi.vsi(x, y)[0], rtol=1e-6)
  np.testing.assert_allclose(values["nlpd"], nlpd.nlpd(x, y, round_gray=True)[0], rtol=1e-6)


def test_sdsp_range_and_shape():
  x, _ = _images("random", 30, 41)
  maps = np.asarray(sdsp(x))
  assert maps.shape == (2, 30, 41)
  np.testing.assert_allclose(maps.min(axis=(1, 2)), 0.0, atol=1e-6)
  np.testing.assert_allclose(maps.max(axis=(1, 2)), 1.0, atol=1e-3)


@pytest.mark.parametrize("side,matlab,piq", [(383, 1, 1), (384, 2, 2), (640, 3, 2), (1152, 5, 4)])
def test_downsample_factor_rounds_like_matlab(side, matlab, piq):
  assert _zhang.downsample_factor(side, side + 7, "matlab") == matlab
  assert _zhang.downsample_factor(side, side + 7, "piq") == piq


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("h,w", [(9, 10), (12, 7)])
def test_matlab_downsample_equals_conv2_same(factor, h, w):
  x = np.random.RandomState(factor).rand(1, h, w, 1)
  # MATLAB conv2(x, ones(F)/F^2, 'same'): full convolution cropped from floor(F/2), then 1:F:end
  full = np.zeros((h + factor - 1, w + factor - 1))
  for i in range(factor):
    for j in range(factor):
      full[i:i + h, j:j + w] += x[0, :, :, 0] / factor**2
  same = full[factor // 2: factor // 2 + h, factor // 2: factor // 2 + w]
  np.testing.assert_allclose(_zhang.matlab_downsample(x, factor)[0, :, :, 0],
                             same[::factor, ::factor], rtol=1e-6)


def test_real_power_is_matlab_real_and_has_finite_gradient():
  z = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
  expected = np.real(np.asarray(z, np.complex128) ** 0.03)
  np.testing.assert_allclose(_zhang.real_power(z, 0.03), expected, rtol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(_zhang.real_power(v, 0.03)))(z)
  assert np.all(np.isfinite(grad)) and grad[2] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_median_equals_numpy(n):
  rng = np.random.RandomState(n)
  for v in (rng.rand(3, n), np.round(rng.rand(3, n) * 3), np.zeros((3, n))):
    v = v.astype(np.float32)
    np.testing.assert_array_equal(fsim.median(jnp.asarray(v)), np.median(v, axis=-1))
    np.testing.assert_array_equal(fsim.median(jnp.asarray(v), lower=True),
                                  np.sort(v, axis=-1)[:, (n - 1) // 2])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fsim", "vsi"])
def test_gradient_is_finite_with_downsampling(name):
  """384x385 images: F = 2, so the gradient goes through the MATLAB-style average pooling."""
  loss = LOSSES[name][0]
  x, y = _images("random", 384, 385)
  grad = jax.jit(jax.grad(lambda x, y: jnp.sum(loss(x, y))))(x[:1], y[:1])
  assert np.all(np.isfinite(grad)) and np.any(grad != 0)
