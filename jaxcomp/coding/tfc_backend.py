"""The `--coder tfc` backend: tensorflow-compression's range coder with the same integer tables.

Needs tensorflow-compression 2.14.1 (the `tfc` extra, in its own environment: BUILD_NOTES.md,
scripts/tfc_env.sh); importing this module imports TensorFlow, which the core package never does.

The tables go to the coder as tensorflow-compression's 2-D `lookup`: row r is
[-precision, 0, c_1, ..., 2^precision, padding 2^precision ...]. The negative precision enables
its overflow mode: the last non-zero bin -- the tables' escape bin -- is the escape code, and
out-of-range symbols (negative or >= L) follow as an Elias gamma code interleaved into the stream.
All symbols of a latent go into one stream with `entropy_encode_index`, row r per symbol.
"""

import os

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top,wrong-import-position



class Coder:
  """Encodes/decodes integer values with a `tables.CdfTables` stack.

  Args:
    tables: CdfTables; row r codes values offset[r] ... offset[r] + length[r] - 2 directly.
  """

  def __init__(self, tables):
    rows = tables.cdf.shape[0]
    precision = np.full((rows, 1), -tables.precision, np.int32)
    with tf.device("/cpu:0"):
      self._lookup = tf.constant(np.concatenate([precision, tables.cdf], axis=1), tf.int32)
    self._offset = tables.offset.astype(np.int64)

  def _symbols_and_rows(self, values, rows):
    rows = np.asarray(rows, np.int32).ravel()
    return rows, (np.asarray(values, np.int64).ravel() - self._offset[rows]).astype(np.int32)

  def encode(self, values, indexes):
    """values, indexes: [n] integer arrays (|values| <= 2^30; indexes: the table row of every
    symbol, in [0, R)) -> bytes."""
    rows, symbols = self._symbols_and_rows(values, indexes)
    try:
      with tf.device("/cpu:0"):
        handle = tfc.create_range_encoder([], self._lookup)
        handle = tfc.entropy_encode_index(handle, rows, symbols)
        return bytes(tfc.entropy_encode_finalize(handle).numpy())
    except tf.errors.OpError as e:  # e.g. re-encoding what a crafted stream decoded to
      raise ValueError(e.message.splitlines()[0]) from None

  def decode(self, data, indexes):
    """Inverse of `encode`: (bytes, indexes [n]) -> [n] int32 values. ValueError on bad input."""
    rows = np.asarray(indexes, np.int32).ravel()
    try:
      with tf.device("/cpu:0"):
        handle = tfc.create_range_decoder(tf.constant(data, tf.string), self._lookup)
        handle, symbols = tfc.entropy_decode_index(handle, rows, rows.shape, tf.int32)
        ok = bool(tfc.entropy_decode_finalize(handle).numpy())
    except tf.errors.OpError as e:
      raise ValueError(e.message.splitlines()[0]) from None
    if not ok:
      raise ValueError("the range decoder's end-of-stream check failed")
    return (symbols.numpy().astype(np.int64) + self._offset[rows]).astype(np.int32)
