"""Long fuzz run of the .jxc decoder: mutated, truncated and extended files must all be refused.

    python scripts/fuzz_bitstream.py [--cases 20000] [--seed 0] [--crafted 2000]

Compresses a few images of different sizes with the 16/24 test models (tests/coding_models.py),
then decodes --cases random mutations (byte overwrites, bit flips, deletions, insertions,
truncations, appended bytes): every one must raise a one-line UserError within 0.5 s. --crafted
more cases alter only the streams and recompute the checksum (what a deliberate attacker could
write); those must either decode to an image of the right size or raise a one-line UserError.
Prints counts and timings; exits 1 on the first failure.
"""

import argparse
import os
import struct
import sys
import tempfile
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import coding_models  # pylint: disable=wrong-import-position
from jaxcomp.coding import codec, container  # pylint: disable=wrong-import-position
from jaxcomp.errors import UserError  # pylint: disable=wrong-import-position


def mutate(data, rng):
  """One random corruption of `data` (never the identity)."""
  while True:
    out = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:
      for pos in rng.integers(0, len(out), rng.integers(1, 9)):
        out[pos] = (out[pos] + rng.integers(1, 256)) % 256
    elif kind == 1:
      bit = rng.integers(0, 8 * len(out))
      out[bit // 8] ^= 1 << (bit % 8)
    elif kind == 2:
      start = rng.integers(0, len(out))
      del out[start:start + rng.integers(1, 33)]
    elif kind == 3:
      pos = rng.integers(0, len(out) + 1)
      out[pos:pos] = rng.bytes(rng.integers(1, 33))
    elif kind == 4:
      out = out[:rng.integers(0, len(out))]
    else:
      out += rng.bytes(rng.integers(1, 33))
    if bytes(out) != data:
      return bytes(out)


def craft(data, rng):
  """Streams altered, checksum recomputed."""
  body = bytearray(data[:-4])
  for pos in rng.integers(container.HEADER_BYTES, len(body), rng.integers(1, 9)):
    body[pos] = rng.integers(0, 256)
  return bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", type=int, default=20000)
  parser.add_argument("--crafted", type=int, default=2000)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  rng = np.random.default_rng(args.seed)
  kite = coding_models.fixture_image("kite_96x80.png")
  with tempfile.TemporaryDirectory() as tmp:
    samples = []
    for arch in ("bmshj2018-hyperprior", "mbt2018-mean"):
      cm = codec.CodingModel(coding_models.export_model(os.path.join(tmp, arch), arch=arch))
      for h, w in ((80, 96), (1, 1), (37, 61)):
        samples.append((cm, codec.compress(cm, kite[None, :h, :w])[0], (h, w)))
  worst, began = 0.0, time.perf_counter()
  for i in range(args.cases):
    cm, data, _ = samples[i % len(samples)]
    bad = mutate(data, rng)
    start = time.perf_counter()
    try:
      codec.decompress(cm, bad)
      print(f"FAIL: mutation {i} was accepted")
      return 1
    except UserError as e:
      if "\n" in str(e):
        print(f"FAIL: multi-line error for mutation {i}: {e!r}")
        return 1
    worst = max(worst, time.perf_counter() - start)
    if worst > 0.5:
      print(f"FAIL: mutation {i} took {worst:.3f} s")
      return 1
  print(f"{args.cases} mutated files refused in {time.perf_counter() - began:.1f} s "
        f"(slowest {1e3 * worst:.2f} ms)")
  decoded = refused = 0
  began = time.perf_counter()
  for i in range(args.crafted):
    cm, data, (h, w) = samples[i % len(samples)]
    try:
      image = codec.decompress(cm, craft(data, rng))
      assert image.shape[:2] == (h, w)
      decoded += 1
    except UserError as e:
      assert "\n" not in str(e)
      refused += 1
  print(f"{args.crafted} crafted files (valid checksum): {refused} refused, {decoded} decoded to "
        f"garbage of the right size, none crashed ({time.perf_counter() - began:.1f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
