"""`jaxcomp compress` / `jaxcomp decompress`: images <-> .jxc files with an exported model.

    jaxcomp compress --model DIR IN.png OUT.jxc
    jaxcomp compress --model DIR A.png B.png ... OUT_DIR      (OUT_DIR/A.jxc, OUT_DIR/B.jxc, ...)
    jaxcomp decompress --model DIR IN.jxc OUT.png
    jaxcomp decompress --model DIR A.jxc B.jxc ... OUT_DIR    (OUT_DIR/A.png, ...)

Batches are per file, like `jaxcomp eval`: the arguments, the model and the output paths are
checked before anything is written (exit 2 on any problem there); then every input is coded on
its own, and one that fails (unreadable, over the pixel budget, a corrupt bitstream, a write
error) gets one line `error: PATH: ...` and no output while the others are written. The exit
status is 0 when all succeeded, 1 when some failed (a last line counts them), 2 when all failed.
Each output appears whole or not at all (`atomic_path`): no partial or temporary file is left.
One line per file gives its bits per pixel and coding time.
"""

import os
import sys
import time

from jaxcomp import pixels
from jaxcomp.errors import UserError

BATCH = 8


def register(subparsers):
  p = subparsers.add_parser("compress", help="images -> .jxc bitstreams with an exported model")
  p.add_argument("--model", required=True, help="exported model directory")
  p.add_argument("--coder", default="constriction", choices=["constriction", "tfc"],
                 help="entropy coder (tfc needs tensorflow-compression: BUILD_NOTES.md)")
  pixels.add_argument(p)
  p.add_argument("paths", nargs="+", metavar="PATH",
                 help="IN.png OUT.jxc, or IN.png ... OUT_DIR (8-bit RGB, grayscale, palette, RGBA)")
  p.set_defaults(func=run_compress)
  p = subparsers.add_parser("decompress", help=".jxc bitstreams -> images (inverse of compress)")
  p.add_argument("--model", required=True, help="the exported model directory that compressed")
  pixels.add_argument(p)
  p.add_argument("paths", nargs="+", metavar="PATH", help="IN.jxc OUT.png, or IN.jxc ... OUT_DIR")
  p.set_defaults(func=run_decompress)


def _pairs(paths, extension):
  """[(input, output)] from 'IN OUT' or 'IN ... OUT_DIR' (UserError when ambiguous or unsafe)."""
  if len(paths) < 2:
    raise UserError("give at least one input and an output")
  inputs, out = paths[:-1], paths[-1]
  for path in inputs:
    if os.path.isdir(path):
      raise UserError(f"{path} is a directory; give its files (e.g. {os.path.join(path, '*')})")
    if not os.path.isfile(path):
      raise FileNotFoundError(2, "No such file", path)
  if len(inputs) == 1 and not os.path.isdir(out) and not out.endswith(os.sep):
    pairs = [(inputs[0], out)]
  else:
    if os.path.exists(out) and not os.path.isdir(out):
      raise UserError(f"with several inputs the output must be a directory: {out}")
    stems = [os.path.splitext(os.path.basename(p))[0] for p in inputs]
    outputs = [os.path.join(out, stem + extension) for stem in stems]
    if len(set(outputs)) < len(outputs):
      raise UserError("two inputs have the same file name; their outputs would collide")
    pairs = list(zip(inputs, outputs))
  for src, dst in pairs:
    if os.path.exists(dst) and os.path.samefile(src, dst):
      raise UserError(f"the output {dst} is the input itself; refusing to overwrite it")
  return pairs


def _write_bytes(path, data):
  from jaxcomp.fileio import atomic_path  # pylint: disable=g-import-not-at-top

  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def _failure(src, e):
  """One line for a failed input: UserError text as is, an OSError with the input's name."""
  if isinstance(e, UserError):
    return str(e)
  return f"{src}: {e.strerror or e}"


def _finish(pairs, failures):
  """Reports failures {index: message}; the exit status (see the module docstring)."""
  if not failures:
    return 0
  if len(pairs) == 1:
    raise UserError(failures[0])
  for i in sorted(failures):
    sys.stderr.write(f"error: {failures[i]}\n")
  if len(failures) == len(pairs):
    raise UserError(f"all {len(pairs)} inputs failed (listed above); nothing written")
  sys.stderr.write(f"error: {len(failures)} of {len(pairs)} inputs failed (listed above); the "
                   "other outputs were written\n")
  return 1


def _compress_group(cm, loaded, members, backend):
  """{index: bytes or exception} for inputs of one size; a failing batch is retried per image."""
  from jaxcomp.coding import compression  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  try:
    streams = compression.compress(cm, np.stack([loaded[i][0] for i in members]),
                             [loaded[i][1] for i in members], backend=backend)
    return dict(zip(members, streams))
  except UserError as e:
    if len(members) == 1:
      return {members[0]: e}
    results = {}
    for i in members:
      results.update(_compress_group(cm, loaded, [i], backend))
    return results


def run_compress(args):
  from jaxcomp.coding import compression  # pylint: disable=g-import-not-at-top
  from jaxcomp import images  # pylint: disable=g-import-not-at-top

  images.show_warnings()
  pixels.set_from_args(args)
  pairs = _pairs(args.paths, ".jxc")
  cm = compression.CodingModel(args.model)
  cm.coder(args.coder, "y")
  loaded, failures = {}, {}
  for i, (src, _) in enumerate(pairs):
    try:
      loaded[i] = images.read(src)
    except (UserError, OSError) as e:
      failures[i] = _failure(src, e)
  groups = {}
  for i, (image, _) in loaded.items():
    groups.setdefault(image.shape, []).append(i)
  for members in groups.values():
    for start in range(0, len(members), BATCH):
      chunk = members[start:start + BATCH]
      began = time.perf_counter()
      results = _compress_group(cm, loaded, chunk, args.coder)
      seconds = (time.perf_counter() - began) / len(chunk)
      for i in chunk:
        src, dst = pairs[i]
        data = results[i]
        try:
          if isinstance(data, Exception):
            raise data
          _write_bytes(dst, data)
        except (UserError, OSError) as e:
          failures[i] = _failure(src, e)
          continue
        height, width = loaded[i][0].shape[:2]
        print(f"{src} -> {dst}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp, "
              f"{seconds:.3f} s")
  return _finish(pairs, failures)


def run_decompress(args):
  from jaxcomp.coding import compression  # pylint: disable=g-import-not-at-top
  from jaxcomp import images  # pylint: disable=g-import-not-at-top

  pixels.set_from_args(args)
  pairs = _pairs(args.paths, ".png")
  for _, dst in pairs:
    images.check_extension(dst)
  cm = compression.CodingModel(args.model)
  failures = {}
  for i, (src, dst) in enumerate(pairs):
    try:
      with open(src, "rb") as f:
        blob = f.read()
      began = time.perf_counter()
      image = compression.decompress(cm, blob, where=src)
      seconds = time.perf_counter() - began
      images.write(dst, image)
    except (UserError, OSError) as e:
      failures[i] = _failure(src, e)
      continue
    height, width = image.shape[:2]
    print(f"{src} -> {dst}: {8 * len(blob) / (height * width):.4f} bpp, {seconds:.3f} s")
  return _finish(pairs, failures)
