"""Compress and decompress images with an exported model: uint8 pixels <-> .jxc bytes.

Encoder, for a batch of same-size images [B, H, W, 3] uint8:
  1. x / 255, zero-padded to a multiple of 64 (`padding`); g_a and h_a on the whole batch,
     optionally sharded over several devices: y [B, H'/16, W'/16, M], z [B, H'/64, W'/64, N].
  2. Per image, on the host: z_int = round(z - median) (float32, as the model rounds), and
     z_hat = z_int + median computed from those integers -- exactly what the decoder will compute
     from the decoded integers.
  3. `hyper`: h_s(z_hat) for that one image, [1, h, w, N], by one jitted program on the first CPU
     device -- the same program, input and device the decoder uses. Scale indexes are
     #{t : scale > bound_t} against the float32 bounds stored in the tables
     (`tables.scale_indexes`).
  4. y_int = round(y - mean) (mean = 0 for the scale hyperprior); z_int coded with one table row
     per channel, y_int with the row given by its scale index; both wrapped in the container.
     A model with adaptive quantization steps (`models.Hyperprior.adaptive_step`) also gets a
     step per location from the hyper-synthesis (h_q, computed with the scales):
     y_int = round((y - mean) / step), indexed by scale / step.
Decoder: validate the container, check the image size against the pixel budget, decode z_int
(the stream must re-encode to itself: exactly consumed, `decode_stream`), recompute z_hat and
the indexes exactly as in steps 2-3, compare the indexes with the CRC-32 the encoder recorded,
decode y_int (consumed exactly, too),
y_hat = y_int (* step) + mean, g_s, crop, round(clip(x_hat, 0, 1) * 255).

What is guaranteed: the indexes (and means, steps) depend only on z_int and on the h_s program,
never on the batch size or the number of devices used for the analysis, so a file written from a
batch or on 8 devices decodes bit-exactly one image at a time on one device, on the same CPU
platform (same jax/XLA version and instruction set). What is not: XLA may compile h_s differently on
another CPU architecture or jax version; a scale within float rounding of a table bound could then
select another row. That case is detected, not silent: the index CRC in the header no longer
matches and decoding stops with an error before y is decoded.
"""

import dataclasses
import functools
import importlib
import zlib

import jax
import numpy as np

from jaxcomp import pixels
from jaxcomp.codec import export, models, padding, tables
from jaxcomp.coding import container
from jaxcomp.errors import UserError
from jaxcomp.registry import Registry

# Entropy-coder backends: name -> module with `Coder(cdf_tables)` (imported when first used: tfc
# needs TensorFlow, installed only in its own environment). The name is recorded in every header.
BACKENDS = Registry("entropy coder")
BACKENDS.register("constriction", "jaxcomp.coding.constriction_backend")
BACKENDS.register("tfc", "jaxcomp.coding.tfc_backend")
DEFAULT_BACKEND = "constriction"
MAX_VALUE = 1 << 30


@dataclasses.dataclass(frozen=True)
class Symbols:
  """The integers one image is coded as, and where they go.

  Attributes:
    z_values: [h, w, N] int32, round(z - median).
    y_values: [4h, 4w, M] int32, round((y - mean) / step).
    y_indexes: [4h, 4w, M] int32 scale indexes (the table row of every y symbol).
    means: [4h, 4w, M] float32 means, or None for the scale hyperprior.
    steps: [4h, 4w, 1] float32 quantization steps, or None (step 1) for a model without them.
  """

  z_values: np.ndarray
  y_values: np.ndarray
  y_indexes: np.ndarray
  means: np.ndarray
  steps: np.ndarray = None


@functools.lru_cache(maxsize=None)
def _programs(model):
  """Jitted (analysis, hyper_synthesis, synthesis) of a model, each f(variables, input).

  Cached per module definition (architecture, N, M), so every model of one architecture shares
  the compiled programs.
  """
  return tuple(jax.jit(functools.partial(model.apply, method=method))
               for method in (models.Hyperprior.analysis, models.Hyperprior.hyper_synthesis,
                              models.Hyperprior.synthesis))


