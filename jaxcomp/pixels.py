"""The pixel budget: the largest image jaxcomp reads, codes, decodes or measures.

Memory grows with the pixel count (decoding a 8192x8192 .jxc with the 128/192 hyperprior peaks at
about 7.4 GB, ~110 bytes per pixel), so every command that takes an image or a bitstream checks
its size *before* allocating anything: image files from their header (Pillow's `open` reads only
the header), .jxc files from their container header. Above the limit the command stops with one
line `error: ... exceeds the pixel limit ...`.

The limit is `DEFAULT_MAX_PIXELS` (2^25 = 33,554,432 pixels: 8192x4096, or 8K UHD 7680x4320),
overridden by the environment variable `JAXCOMP_MAX_PIXELS` and, above that, by the `--max-pixels`
option of compress, decompress, metric and eval; 0 means no limit. It replaces Pillow's own
decompression-bomb guard for the images jaxcomp reads (`open_image`).
"""

import os

from PIL import Image

from jaxcomp.errors import UserError

DEFAULT_MAX_PIXELS = 1 << 25
ENV = "JAXCOMP_MAX_PIXELS"
_override = None


def add_argument(parser):
  """Adds `--max-pixels N` to an argparse parser (read back with `set_from_args`)."""
  parser.add_argument(
      "--max-pixels", type=int, metavar="N", default=None,
      help=f"refuse images and bitstreams of more than N pixels (default ${ENV} or "
           f"{DEFAULT_MAX_PIXELS}; 0: no limit)")


def set_from_args(args):
  """Applies a parsed `--max-pixels` (if given) for the rest of the process."""
  value = getattr(args, "max_pixels", None)
  if value is not None:
    set_limit(value)


def set_limit(value):
  """Sets the limit (pixels; 0 = none) for the rest of the process. UserError if negative."""
  global _override
  if value < 0:
    raise UserError(f"--max-pixels must be >= 0, got {value}")
  _override = int(value)


def limit():
  """The pixel limit in force: an int > 0, or None for no limit."""
  value = _override
  if value is None:
    text = os.environ.get(ENV, "").strip()
    if not text:
      return DEFAULT_MAX_PIXELS
    try:
      value = int(text)
    except ValueError:
      raise UserError(f"${ENV} must be a whole number of pixels, got {text!r}") from None
    if value < 0:
      raise UserError(f"${ENV} must be >= 0, got {value}")
  return value or None


def check(width, height, where):
  """UserError (one line) if a width x height image exceeds the limit."""
  cap = limit()
  if cap is not None and int(width) * int(height) > cap:
    raise UserError(f"{where}: {width}x{height} = {int(width) * int(height)} pixels exceeds the "
                    f"pixel limit of {cap} (raise it with --max-pixels N or ${ENV}=N; 0: no limit)")


def open_image(path):
  """Image.open(path) with its size checked against the limit before any pixel is decoded.

  Returns the (lazily loaded) PIL image; close it (use it in a `with` block). Pillow's own
  decompression-bomb guard is off during the open (Pillow reads only the header there) and this
  limit is applied instead, so the error names the size and the override. Other Pillow errors
  propagate.
  """
  previous = Image.MAX_IMAGE_PIXELS
  Image.MAX_IMAGE_PIXELS = None
  try:
    img = Image.open(path)
  finally:
    Image.MAX_IMAGE_PIXELS = previous
  try:
    check(img.size[0], img.size[1], path)
  except UserError:
    img.close()
    raise
  return img
