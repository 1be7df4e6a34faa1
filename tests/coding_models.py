"""Realistic test models for the coding tests, without training (numpy + jaxcomp only).

`parity_weights` gives deterministic non-degenerate CompressAI-layout weights, but its h_s ends in
a ReLU of an unscaled convolution, so about a quarter of the predicted scales are 0 (bounded to
0.11) where y is far from 0: those symbols have likelihood < 1e-6 and are coded as escapes. A
rate-honesty test needs a model whose likelihoods describe its latents, so `state_dict` also
calibrates h_s's last layer (scales = relu(conv / 4 + 6); the means of mbt2018-mean untouched),
which brings the escapes to well under 1% of the symbols.

Also session fixtures (exported 16/24 models and their `CodingModel`s, built once per test session:
conftest.py registers this module with `pytest_plugins`; test modules do not import them) and the
image sources: tiny crops under fixtures/coding/ and the shared photos.
"""

import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import parity_weights
from jaxcomp.codec import compressai_import, entropy_bottleneck, export
from jaxcomp.coding import compression

SCALE_GAIN = 0.25
SCALE_SHIFT = 6.0


def state_dict(arch, N, M, calibrated=True):
  """CompressAI-layout state_dict (with fitted quantiles) of a deterministic test model."""
  sd = parity_weights.state_dict(arch, N, M)
  density = {f"{k.split('.')[1]}_{k.split('.')[2]}": jnp.asarray(v)
             for k, v in sd.items() if k.startswith("entropy_bottleneck.")}
  sd["entropy_bottleneck.quantiles"] = np.asarray(
      entropy_bottleneck.fit_quantiles(density))[:, None, :]
  if calibrated:
    weight, bias = sd["h_s.4.weight"].copy(), sd["h_s.4.bias"].copy()
    weight[:M] *= SCALE_GAIN
    bias[:M] = bias[:M] * SCALE_GAIN + SCALE_SHIFT
    sd["h_s.4.weight"], sd["h_s.4.bias"] = weight, bias
  return sd


def export_model(path, arch="bmshj2018-hyperprior", N=16, M=24, calibrated=True):
  """Writes an exported model directory for a test model; returns the path."""
  variables, n, m = compressai_import.convert(arch, state_dict(arch, N, M, calibrated))
  export.save(str(path), arch, n, m, variables, source=f"test:{arch}:{N}:{M}")
  return str(path)


FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "coding")
PHOTOS = os.environ.get("JAXCOMP_PHOTOS", os.path.join(
    os.path.dirname(__file__), "..", "..", "shared", "data", "photos"))


def fixture_image(name):
  """uint8 [H, W, 3] from tests/fixtures/coding/<name> (crops of the shared photos)."""
  with Image.open(os.path.join(FIXTURES, name)) as img:
    return np.asarray(img.convert("RGB"))


def photos():
  """Sorted paths of the shared 768x512 photos (empty when they are not present)."""
  return sorted(glob.glob(os.path.join(PHOTOS, "*.png")))


@pytest.fixture(scope="session")
def hyperprior_dir(tmp_path_factory):
  """Exported bmshj2018-hyperprior test model, N, M = 16, 24."""
  return export_model(tmp_path_factory.mktemp("models") / "hyperprior")


@pytest.fixture(scope="session")
def mean_dir(tmp_path_factory):
  """Exported mbt2018-mean test model, N, M = 16, 24."""
  return export_model(tmp_path_factory.mktemp("models") / "mean", arch="mbt2018-mean")


@pytest.fixture(scope="session")
def hyperprior(hyperprior_dir):
  return compression.CodingModel(hyperprior_dir)


@pytest.fixture(scope="session")
def mean(mean_dir):
  return compression.CodingModel(mean_dir)