class CodingModel:
  """An exported model ready to code: jitted transforms, tables, fingerprint, coders.

  Args:
    path: exported model directory (`jaxcomp.codec.export`).
  """

  def __init__(self, path):
    model, variables, config, coding_tables, fingerprint = export.load_for_coding(path)
    self.config = config
    self.tables = coding_tables
    self.fingerprint = bytes.fromhex(fingerprint)[:16]
    self.medians = np.asarray(variables["quantiles"]["entropy_bottleneck"]["z"], np.float32)[:, 1]
    self._variables_host = variables
    self._variables = jax.device_put(variables)
    self._cpu = jax.devices("cpu")[0]
    self._variables_cpu = (self._variables if jax.devices()[0] == self._cpu
                           else jax.device_put(variables, self._cpu))
    self._variables_sharded = {}
    self._analysis, self._hyper, self._synthesis = _programs(model)
    self._coders = {}
    # The saliency model of an encoder with saliency inputs (learned bit allocation), else None.
    self.saliency = export.saliency_model(path, config)
    self._saliency_fn = None if self.saliency is None else jax.jit(self.saliency.apply)

  def saliency_map(self, images):
    """uint8 [B, H, W, 3] -> the encoder's saliency input [B, H', W'] (padded like the images),
    or None for a model without saliency inputs."""
    if self._saliency_fn is None:
      return None
    s = np.asarray(self._saliency_fn(self.saliency.params,
                                     np.asarray(images, np.float32) / 255.0), np.float32)
    return padding.pad(s[..., None], models.DOWNSAMPLING)[0][..., 0]

  def analysis(self, x, devices=None, saliency=None):
    """x [B, H', W', 3] float32 (padded) -> (y, z) numpy float32; sharded over `devices`.

    saliency: [B, H', W'] (`saliency_map`) for a model with saliency inputs, else None.
    """
    variables = self._variables
    if devices is not None and len(devices) > 1:
      if x.shape[0] % len(devices):
        raise ValueError(f"batch {x.shape[0]} does not split over {len(devices)} devices")
      mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
      x = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))
      if saliency is not None:
        saliency = jax.device_put(
            saliency, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch")))
      key = tuple(devices)
      if key not in self._variables_sharded:
        self._variables_sharded[key] = jax.device_put(
            self._variables_host, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
      variables = self._variables_sharded[key]
    y, z = self._analysis(variables, x, saliency)
    return np.asarray(y), np.asarray(z)

  def hyper(self, z_values):
    """The canonical hyper-synthesis of one image.

    Args:
      z_values: [h, w, N] integers round(z - median).

    Returns:
      (scales, means, steps): float32 numpy; scales [4h, 4w, M] are those of the quantized
      symbols (the model's scales divided by the steps); means [4h, 4w, M] or None for the scale
      hyperprior; steps [4h, 4w, 1] or None for a model without adaptive quantization steps.
    """
    z_hat = z_values.astype(np.float32) + self.medians
    z_hat = jax.device_put(z_hat[None], self._cpu)
    scales, means, steps = (None if a is None else np.asarray(a)[0]
                            for a in self._hyper(self._variables_cpu, z_hat))
    if steps is not None:
      scales = scales / steps
    return scales, means, steps

  def synthesis(self, y_hat):
    """y_hat [1, h, w, M] float32 -> x_hat [1, 16h, 16w, 3] float32 numpy (not clipped)."""
    return np.asarray(self._synthesis(self._variables, y_hat))

  def coder(self, backend, latent):
    """The backend's coder for the 'y' or 'z' tables (cached)."""
    module_name, _ = BACKENDS.lookup(backend)
    if (backend, latent) not in self._coders:
      try:
        module = importlib.import_module(module_name)
      except ImportError as e:
        raise UserError(f"the {backend} entropy coder is not available here ({e}); see "
                        "BUILD_NOTES.md for its environment") from None
      self._coders[backend, latent] = module.Coder(getattr(self.tables, latent))
    return self._coders[backend, latent]


def index_digest(indexes):
  """CRC-32 of the scale indexes (as uint8, C order), recorded in the header."""
  return zlib.crc32(np.ascontiguousarray(indexes, np.uint8).tobytes())


def _integers(values, what):
  """round(values) as int32; UserError if non-finite or beyond +-MAX_VALUE."""
  rounded = np.round(values)
  if not np.all(np.isfinite(rounded)) or np.any(np.abs(rounded) > MAX_VALUE):
    raise UserError(f"the model produced non-finite or out-of-range {what} latents; "
                    "cannot code them")
  return rounded.astype(np.int32)


def symbols(cm, y, z):
  """Symbols of one image from its latents y [4h, 4w, M] and z [h, w, N] (float32)."""
  z_values = _integers(z - cm.medians, "z")
  scales, means, steps = cm.hyper(z_values)
  residual = y if means is None else y - means
  y_values = _integers(residual if steps is None else residual / steps, "y")
  return Symbols(z_values=z_values, y_values=y_values,
                 y_indexes=tables.scale_indexes(scales, cm.tables.scale_bounds), means=means,
                 steps=steps)


def z_indexes(shape):
  """Table indexes of z [h, w, N]: the channel of every element (int32, same shape)."""
  return np.broadcast_to(np.arange(shape[-1], dtype=np.int32), shape)


def encode(cm, sym, height, width, channels, backend=DEFAULT_BACKEND):
  """Symbols -> .jxc bytes."""
  z_stream = cm.coder(backend, "z").encode(sym.z_values, z_indexes(sym.z_values.shape))
  y_stream = cm.coder(backend, "y").encode(sym.y_values, sym.y_indexes)
  return container.pack(container.Bitstream(
      backend=backend, channels=channels, fingerprint=cm.fingerprint, height=height, width=width,
      index_digest=index_digest(sym.y_indexes), z_stream=z_stream, y_stream=y_stream))


def padded_input(images):
  """uint8 [B, H, W, 3] -> float32 [B, H', W', 3] in [0, 1], zero-padded to multiples of 64."""
  return padding.pad(images.astype(np.float32) / 255.0, models.DOWNSAMPLING)[0]


def compress(cm, images, channels=None, backend=DEFAULT_BACKEND, devices=None):
  """Compresses a batch of same-size images.

  Args:
    cm: CodingModel.
    images: [B, H, W, 3] uint8, 1 <= H, W <= 65535.
    channels: per image 1 (grayscale, decoded back to grayscale) or 3; default all 3.
    backend: 'constriction' or 'tfc'.
    devices: optional devices to shard the analysis over (B must be a multiple of their number).

  Returns:
    list of B bytes objects (.jxc files).
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
    raise ValueError(f"expected uint8 [B, H, W, 3] images, got {images.dtype} {images.shape}")
  batch, height, width, _ = images.shape
  if not (1 <= height <= container.MAX_SIDE and 1 <= width <= container.MAX_SIDE):
    raise UserError(f"image size {width}x{height} is outside 1 ... {container.MAX_SIDE} pixels")
  channels = [3] * batch if channels is None else list(channels)
  cm.coder(backend, "y")
  y, z = cm.analysis(padded_input(images), devices, cm.saliency_map(images))
  return [encode(cm, symbols(cm, y[i], z[i]), height, width, channels[i], backend)
          for i in range(batch)]


def latent_shapes(cm, height, width):
  """(z shape [h, w, N], y shape [4h, 4w, M]) for an image size."""
  pads = padding.padding_for(height, width, models.DOWNSAMPLING)
  h = (height + sum(pads[0])) // models.DOWNSAMPLING
  w = (width + sum(pads[1])) // models.DOWNSAMPLING
  return (h, w, cm.config["N"]), (4 * h, 4 * w, cm.config["M"])


def decode_stream(cm, backend, latent, stream, indexes, where="bitstream"):
  """Decodes one stream and checks that it holds exactly the symbols the header implies.

  An entropy decoder reads as many symbols as it is asked for, whatever the stream holds
  (constriction returns zeros from an exhausted stream), so a removed, shortened, extended or
  spliced stream would decode to garbage. The check: re-encoding the decoded values must give the
  stream back byte for byte (the encoder is deterministic), which refuses missing data, trailing
  data, and a stream written for other symbols or table indexes.

  Args:
    cm: CodingModel.
    backend: backend name of the file.
    latent: 'y' or 'z'.
    stream: the stream's bytes.
    indexes: int32 table index of every symbol (the shape of the latent).
    where: name for messages.

  Returns:
    int32 values, shaped like `indexes`. UserError (one line) if the stream does not fit.
  """
  coder = cm.coder(backend, latent)
  try:
    values = coder.decode(stream, indexes)
    canonical = coder.encode(values, indexes)
  except (ValueError, RuntimeError, OverflowError) as e:
    raise UserError(f"{where}: cannot decode the {latent} stream ({e})") from None
  if len(canonical) > len(stream):
    raise UserError(f"{where}: the {latent} stream is {len(stream)} bytes, too short for the "
                    f"{indexes.size} symbols of this image size (data missing)")
  if len(canonical) < len(stream):
    raise UserError(f"{where}: the {latent} stream has {len(stream) - len(canonical)} bytes of "
                    "trailing data after its symbols")
  if canonical != stream:
    raise UserError(f"{where}: the {latent} stream does not decode consistently (altered, or "
                    "written for another image or model)")
  return np.asarray(values, np.int32).reshape(indexes.shape)


def decode_symbols(cm, bitstream, where="bitstream"):
  """Container contents -> Symbols, checking the scale indexes against the header's CRC.

  The image size is checked against the pixel budget (`jaxcomp.pixels`) before anything is
  allocated; each stream must be consumed exactly (`decode_stream`).
  """
  pixels.check(bitstream.width, bitstream.height, where)
  z_shape, y_shape = latent_shapes(cm, bitstream.height, bitstream.width)
  z_values = decode_stream(cm, bitstream.backend, "z", bitstream.z_stream, z_indexes(z_shape),
                           where)
  scales, means, steps = cm.hyper(z_values)
  indexes = tables.scale_indexes(scales, cm.tables.scale_bounds)
  if index_digest(indexes) != bitstream.index_digest:
    raise UserError(f"{where}: the scale indexes decoded from the z stream do not match the "
                    "header's index CRC: header and streams do not belong together (a spliced or "
                    "altered file), or this platform's hyper-synthesis differs from the encoder's "
                    "(docs/bitstream.md); cannot decode")
  y_values = decode_stream(cm, bitstream.backend, "y", bitstream.y_stream, indexes, where)
  return Symbols(z_values=z_values, y_values=y_values.reshape(y_shape), y_indexes=indexes,
                 means=means, steps=steps)


def reconstruct(cm, sym, height, width, channels):
  """Symbols -> uint8 image [H, W, 3], or [H, W] when channels == 1."""
  y_hat = sym.y_values.astype(np.float32)
  if sym.steps is not None:
    y_hat = y_hat * sym.steps
  if sym.means is not None:
    y_hat = y_hat + sym.means
  x_hat = padding.crop(cm.synthesis(y_hat[None]),
                       padding.padding_for(height, width, models.DOWNSAMPLING))[0]
  if channels == 1:
    x_hat = x_hat.mean(axis=-1)
  x_hat = np.nan_to_num(x_hat, nan=0.0)  # only a crafted stream can make g_s produce NaN
  return np.round(np.clip(x_hat, 0.0, 1.0) * 255.0).astype(np.uint8)


def decompress(cm, data, where="bitstream"):
  """.jxc bytes -> uint8 image ([H, W, 3], or [H, W] for grayscale input). UserError if invalid."""
  bitstream = container.parse(data, cm.fingerprint, where)
  sym = decode_symbols(cm, bitstream, where)
  return reconstruct(cm, sym, bitstream.height, bitstream.width, bitstream.channels)
