"""Golden bitstream: a committed model and image, their .jxc and decoded PNG, byte for byte.

The files under tests/expected/golden/ were written by scripts/make_golden_bitstream.py (a tiny
bmshj2018-hyperprior, N=8, M=12, and a 70x54 photo crop). Every other coding test checks that
the encoder and the decoder agree with each other; this one checks that they agree with the files
written earlier, so a change of the format on both sides (a table, the container header, the
padding, the rounding) cannot pass unnoticed. The last tests show that it notices: one changed
CDF table row, or one changed header field, changes the bytes.
"""

import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from jaxcomp.codec import export
from jaxcomp.coding import compression, container
from jaxcomp import images
from jaxcomp.codec import tables as coding_tables
from jaxcomp.errors import UserError

GOLDEN = os.path.join(os.path.dirname(__file__), "expected", "golden")
MODEL = os.path.join(GOLDEN, "model")


def _read(name):
  with open(os.path.join(GOLDEN, name), "rb") as f:
    return f.read()


@pytest.fixture(scope="module")
def golden_model():
  return compression.CodingModel(MODEL)


@pytest.fixture(scope="module")
def golden_image():
  image, channels = images.read(os.path.join(GOLDEN, "image.png"))
  assert image.shape == (54, 70, 3) and channels == 3
  return image


def test_fingerprint_matches_the_committed_files(golden_model):
  """fingerprint.txt is the sha256 of the committed model files, and the .jxc header records it."""
  expected = _read("fingerprint.txt").decode().strip()
  assert _read(os.path.join("model", "fingerprint.txt")).decode().strip() == expected
  config = export.read_config(MODEL)
  tables = coding_tables.load(os.path.join(MODEL, coding_tables.FILE), config["N"])
  flat = load_file(os.path.join(MODEL, export.PARAMS_FILE))
  assert export.fingerprint(config, flat, coding_tables.to_arrays(tables)) == expected
  assert golden_model.fingerprint == bytes.fromhex(expected)[:16]
  assert _read("image.jxc")[8:24] == bytes.fromhex(expected)[:16]


def test_compress_gives_the_committed_bytes(golden_model, golden_image):
  (data,) = compression.compress(golden_model, golden_image[None])
  assert data == _read("image.jxc")


def test_decompress_gives_the_committed_pixels(golden_model):
  decoded = compression.decompress(golden_model, _read("image.jxc"), "image.jxc")
  expected, _ = images.read(os.path.join(GOLDEN, "decoded.png"))
  assert decoded.dtype == np.uint8 and decoded.shape == expected.shape
  np.testing.assert_array_equal(decoded, expected)


def _copy_with_changed_row(tmp_path, latent, row, symbol):
  """A copy of the golden model with one CDF row of `latent` changed: half the frequency of the
  row's most probable bin moved to the bin of `symbol` (or to the next bin if that is the most
  probable one); its fingerprint recomputed so that it loads."""
  path = str(tmp_path / "model")
  shutil.copytree(MODEL, path)
  config = export.read_config(path)
  table_file = os.path.join(path, coding_tables.FILE)
  tables = coding_tables.load(table_file, config["N"])
  arrays = {k: np.array(v) for k, v in coding_tables.to_arrays(tables).items()}  # copies
  cdf = arrays[f"{latent}_cdf"][row]
  freqs = np.diff(cdf[:arrays[f"{latent}_length"][row] + 1])
  source = int(np.argmax(freqs))
  target = symbol if symbol != source else source + 1
  moved = freqs[source] // 2
  if source < target:
    cdf[source + 1:target + 1] -= moved
  else:
    cdf[target + 1:source + 1] += moved
  with open(table_file, "wb") as f:
    np.savez(f, **arrays)
  changed = coding_tables.load(table_file, config["N"])  # still valid CDFs
  assert not np.array_equal(getattr(changed, latent).cdf, getattr(tables, latent).cdf)
  flat = load_file(os.path.join(path, export.PARAMS_FILE))
  with open(os.path.join(path, export.FINGERPRINT_FILE), "w") as f:
    f.write(export.fingerprint(config, flat, arrays) + "\n")
  return path


@pytest.mark.parametrize("latent", ["z", "y"])
def test_a_changed_table_row_changes_the_bytes(golden_model, golden_image, tmp_path, latent):
  """The byte comparison fails when one table row changes: the coded streams (not only the
  fingerprint in the header) differ."""
  sym = compression.decode_symbols(golden_model, container.parse(_read("image.jxc"),
                                                           golden_model.fingerprint))
  values = sym.y_values if latent == "y" else sym.z_values
  rows = sym.y_indexes if latent == "y" else compression.z_indexes(sym.z_values.shape)
  row = int(np.bincount(rows.ravel()).argmax())  # the row that codes the most symbols
  coded = values[rows == row] - getattr(golden_model.tables, latent).offset[row]
  symbol = int(np.bincount(coded[coded >= 0]).argmax())  # its most frequent in-range symbol
  changed = compression.CodingModel(_copy_with_changed_row(tmp_path, latent, row, symbol))
  assert changed.fingerprint != golden_model.fingerprint
  (data,) = compression.compress(changed, golden_image[None])
  golden = _read("image.jxc")
  streams = slice(container.HEADER_BYTES, -4)
  assert data[streams] != golden[streams]
  # ... and the model with the changed row refuses the golden file (another fingerprint).
  with pytest.raises(UserError, match="different model"):
    compression.decompress(changed, golden)


@pytest.mark.parametrize("field, value", [("VERSION", 2),
                                          ("BACKEND_IDS", {"constriction": 3, "tfc": 2})])
def test_a_changed_header_field_changes_the_bytes(golden_model, golden_image, monkeypatch, field,
                                                  value):
  """The byte comparison fails when the container writer changes one header field."""
  monkeypatch.setattr(container, field, value)
  (data,) = compression.compress(golden_model, golden_image[None])
  golden = _read("image.jxc")
  assert len(data) == len(golden)
  differing = [i for i in range(len(data)) if data[i] != golden[i]]
  header_bytes = [i for i in differing if i < container.HEADER_BYTES]
  assert header_bytes == [{"VERSION": 4, "BACKEND_IDS": 5}[field]]
