"""Files the reliability tests (issue 17) share: crafted PNG headers, .jxc surgery, saved images."""

import struct
import zlib

import numpy as np
from PIL import Image

from jaxcomp.coding import container


def png_header_only(path, width, height):
  """A ~70-byte PNG whose header claims width x height (8-bit RGB); its pixel data is a stub.

  Nothing but the header is valid: a reader that checks the size first refuses it at once, one
  that decodes would allocate width * height * 3 bytes and then fail.
  """
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
  return str(path)


split = container.header_fields
join = container.from_header_fields


def save_image(path, array, mode=None):
  img = Image.fromarray(np.asarray(array))
  (img.convert(mode) if mode else img).save(path)
  return str(path)
