"""The .jxc container: one image's bitstreams behind a fixed, checksummed header.

Layout (all integers little-endian; docs/bitstream.md has the byte-by-byte table):

  offset  size  field
       0     4  magic b"\\x89JXC"
       4     1  format version (1)
       5     1  backend id (1 = constriction, 2 = tfc)
       6     1  original channel count (1 = grayscale, 3 = RGB)
       7     1  reserved, 0
       8    16  model fingerprint (first 16 bytes of the exported model's sha256 fingerprint)
      24     4  image height (1 ... 65535)
      28     4  image width (1 ... 65535)
      32     4  CRC-32 of the y scale indexes (uint8, [h, w, M] order) the encoder used
      36     4  z stream length in bytes
      40     4  y stream length in bytes
      44     .  z stream, then y stream
     end-4   4  CRC-32 of every preceding byte

`parse` checks, in this order and before any decoding: length, magic, version, that the stream
lengths account for every byte (truncation, trailing bytes), the checksum (any flipped bit), the
backend, the model fingerprint, and the header values. Each failure is one `UserError` line.
"""

import dataclasses
import struct
import zlib

from jaxcomp.errors import UserError

MAGIC = b"\x89JXC"
VERSION = 1
BACKEND_IDS = {"constriction": 1, "tfc": 2}
MAX_SIDE = 65535
_HEADER = struct.Struct("<4sBBBB16sIIIII")
_TRAILER = struct.Struct("<I")
HEADER_BYTES = _HEADER.size
OVERHEAD_BYTES = _HEADER.size + _TRAILER.size


@dataclasses.dataclass(frozen=True)
class Bitstream:
  """The contents of one .jxc file.

  Attributes:
    backend: backend name (a key of BACKEND_IDS).
    channels: 1 or 3, the input image's channel count.
    fingerprint: 16 bytes identifying the exported model.
    height, width: image size in pixels.
    index_digest: CRC-32 of the y scale indexes.
    z_stream, y_stream: the entropy-coded streams.
  """

  backend: str
  channels: int
  fingerprint: bytes
  height: int
  width: int
  index_digest: int
  z_stream: bytes
  y_stream: bytes


def pack(bitstream):
  """Bitstream -> bytes."""
  b = bitstream
  header = _HEADER.pack(MAGIC, VERSION, BACKEND_IDS[b.backend], b.channels, 0, b.fingerprint,
                        b.height, b.width, b.index_digest, len(b.z_stream), len(b.y_stream))
  body = header + b.z_stream + b.y_stream
  return body + _TRAILER.pack(zlib.crc32(body))


def header_fields(data):
  """(header fields list, z stream, y stream) of a file, unvalidated.

  For tools that craft files (fuzzing, tests): the fields are `_HEADER`'s, in order (magic,
  version, backend id, channels, reserved, fingerprint, height, width, index digest, z length,
  y length). `from_header_fields` is the inverse.
  """
  fields = list(_HEADER.unpack_from(data))
  z_len, y_len = fields[-2], fields[-1]
  start = HEADER_BYTES
  return fields, data[start:start + z_len], data[start + z_len:start + z_len + y_len]


def from_header_fields(fields, z_stream, y_stream):
  """A file from header fields and streams: the lengths set and the checksum recomputed, so that
  only what the fields say is wrong (crafted files for fuzzing and tests)."""
  fields = list(fields)
  fields[-2], fields[-1] = len(z_stream), len(y_stream)
  body = _HEADER.pack(*fields) + z_stream + y_stream
  return body + _TRAILER.pack(zlib.crc32(body))


def parse(data, fingerprint, where="bitstream"):
  """Validates a .jxc file against the model that should decode it.

  Args:
    data: the file's bytes.
    fingerprint: the 16-byte fingerprint of the model at hand.
    where: name used in error messages (the file name).

  Returns:
    Bitstream. Raises UserError (one line) on any problem.
  """
  if bytes(data[:len(MAGIC)]) != MAGIC[:min(len(data), len(MAGIC))] or not data:
    raise UserError(f"{where}: not a jaxcomp bitstream (bad magic number)")
  if len(data) < OVERHEAD_BYTES:
    raise UserError(f"{where}: truncated ({len(data)} bytes, the header alone is {OVERHEAD_BYTES})")
  (_, version, backend_id, channels, reserved, model, height, width, digest, z_len,
   y_len) = _HEADER.unpack_from(data)
  if version != VERSION:
    raise UserError(f"{where}: bitstream format version {version} is not supported "
                    f"(this jaxcomp reads version {VERSION})")
  expected = OVERHEAD_BYTES + z_len + y_len
  if len(data) < expected:
    raise UserError(f"{where}: truncated ({len(data)} bytes, the header says {expected})")
  if len(data) > expected:
    raise UserError(f"{where}: {len(data) - expected} trailing bytes after the bitstream")
  (checksum,) = _TRAILER.unpack_from(data, expected - _TRAILER.size)
  if zlib.crc32(memoryview(data)[:expected - _TRAILER.size]) != checksum:
    raise UserError(f"{where}: corrupted (checksum mismatch)")
  names = {v: k for k, v in BACKEND_IDS.items()}
  if backend_id not in names:
    raise UserError(f"{where}: unknown entropy-coder backend id {backend_id}")
  if model != fingerprint:
    raise UserError(f"{where}: written with a different model (fingerprint {model.hex()}, this "
                    f"model is {fingerprint.hex()})")
  if channels not in (1, 3) or reserved or not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
    raise UserError(f"{where}: invalid header values")
  start = HEADER_BYTES
  return Bitstream(backend=names[backend_id], channels=channels, fingerprint=model, height=height,
                   width=width, index_digest=digest, z_stream=bytes(data[start:start + z_len]),
                   y_stream=bytes(data[start + z_len:expected - _TRAILER.size]))
