"""The default range-coder backend: `constriction`'s queue (range) coder, one model per table row.

Symbols are grouped by table row (a stable radix sort of the row indexes) and each group is coded
in one vectorized call with that row's categorical model, in increasing row order; the decoder
knows the rows (z: the channel; y: the scale indexes computed from z_hat), so it knows every
group's size and scatters the decoded groups back. No Python loop runs per symbol.

Each row's model is constriction's `Categorical(frequencies / 2^precision, perfect=False)`: the
stored integer frequencies (every one >= 1) are what it reads, and constriction's fast fixed-point
quantization of them is exactly reproducible on both sides.

Escapes: a value whose symbol falls outside [0, L) is coded as the escape bin L; after all groups,
the escaped values (in group order) follow as an Elias-gamma-like code with uniform models:
r = -2s - 1 for s < 0 or 2(s - L) for s >= L, k = floor(log2(r + 1)) as Uniform(32), then the k
low bits of r + 1 as Uniform(2^min(k, 16)) and, for k > 16, the remaining k - 16 bits.
Values must satisfy |value| <= 2^30 (`compression` checks this before encoding).

The stream is the coder's uint32 words, little-endian (a multiple of 4 bytes).
"""

import constriction
import numpy as np

_ESCAPE_BITS_ALPHABET = 32
_CHUNK_BITS = 16


def _bit_length_minus_one(x):
  """floor(log2(x)) of int64 x >= 1, elementwise."""
  x = x.copy()
  n = np.zeros_like(x)
  for shift in (32, 16, 8, 4, 2, 1):
    big = (x >> shift) > 0
    n += big * shift
    x = np.where(big, x >> shift, x)
  return n


def _group_order(rows, num_rows):
  """(order, counts): a stable sort of positions by row, and the size of every row's group."""
  key = rows.astype(np.uint8 if num_rows <= 256 else np.uint16)
  return np.argsort(key, kind="stable"), np.bincount(rows, minlength=num_rows)


class Coder:
  """Encodes/decodes integer values with a `tables.CdfTables` stack.

  Args:
    tables: CdfTables; row r codes values offset[r] ... offset[r] + length[r] - 2 directly.
  """

  def __init__(self, tables):
    self._tables = tables
    self._in_range = tables.length.astype(np.int32) - 1
    self._offset = tables.offset.astype(np.int32)
    self._models = {}

  def _model(self, row):
    if row not in self._models:
      freqs = self._tables.frequencies(row).astype(np.float64)
      self._models[row] = constriction.stream.model.Categorical(
          freqs / float(1 << self._tables.precision), perfect=False)
    return self._models[row]

  def _groups(self, rows):
    """Stable sort of positions by row: (order, rows present, their counts, per-symbol limits
    and offsets in sorted order)."""
    order, counts = _group_order(rows, len(self._in_range))
    present = np.flatnonzero(counts)
    counts = counts[present]
    return (order, present, counts, np.repeat(self._in_range[present], counts),
            np.repeat(self._offset[present], counts))

  def encode(self, values, indexes):
    """values, indexes: [n] integer arrays (|values| <= 2^30; indexes: the table row of every
    symbol, in [0, R)) -> bytes."""
    order, present, counts, limit, offset = self._groups(np.asarray(indexes).ravel())
    symbols = np.asarray(values, np.int32).ravel()[order] - offset
    escaped = (symbols < 0) | (symbols >= limit)
    coded = np.where(escaped, limit, symbols)
    encoder = constriction.stream.queue.RangeEncoder()
    stops = np.cumsum(counts)
    for row, start, stop in zip(present.tolist(), (stops - counts).tolist(), stops.tolist()):
      encoder.encode(coded[start:stop], self._model(row))
    if escaped.any():
      _encode_escapes(encoder, symbols[escaped].astype(np.int64), limit[escaped].astype(np.int64))
    return encoder.get_compressed().astype("<u4").tobytes()

  def decode(self, data, indexes):
    """Inverse of `encode`: (bytes, indexes [n]) -> [n] int32 values. ValueError on bad input."""
    if len(data) % 4:
      raise ValueError("stream length is not a multiple of 4 bytes")
    order, present, counts, limit, offset = self._groups(np.asarray(indexes).ravel())
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))
    try:
      symbols = np.concatenate([decoder.decode(self._model(row), count)
                                for row, count in zip(present.tolist(), counts.tolist())])
      escaped = symbols == limit
      if escaped.any():
        symbols[escaped] = _decode_escapes(decoder, limit[escaped].astype(np.int64))
    except AssertionError as e:  # constriction's signal for data its models cannot produce
      raise ValueError(str(e)) from None
    values = np.empty_like(symbols)
    values[order] = symbols + offset
    return values


def _encode_escapes(encoder, symbols, limit):
  """Codes out-of-range symbols (see the module docstring)."""
  r = np.where(symbols < 0, -2 * symbols - 1, 2 * (symbols - limit)) + 1
  k = _bit_length_minus_one(r)
  mantissa = r - (np.int64(1) << k)
  uniform = constriction.stream.model.Uniform()
  encoder.encode(k.astype(np.int32), constriction.stream.model.Uniform(_ESCAPE_BITS_ALPHABET))
  low_bits = np.minimum(k, _CHUNK_BITS)
  has_low = k > 0
  encoder.encode((mantissa[has_low] & ((1 << low_bits[has_low]) - 1)).astype(np.int32), uniform,
                 (1 << low_bits[has_low]).astype(np.int32))
  has_high = k > _CHUNK_BITS
  encoder.encode((mantissa[has_high] >> _CHUNK_BITS).astype(np.int32), uniform,
                 (1 << (k[has_high] - _CHUNK_BITS)).astype(np.int32))


def _decode_escapes(decoder, limit):
  """Inverse of `_encode_escapes`: the symbols of len(limit) escaped values."""
  uniform = constriction.stream.model.Uniform()
  k = decoder.decode(constriction.stream.model.Uniform(_ESCAPE_BITS_ALPHABET), len(limit))
  k = k.astype(np.int64)
  low_bits = np.minimum(k, _CHUNK_BITS)
  has_low = k > 0
  mantissa = np.zeros_like(k)
  mantissa[has_low] = decoder.decode(uniform, (1 << low_bits[has_low]).astype(np.int32))
  has_high = k > _CHUNK_BITS
  high = decoder.decode(uniform, (1 << (k[has_high] - _CHUNK_BITS)).astype(np.int32))
  mantissa[has_high] += high.astype(np.int64) << _CHUNK_BITS
  r = mantissa + (np.int64(1) << k) - 1
  return np.where(r % 2 == 1, -(r + 1) // 2, r // 2 + limit)
