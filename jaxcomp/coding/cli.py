"""`jaxcomp compress` / `jaxcomp decompress`: images <-> .jxc files with an exported model.

    jaxcomp compress --model DIR IN.png OUT.jxc
    jaxcomp compress --model DIR A.png B.png ... OUT_DIR      (OUT_DIR/A.jxc, OUT_DIR/B.jxc, ...)
    jaxcomp decompress --model DIR IN.jxc OUT.png
    jaxcomp decompress --model DIR A.jxc B.jxc ... OUT_DIR    (OUT_DIR/A.png, ...)

Every input is read and checked before any output is written; each output appears whole
(`atomic_path`). One line per file gives its bits per pixel and coding time.
"""

import os
import time

BATCH = 8


def register(subparsers):
  p = subparsers.add_parser("compress", help="images -> .jxc bitstreams with an exported model")
  p.add_argument("--model", required=True, help="exported model directory")
  p.add_argument("--coder", default="constriction", choices=["constriction", "tfc"],
                 help="entropy coder (tfc needs tensorflow-compression: BUILD_NOTES.md)")
  p.add_argument("paths", nargs="+", metavar="PATH",
                 help="IN.png OUT.jxc, or IN.png ... OUT_DIR (8-bit RGB, grayscale, palette, RGBA)")
  p.set_defaults(func=run_compress)
  p = subparsers.add_parser("decompress", help=".jxc bitstreams -> images (inverse of compress)")
  p.add_argument("--model", required=True, help="the exported model directory that compressed")
  p.add_argument("paths", nargs="+", metavar="PATH", help="IN.jxc OUT.png, or IN.jxc ... OUT_DIR")
  p.set_defaults(func=run_decompress)


def _pairs(paths, extension):
  """[(input, output)] from 'IN OUT' or 'IN ... OUT_DIR' (UserError when ambiguous)."""
  from jaxcomp.errors import UserError  # pylint: disable=g-import-not-at-top

  if len(paths) < 2:
    raise UserError("give at least one input and an output")
  inputs, out = paths[:-1], paths[-1]
  for path in inputs:
    if not os.path.isfile(path):
      raise FileNotFoundError(2, "No such file", path)
  if len(inputs) == 1 and not os.path.isdir(out) and not out.endswith(os.sep):
    return [(inputs[0], out)]
  if os.path.exists(out) and not os.path.isdir(out):
    raise UserError(f"with several inputs the output must be a directory: {out}")
  stems = [os.path.splitext(os.path.basename(p))[0] for p in inputs]
  outputs = [os.path.join(out, stem + extension) for stem in stems]
  if len(set(outputs)) < len(outputs):
    raise UserError("two inputs have the same file name; their outputs would collide")
  return list(zip(inputs, outputs))


def _write_bytes(path, data):
  from jaxcomp.fileio import atomic_path  # pylint: disable=g-import-not-at-top

  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def run_compress(args):
  from jaxcomp.coding import codec, images  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  images.show_warnings()
  pairs = _pairs(args.paths, ".jxc")
  cm = codec.CodingModel(args.model)
  cm.coder(args.coder, "y")
  loaded = [images.read(src) for src, _ in pairs]
  groups = {}
  for i, (image, _) in enumerate(loaded):
    groups.setdefault(image.shape, []).append(i)
  for members in groups.values():
    for start in range(0, len(members), BATCH):
      chunk = members[start:start + BATCH]
      began = time.perf_counter()
      streams = codec.compress(cm, np.stack([loaded[i][0] for i in chunk]),
                               [loaded[i][1] for i in chunk], backend=args.coder)
      seconds = (time.perf_counter() - began) / len(chunk)
      for i, data in zip(chunk, streams):
        src, dst = pairs[i]
        _write_bytes(dst, data)
        height, width = loaded[i][0].shape[:2]
        print(f"{src} -> {dst}: {len(data)} bytes, {8 * len(data) / (height * width):.4f} bpp, "
              f"{seconds:.3f} s")
  return 0


def run_decompress(args):
  from jaxcomp.coding import codec, container, images  # pylint: disable=g-import-not-at-top

  pairs = _pairs(args.paths, ".png")
  cm = codec.CodingModel(args.model)
  data = []
  for src, _ in pairs:
    with open(src, "rb") as f:
      data.append(f.read())
    container.parse(data[-1], cm.fingerprint, src)
  for (src, dst), blob in zip(pairs, data):
    began = time.perf_counter()
    image = codec.decompress(cm, blob, where=src)
    seconds = time.perf_counter() - began
    images.write(dst, image)
    height, width = image.shape[:2]
    print(f"{src} -> {dst}: {8 * len(blob) / (height * width):.4f} bpp, {seconds:.3f} s")
  return 0
