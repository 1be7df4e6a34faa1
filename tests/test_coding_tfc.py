"""The tensorflow-compression backend (`--coder tfc`); skipped where it is not installed.

Runs in the tfc environment (scripts/tfc_env.sh): tensorflow-compression 2.14.1, TensorFlow 2.14,
jax 0.4.34, flax 0.10.4, numpy 1.26.
"""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name,wrong-import-position

import numpy as np
import pytest

pytest.importorskip("tensorflow_compression")

from coding_models import fixture_image
from jaxcomp import cli
from jaxcomp.coding import compression, container, tfc_backend
from jaxcomp.codec import tables
from jaxcomp.errors import UserError

SIZES = [(80, 96), (37, 61), (1, 1), (1, 130)]


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_tfc_round_trip_equals_constriction(hyperprior, size):
  image = fixture_image("kite_96x80.png")[:size[0], :size[1]]
  if image.shape[:2] != size:
    image = np.resize(image, size + (3,))
  tfc_data = compression.compress(hyperprior, image[None], backend="tfc")[0]
  default = compression.compress(hyperprior, image[None])[0]
  assert container.parse(tfc_data, hyperprior.fingerprint).backend == "tfc"
  np.testing.assert_array_equal(compression.decompress(hyperprior, tfc_data),
                                compression.decompress(hyperprior, default))


def test_tfc_mean_scale_round_trip(mean):
  image = fixture_image("cups_61x37.png")[None]
  np.testing.assert_array_equal(
      compression.decompress(mean, compression.compress(mean, image, backend="tfc")[0]),
      compression.decompress(mean, compression.compress(mean, image)[0]))


def test_tfc_escapes_round_trip():
  t = tables.gaussian_tables(np.array([0.11, 1.0, 50.0]))
  coder = tfc_backend.Coder(t)
  rng = np.random.default_rng(1)
  values = np.concatenate([rng.integers(-3, 4, 500), [2**30, -2**30, 2**16, -2**16 - 1, 400, -400],
                           rng.integers(-2**30, 2**30, 50)]).astype(np.int32)
  rows = rng.integers(0, 3, values.size).astype(np.int32)
  np.testing.assert_array_equal(coder.decode(coder.encode(values, rows), rows), values)


def test_tfc_rate_is_close_to_constriction(hyperprior):
  image = fixture_image("kite_96x80.png")[None]
  sizes = [len(compression.compress(hyperprior, image, backend=b)[0])
           for b in ("tfc", "constriction")]
  assert abs(sizes[0] - sizes[1]) <= 0.01 * sizes[1] + 16


def test_tfc_stream_decoded_as_constriction_is_refused_or_garbage(hyperprior):
  """The header names the backend; relabelling a tfc file never crashes the other decoder."""
  data = compression.compress(hyperprior, fixture_image("cups_61x37.png")[None], backend="tfc")[0]
  b = container.parse(data, hyperprior.fingerprint)
  relabelled = container.pack(container.Bitstream(**{**b.__dict__, "backend": "constriction"}))
  try:
    assert compression.decompress(hyperprior, relabelled).shape == (37, 61, 3)
  except UserError as e:
    assert "\n" not in str(e)


def test_cli_tfc(tmp_path, hyperprior_dir):
  from PIL import Image
  src = tmp_path / "in.png"
  Image.fromarray(fixture_image("cups_61x37.png")).save(src)
  assert cli.main(["compress", "--model", hyperprior_dir, "--coder", "tfc", str(src),
                   str(tmp_path / "a.jxc")]) == 0
  assert cli.main(["decompress", "--model", hyperprior_dir, str(tmp_path / "a.jxc"),
                   str(tmp_path / "a.png")]) == 0
  assert Image.open(tmp_path / "a.png").size == (61, 37)
