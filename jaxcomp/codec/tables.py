"""Quantized integer CDF tables: built once at export in numpy float64, stored as integers.

Two families of tables, each a `CdfTables` (one row per distribution):

  y: one row per scale-table entry s_t (CompressAI's 64 scales 0.11 ... 256), the discretized
     N(0, sigma_t^2) * U(-1/2, 1/2) over the integers -c_t ... c_t, c_t = ceil(s_t * 6.109)
     (tail_mass = 1e-9 at s_t, as CompressAI's `GaussianConditional.update`), with sigma_t the
     geometric centre of the scales that select row t (`gaussian_tables`).
  z: one row per channel of the factorized density, over the integers around the channel's
     median given by the `quantiles` collection: median - ceil(median - lower) ...
     median + ceil(upper - median), each side capped at MAX_HALF_WIDTH.

A row with L in-range symbols holds L + 2 CDF values [0, c_1, ..., c_L, 2^precision] over L + 1
bins: the L symbols, then one escape bin carrying the tail mass. Every bin has frequency >= 1
and the frequencies sum to exactly 2^precision. A value v is coded as the symbol v - offset;
symbols outside [0, L) are coded as the escape bin followed by the value itself (each backend
documents how). Rows are padded to a common width by repeating 2^precision (zero-probability
padding, as tensorflow-compression's range coder expects).

The tables, plus the float32 bit patterns of the scale thresholds that select a y row, live in
the exported model as `tables.npz` (integer arrays only, read with allow_pickle=False). Encoder
and decoder read only these integers; nothing is recomputed from floats at coding time.
"""

import dataclasses
import math
import os
import zipfile
import zlib

import numpy as np

from jaxcomp.codec import gaussian_conditional
from jaxcomp.errors import UserError

PRECISION = 16
TAIL_MASS = 1e-9
MAX_HALF_WIDTH = 2048
FILE = "tables.npz"


@dataclasses.dataclass(frozen=True)
class CdfTables:
  """A stack of quantized CDFs.

  Attributes:
    cdf: [R, W] int32; row r is [0, c_1, ..., 2^precision] over length[r] bins, then padding
      equal to 2^precision.
    length: [R] int32, number of bins including the escape bin (L + 1, so L >= 1 in-range symbols).
    offset: [R] int32, the value coded by symbol 0.
    precision: bits of the CDF values.
  """

  cdf: np.ndarray
  length: np.ndarray
  offset: np.ndarray
  precision: int

  def frequencies(self, row):
    """[length[row]] int64 bin frequencies of one row (escape bin last)."""
    return np.diff(self.cdf[row, :self.length[row] + 1].astype(np.int64))


@dataclasses.dataclass(frozen=True)
class CodingTables:
  """Everything the entropy coder reads from an exported model.

  Attributes:
    y: CdfTables with one row per scale-table entry.
    z: CdfTables with one row per channel of z.
    scale_bounds: [T - 1] float32, the scale-table entries that separate the y rows; a scale s
      selects row #{t : s > scale_bounds[t]}, its scale index (`scale_indexes`; stored as their
      uint32 bit patterns).
  """

  y: CdfTables
  z: CdfTables
  scale_bounds: np.ndarray


def scale_indexes(scales, bounds):
  """The scale index (y table row) of every scale: #{t : scale > bounds[t]}.

  CompressAI's `build_indexes` (a scale selects the smallest table entry >= it; tensorflow-
  compression truncates a continuous index, i.e. rounds down). Scales at or below the first bound
  (including those under the likelihood's lower bound 0.11) select row 0.

  Args:
    scales: [...] float32 numpy scales.
    bounds: [T - 1] increasing float32 bounds, `CodingTables.scale_bounds`.

  Returns:
    [...] int32 in [0, T - 1].
  """
  return np.searchsorted(bounds, scales, side="left").astype(np.int32)


def quantize_pmf(pmf, precision=PRECISION):
  """Integer frequencies >= 1 summing to exactly 2^precision, close to a pmf.

  Rounds p * S to the nearest integer (at least 1) with the largest S whose frequencies sum to at
  most 2^precision (bisection in float64), then gives the remaining units to the bins that would
  be rounded up next. Deterministic for a given float64 input.

  Args:
    pmf: [n] non-negative float64 probabilities (need not be normalized), 1 <= n <= 2^precision.
    precision: bits.

  Returns:
    [n] int64 frequencies.
  """
  total = 1 << precision
  p = np.asarray(pmf, np.float64)
  if not 1 <= p.size <= total:
    raise ValueError(f"cannot quantize {p.size} bins to {precision} bits")
  p = np.maximum(np.where(np.isfinite(p), p, 0.0), 0.0)
  if p.sum() <= 0:
    p = np.ones_like(p)
  p = p / p.sum()

  def freqs(scale):
    return np.maximum(1.0, np.floor(p * scale + 0.5))

  lo, hi = 0.0, 2.0 * total
  for _ in range(80):
    mid = 0.5 * (lo + hi)
    if freqs(mid).sum() <= total:
      lo = mid
    else:
      hi = mid
  f = freqs(lo).astype(np.int64)
  missing = total - int(f.sum())
  if missing:
    with np.errstate(divide="ignore"):
      next_step = np.where(p > 0, (f + 0.5) / p, np.inf)
    f[np.argsort(next_step, kind="stable")[:missing]] += 1
  return f


