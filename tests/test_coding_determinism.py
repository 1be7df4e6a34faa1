"""Encoder/decoder sync: batch size and device count never change what the decoder computes."""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name,protected-access

import jax
import numpy as np
import pytest

from coding_models import fixture_image
from jaxcomp.codec import tables
from jaxcomp.coding import compression, container


def _batch():
  """8 different 37x61 crops (flips and shifts of the fixtures)."""
  kite, cups = fixture_image("kite_96x80.png"), fixture_image("cups_61x37.png")
  crops = [cups, cups[::-1], cups[:, ::-1], cups[::-1, ::-1]]
  crops += [kite[i * 10:i * 10 + 37, i * 8:i * 8 + 61] for i in range(4)]
  return np.stack(crops)


@pytest.mark.slow
def test_eight_device_batch_decodes_one_image_at_a_time(hyperprior):
  assert len(jax.devices()) == 8, "tests/conftest.py forces 8 CPU devices"
  images = _batch()
  streams = compression.compress(hyperprior, images, devices=jax.devices())
  y, z = hyperprior.analysis(compression.padded_input(images), jax.devices())
  for i, data in enumerate(streams):
    sym = compression.symbols(hyperprior, y[i], z[i])
    bitstream = container.parse(data, hyperprior.fingerprint)
    decoded = compression.decode_symbols(hyperprior, bitstream)
    np.testing.assert_array_equal(decoded.z_values, sym.z_values)
    np.testing.assert_array_equal(decoded.y_values, sym.y_values)
    np.testing.assert_array_equal(
        compression.decompress(hyperprior, data),
        compression.reconstruct(hyperprior, sym, 37, 61, 3))


def test_batched_and_single_streams_are_identical(hyperprior):
  images = _batch()
  batched = compression.compress(hyperprior, images)
  sharded = compression.compress(hyperprior, images, devices=jax.devices())
  single = [compression.compress(hyperprior, images[i:i + 1])[0] for i in range(len(images))]
  assert sharded == single
  for a, b in zip(batched, single):
    np.testing.assert_array_equal(compression.decompress(hyperprior, a),
                                  compression.decompress(hyperprior, b))


def test_scale_indexes_from_a_sharded_batch_equal_the_canonical_ones(hyperprior):
  """h_s on a batch of 8 sharded over 8 devices selects the same table rows as the per-image
  program that encoder and decoder use (and the index CRC would catch it if it did not)."""
  images = _batch()
  y, z = hyperprior.analysis(compression.padded_input(images), jax.devices())
  z_values = np.round(z - hyperprior.medians).astype(np.int32)
  z_hat = z_values.astype(np.float32) + hyperprior.medians
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("batch",))
  batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
  sharded = jax.device_put(z_hat, batch_sharding)
  scales = hyperprior._hyper(hyperprior._variables_host, sharded)[0]
  rows_batch = tables.scale_indexes(np.asarray(scales), hyperprior.tables.scale_bounds)
  for i in range(len(images)):
    canonical = tables.scale_indexes(hyperprior.hyper(z_values[i])[0],
                                     hyperprior.tables.scale_bounds)
    np.testing.assert_array_equal(rows_batch[i], canonical)
