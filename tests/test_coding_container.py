"""The .jxc container: every damaged or mismatched file is refused, cleanly and quickly."""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name

import struct
import time
import zlib

import numpy as np
import pytest

from coding_models import fixture_image
from jaxcomp.coding import compression, container
from jaxcomp.errors import UserError

FUZZ_CASES = 300


@pytest.fixture(scope="module")
def stream(hyperprior):
  return compression.compress(hyperprior, fixture_image("cups_61x37.png")[None])[0]


def _refused(cm, data, match=None):
  began = time.perf_counter()
  with pytest.raises(UserError, match=match) as info:
    compression.decompress(cm, data)
  assert time.perf_counter() - began < 0.5
  assert "\n" not in str(info.value)
  return str(info.value)


def _with_crc(body):
  return body + struct.pack("<I", zlib.crc32(body))


def test_header_round_trip(hyperprior, stream):
  b = container.parse(stream, hyperprior.fingerprint)
  assert (b.backend, b.channels, b.height, b.width) == ("constriction", 3, 37, 61)
  assert container.pack(b) == stream
  assert len(stream) == container.OVERHEAD_BYTES + len(b.z_stream) + len(b.y_stream)


def test_every_truncation_is_refused(hyperprior, stream):
  for n in range(len(stream)):
    _refused(hyperprior, stream[:n])


def test_trailing_bytes_are_refused(hyperprior, stream):
  for extra in (b"\0", b"\0" * 4, stream):
    _refused(hyperprior, stream + extra, "trailing bytes")


def test_every_bit_flip_is_refused(hyperprior, stream):
  for bit in range(8 * len(stream)):
    data = bytearray(stream)
    data[bit // 8] ^= 1 << (bit % 8)
    _refused(hyperprior, bytes(data))


def test_random_mutations_are_refused(hyperprior, stream):
  rng = np.random.default_rng(0)
  for _ in range(FUZZ_CASES):
    data = bytearray(stream)
    kind = rng.integers(4)
    if kind == 0:  # overwrite a few bytes
      for pos in rng.integers(0, len(data), rng.integers(1, 8)):
        data[pos] = (data[pos] + rng.integers(1, 256)) % 256
    elif kind == 1:  # delete a run
      start = rng.integers(0, len(data))
      del data[start:start + rng.integers(1, 16)]
    elif kind == 2:  # insert a run
      pos = rng.integers(0, len(data) + 1)
      data[pos:pos] = rng.integers(0, 256, rng.integers(1, 16), dtype=np.uint8).tobytes()
    else:  # truncate and pad with garbage
      data = data[:rng.integers(0, len(data))] + rng.bytes(rng.integers(0, 8))
    if bytes(data) != stream:
      _refused(hyperprior, bytes(data))


def test_wrong_version_backend_model_and_values(hyperprior, stream):
  body = stream[:-4]
  assert "version 2" in _refused(hyperprior, _with_crc(body[:4] + b"\x02" + body[5:]))
  assert "backend id 9" in _refused(hyperprior, _with_crc(body[:5] + b"\x09" + body[6:]))
  assert "different model" in _refused(
      hyperprior, _with_crc(body[:8] + bytes(16) + body[24:]))
  assert "invalid header" in _refused(hyperprior, _with_crc(body[:6] + b"\x02" + body[7:]))
  assert "invalid header" in _refused(hyperprior, _with_crc(body[:24] + bytes(4) + body[28:]))
  assert "bad magic" in _refused(hyperprior, b"PNG" + stream[3:])
  assert "bad magic" in _refused(hyperprior, b"")


def test_index_mismatch_is_detected_before_decoding_y(hyperprior, stream):
  body = bytearray(stream[:-4])
  body[32:36] = struct.pack("<I", (struct.unpack("<I", body[32:36])[0] + 1) % 2**32)
  _refused(hyperprior, _with_crc(bytes(body)), "scale indexes")


def test_damaged_streams_behind_a_valid_checksum_fail_cleanly(hyperprior, stream):
  """A crafted file (streams altered, checksum recomputed) never crashes the decoder."""
  rng = np.random.default_rng(1)
  head, tail = container.HEADER_BYTES, len(stream) - 4
  for _ in range(100):
    body = bytearray(stream[:-4])
    for pos in rng.integers(head, tail, rng.integers(1, 6)):
      body[pos] = rng.integers(0, 256)
    try:
      image = compression.decompress(hyperprior, _with_crc(bytes(body)))
      assert image.shape == (37, 61, 3)
    except UserError as e:
      assert "\n" not in str(e)


def test_tfc_stream_without_tfc_is_a_clear_error(hyperprior, stream):
  try:
    import tensorflow_compression
    pytest.skip("tensorflow_compression is installed here")
  except ImportError:
    pass
  body = stream[:5] + bytes([container.BACKEND_IDS["tfc"]]) + stream[6:-4]
  _refused(hyperprior, _with_crc(body), "tfc entropy coder is not available")