def _stack(rows, offsets, precision):
  """CdfTables from a list of integer frequency rows (escape bin last)."""
  total = 1 << precision
  width = max(len(f) for f in rows) + 1
  cdf = np.full((len(rows), width), total, np.int64)
  for r, f in enumerate(rows):
    cdf[r, 0] = 0
    cdf[r, 1:len(f) + 1] = np.cumsum(f)
  return CdfTables(cdf=cdf.astype(np.int32), length=np.array([len(f) for f in rows], np.int32),
                   offset=np.asarray(offsets, np.int32), precision=precision)


def _standard_cdf(t):
  return np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in np.ravel(t)], np.float64)


def gaussian_tables(scales, tail_mass=TAIL_MASS, precision=PRECISION):
  """CdfTables for N(0, s^2) * U(-1/2, 1/2), one row per scale-table entry.

  Row t codes the scales that select it, (scales[t-1], scales[t]] (CompressAI's rounding up,
  `scale_indexes`; row 0: every scale <= scales[0]). Its distribution uses
  the geometric centre of that interval, sqrt(scales[t-1] * scales[t]) (scales[0] for row 0), so
  that the table is not systematically wider than the scales it codes (always using the upper end
  costs up to log2(scales[t] / scales[t-1]) = 0.18 bits per symbol with the default table); its
  support covers the upper end: -c_t ... c_t with c_t = ceil(scales[t] * Phi^{-1}(1 - tail_mass/2)).

  Args:
    scales: [T] increasing float64 scales.
    tail_mass: probability outside each row's support at the row's largest scale.
    precision: bits.

  Returns:
    CdfTables with T rows; row t has offset -c_t.
  """
  multiplier = -_inverse_standard_cdf(tail_mass / 2)
  scales = np.asarray(scales, np.float64)
  centres = np.sqrt(scales * np.concatenate([scales[:1], scales[:-1]]))
  rows, offsets = [], []
  for upper, scale in zip(scales, centres):
    center = min(int(math.ceil(upper * multiplier)), MAX_HALF_WIDTH)
    values = np.abs(np.arange(-center, center + 1, dtype=np.float64))
    pmf = _standard_cdf((0.5 - values) / scale) - _standard_cdf((-0.5 - values) / scale)
    tail = 2.0 * _standard_cdf(np.array([-(center + 0.5) / scale]))[0]
    rows.append(quantize_pmf(np.append(pmf, tail), precision))
    offsets.append(-center)
  return _stack(rows, offsets, precision)


def _inverse_standard_cdf(q):
  """Phi^{-1}(q) for 0 < q < 1/2, by bisection on erfc (float64)."""
  lo, hi = -40.0, 0.0
  for _ in range(200):
    mid = 0.5 * (lo + hi)
    if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < q:
      lo = mid
    else:
      hi = mid
  return 0.5 * (lo + hi)


def _logits_cumulative(params, x):
  """float64 numpy twin of `entropy_bottleneck.logits_cumulative`: x [C, 1, n] -> [C, 1, n]."""
  n_layers = len([k for k in params if k.startswith("matrices_")])
  logits = x
  for i in range(n_layers):
    matrix = np.logaddexp(0.0, np.asarray(params[f"matrices_{i}"], np.float64))
    logits = np.matmul(matrix, logits) + np.asarray(params[f"biases_{i}"], np.float64)
    if i < n_layers - 1:
      logits = logits + np.tanh(np.asarray(params[f"factors_{i}"], np.float64)) * np.tanh(logits)
  return logits


def _sigmoid(x):
  return 0.5 * (1.0 + np.tanh(0.5 * x))


def factorized_tables(params, quantiles, precision=PRECISION):
  """CdfTables for the factorized density of z, one row per channel.

  Args:
    params: the entropy bottleneck's density parameters (matrices_i, biases_i, factors_i) for C
      channels.
    quantiles: [C, 3] (lower tail, median, upper tail) from the `quantiles` collection.
    precision: bits.

  Returns:
    CdfTables with C rows; row c covers the integers median - minima ... median + maxima and its
    offset is -minima, so a rounded value round(z - median) codes as symbol value + minima.
  """
  quantiles = np.asarray(quantiles, np.float64)
  medians = quantiles[:, 1]
  with np.errstate(invalid="ignore"):
    minima = np.clip(np.nan_to_num(np.ceil(medians - quantiles[:, 0])), 0, MAX_HALF_WIDTH)
    maxima = np.clip(np.nan_to_num(np.ceil(quantiles[:, 2] - medians)), 0, MAX_HALF_WIDTH)
  minima, maxima = minima.astype(np.int64), maxima.astype(np.int64)
  width = int((minima + maxima).max()) + 1
  steps = np.arange(width, dtype=np.float64)[None, None, :]
  samples = (medians - minima)[:, None, None] + steps
  lower = _logits_cumulative(params, samples - 0.5)
  upper = _logits_cumulative(params, samples + 0.5)
  sign = -np.sign(lower + upper)
  sign = np.where(sign == 0, 1.0, sign)
  pmf = np.abs(_sigmoid(sign * upper) - _sigmoid(sign * lower))[:, 0, :]
  rows = []
  for c in range(len(medians)):
    n = int(minima[c] + maxima[c]) + 1
    tail = _sigmoid(lower[c, 0, 0]) + _sigmoid(-upper[c, 0, n - 1])
    rows.append(quantize_pmf(np.append(pmf[c, :n], tail), precision))
  return _stack(rows, -minima, precision)


def build(variables, precision=PRECISION):
  """CodingTables for a model's variables ({'params': ..., 'quantiles': ...})."""
  table = gaussian_conditional.scale_table()
  params = variables["params"]["entropy_bottleneck"]
  quantiles = variables["quantiles"]["entropy_bottleneck"]["z"]
  return CodingTables(
      y=gaussian_tables(table, precision=precision),
      z=factorized_tables({k: np.asarray(v) for k, v in params.items()}, quantiles, precision),
      scale_bounds=np.asarray(table[:-1], np.float32))


def to_arrays(tables):
  """CodingTables -> {name: integer numpy array} for `np.savez`."""
  arrays = {"precision": np.array(tables.y.precision, np.int32),
            "scale_bounds_bits": tables.scale_bounds.astype(np.float32).view(np.uint32)}
  for name, t in (("y", tables.y), ("z", tables.z)):
    arrays.update({f"{name}_cdf": t.cdf, f"{name}_length": t.length, f"{name}_offset": t.offset})
  return arrays


def save(path, tables):
  """Writes `tables` as an .npz of integer arrays (uncompressed, so byte-stable)."""
  with open(path, "wb") as f:
    np.savez(f, **to_arrays(tables))


def load(path, num_z_channels):
  """CodingTables from `save`'s file, validated; UserError if missing or inconsistent.

  Args:
    path: the .npz file.
    num_z_channels: the model's N (rows expected in the z tables).
  """
  if not os.path.isfile(path):
    raise UserError(f"{path} not found: the model has no coding tables (re-export it with this "
                    "jaxcomp, e.g. `jaxcomp convert compressai`)")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise UserError(f"cannot read {path} (truncated or corrupt: re-export the model): {e}"
                    ) from None
  try:
    tables = from_arrays(arrays)
    validate(tables, num_z_channels)
  except (KeyError, ValueError, TypeError) as e:
    raise UserError(f"{path}: invalid coding tables ({e})") from None
  return tables


def from_arrays(arrays):
  """Inverse of `to_arrays` (no validation)."""
  for k, v in arrays.items():
    if not np.issubdtype(v.dtype, np.integer):
      raise ValueError(f"{k} is not an integer array")
  precision = int(arrays["precision"])
  parts = {}
  for name in ("y", "z"):
    parts[name] = CdfTables(cdf=arrays[f"{name}_cdf"].astype(np.int32),
                            length=arrays[f"{name}_length"].astype(np.int32),
                            offset=arrays[f"{name}_offset"].astype(np.int32), precision=precision)
  bounds = arrays["scale_bounds_bits"].astype(np.uint32).view(np.float32)
  return CodingTables(y=parts["y"], z=parts["z"], scale_bounds=bounds)


def validate(tables, num_z_channels):
  """Raises ValueError unless every row is a valid CDF (see the module docstring)."""
  if not 1 <= tables.y.precision <= 16 or tables.z.precision != tables.y.precision:
    raise ValueError(f"precision {tables.y.precision} not in [1, 16]")
  total = 1 << tables.y.precision
  if tables.z.cdf.shape[0] != num_z_channels:
    raise ValueError(f"{tables.z.cdf.shape[0]} z rows for {num_z_channels} channels")
  if tables.scale_bounds.shape != (tables.y.cdf.shape[0] - 1,):
    raise ValueError("scale bounds do not match the y rows")
  if not np.all(np.diff(tables.scale_bounds) > 0):
    raise ValueError("scale bounds are not increasing")
  for name, t in (("y", tables.y), ("z", tables.z)):
    rows, width = t.cdf.shape if t.cdf.ndim == 2 else (0, 0)
    if rows == 0 or t.length.shape != (rows,) or t.offset.shape != (rows,):
      raise ValueError(f"{name} tables have inconsistent shapes")
    if np.any(t.length < 2) or np.any(t.length > width - 1):
      raise ValueError(f"{name} row lengths out of range")
    cols = np.arange(width)[None, :]
    inside = cols <= t.length[:, None]
    steps = np.diff(t.cdf.astype(np.int64), axis=1)
    if (np.any(t.cdf[:, 0] != 0) or np.any(t.cdf[~inside] != total)
        or np.any(t.cdf[np.arange(rows), t.length] != total)
        or np.any(steps[inside[:, 1:]] < 1)):
      raise ValueError(f"{name} rows are not CDFs with frequencies >= 1 summing to 2^{t.precision}")
    if np.any(np.abs(t.offset.astype(np.int64)) > 1 << 20):
      raise ValueError(f"{name} offsets out of range")
