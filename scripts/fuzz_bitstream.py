"""Long fuzz run of the .jxc decoder: corrupted and crafted files must be refused, never crash.

    python scripts/fuzz_bitstream.py [--cases 20000] [--crafted 10000] [--seed 0]
                                     [--max-rss-mb 3072] [--hang-s 30] [--json]

Compresses several images (different sizes, several distinct images per size) with the 16/24
test models of both architectures (tests/coding_models.py), then decodes:

1. --cases random mutations without a valid checksum (byte overwrites, bit flips, deletions,
   insertions, truncations, appended bytes): every one must be refused (container checks).
2. --crafted cases with the checksum recomputed (what a deliberate attacker could write), in
   categories (docs/bitstream.md, "Fuzzing"):
     removed     z or y stream removed (its length set to 0)
     shortened   z or y stream cut by 1 ... 64 bytes
     extended    z or y stream extended by 1 ... 64 bytes (random or zero)
     spliced     z and/or y stream taken from another file of the same size and model whose
                 scale indexes differ (its index CRC differs)
     header      header values the streams contradict: another latent grid (height/width),
                 another index CRC, width and height swapped, a size beyond the pixel budget
   These must all be refused. Two further categories cannot be detected by any entropy decoder
   and are counted apart (refused or decoded, never a crash):
     in_stream   bytes overwritten inside a stream, lengths unchanged
     same_grid   height/width changed within the same 64-pixel grid, or the channel count flipped
                 (no stream depends on them)
     same_rows   the y stream of another file whose scale indexes are identical (a valid y
                 stream for these table rows: another image's y under the same entropy models)

Every case runs under a hang alarm (--hang-s); an exception other than the one-line UserError is
a traceback. The peak resident memory of the process (getrusage) must stay under --max-rss-mb.
Prints one line per category and, with --json, a JSON summary as the last line. Exit status 1
if a must-refuse case was accepted, any traceback, hang or multi-line error, or the memory
ceiling was passed.
"""

import argparse
import collections
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

import coding_models  # pylint: disable=wrong-import-position
from jaxcomp.coding import compression, container  # pylint: disable=wrong-import-position
from jaxcomp.errors import UserError  # pylint: disable=wrong-import-position

MUST_REFUSE = ("mutation", "removed", "shortened", "extended", "spliced", "header")
UNDETECTABLE = ("in_stream", "same_grid", "same_rows")


class Hang(Exception):
  pass


def _alarm(signum, frame):
  del signum, frame
  raise Hang()


def mutate(data, rng):
  """One random corruption of `data` (never the identity), checksum not recomputed."""
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


split = container.header_fields
join = container.from_header_fields


def _grid(side):
  return -(-side // 64)


def craft(category, sample, others, rng):
  """One crafted file of `category` from `sample` (cm, data, size); None if not applicable."""
  _, data, (h, w) = sample
  fields, z, y = split(data)
  which = rng.integers(2)  # 0: z, 1: y
  streams = [z, y]
  if category == "removed":
    streams[which] = b""
  elif category == "shortened":
    if not streams[which]:
      return None
    streams[which] = streams[which][:-int(rng.integers(1, min(64, len(streams[which])) + 1))]
  elif category == "extended":
    extra = int(rng.integers(1, 65))
    streams[which] += bytes(extra) if rng.integers(2) else rng.bytes(extra)
  elif category in ("spliced", "same_rows"):
    same = category == "same_rows"
    donors = [o for o in others if o[2] == (h, w) and o[0] is sample[0]
              and (split(o[1])[0][8] == fields[8]) == same and split(o[1])[2] != y]
    if not donors:
      return None
    _, donor, _ = donors[rng.integers(len(donors))]
    _, dz, dy = split(donor)
    mode = 1 if same else rng.integers(3)
    if mode == 0:
      streams[0] = dz
    elif mode == 1:
      streams[1] = dy
    else:
      streams = [dy, dz]  # swapped, from the donor
    if streams == [z, y]:
      return None
  elif category == "header":
    mode = rng.integers(4)
    if mode == 0:  # another latent grid
      for _ in range(100):
        nh, nw = (int(v) for v in rng.integers(1, 400, 2))
        if (_grid(nh), _grid(nw)) != (_grid(h), _grid(w)):
          fields[6], fields[7] = nh, nw
          break
    elif mode == 1:
      fields[8] ^= int(rng.integers(1, 1 << 32))
    elif mode == 2:
      if (_grid(h), _grid(w)) == (_grid(w), _grid(h)):
        return None
      fields[6], fields[7] = w, h
    else:
      fields[6], fields[7] = (int(v) for v in rng.integers(20000, 65536, 2))
  elif category == "in_stream":
    target = streams[which]
    if not target:
      return None
    target = bytearray(target)
    for pos in rng.integers(0, len(target), rng.integers(1, 9)):
      target[pos] = (target[pos] + rng.integers(1, 256)) % 256
    streams[which] = bytes(target)
  elif category == "same_grid":
    if rng.integers(3) == 0:
      fields[3] = 4 - fields[3]  # channels 1 <-> 3
    else:
      choices = [(a, b) for a in range(max(1, 64 * _grid(h) - 63), 64 * _grid(h) + 1)
                 for b in (w,)] + [(h, b) for b in range(max(1, 64 * _grid(w) - 63),
                                                         64 * _grid(w) + 1)]
      choices = [c for c in choices if c != (h, w)]
      fields[6], fields[7] = choices[rng.integers(len(choices))]
  out = join(fields, *streams)
  return None if out == data else out


def build_samples(tmp):
  """[(CodingModel, .jxc bytes, (h, w))]: both architectures, 3 sizes, 4 distinct images each."""
  kite = coding_models.fixture_image("kite_96x80.png")
  cups = coding_models.fixture_image("cups_61x37.png")
  sources = [kite, kite[::-1], kite[:, ::-1], kite[::-1, ::-1]]
  samples = []
  for arch in ("bmshj2018-hyperprior", "mbt2018-mean"):
    cm = compression.CodingModel(coding_models.export_model(os.path.join(tmp, arch), arch=arch))
    for h, w in ((80, 96), (37, 61), (1, 1)):
      for k, image in enumerate(sources + [cups]):
        if image is cups and (h, w) == (80, 96):
          continue
        crop = image[k:k + h, k:k + w] if (h, w) == (1, 1) else image[:h, :w]
        samples.append((cm, compression.compress(cm, np.ascontiguousarray(crop)[None])[0], (h, w)))
  return samples


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", type=int, default=20000, help="random mutations")
  parser.add_argument("--crafted", type=int, default=10000, help="crafted cases (valid CRC)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--max-rss-mb", type=float, default=3072.0)
  parser.add_argument("--hang-s", type=float, default=30.0,
                      help="a case taking longer is a hang (a new latent grid compiles h_s once)")
  parser.add_argument("--json", action="store_true")
  args = parser.parse_args()
  rng = np.random.default_rng(args.seed)
  signal.signal(signal.SIGALRM, _alarm)
  with tempfile.TemporaryDirectory() as tmp:
    samples = build_samples(tmp)
  stats = collections.defaultdict(collections.Counter)
  examples = {}
  slowest = 0.0
  began = time.perf_counter()
  categories = MUST_REFUSE[1:] + UNDETECTABLE
  plan = [("mutation", i) for i in range(args.cases)]
  plan += [(categories[i % len(categories)], i) for i in range(args.crafted)]
  for category, i in plan:
    sample = samples[i % len(samples)]
    if category == "mutation":
      bad = mutate(sample[1], rng)
    else:
      bad = None
      for attempt in range(len(samples)):
        bad = craft(category, samples[(i + attempt) % len(samples)], samples, rng)
        if bad is not None:
          sample = samples[(i + attempt) % len(samples)]
          break
      if bad is None:
        continue
    stats[category]["cases"] += 1
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, args.hang_s)
    try:
      image = compression.decompress(sample[0], bad)
      signal.setitimer(signal.ITIMER_REAL, 0)
      stats[category]["accepted"] += 1
      if image.ndim < 2:
        stats[category]["bad_output"] += 1
      examples.setdefault(f"{category}: accepted", i)
    except UserError as e:
      signal.setitimer(signal.ITIMER_REAL, 0)
      stats[category]["refused"] += 1
      if "\n" in str(e):
        stats[category]["multiline"] += 1
        examples.setdefault(f"{category}: multi-line", repr(str(e)))
    except Hang:
      stats[category]["hangs"] += 1
      examples.setdefault(f"{category}: hang", i)
    except Exception:  # pylint: disable=broad-except
      signal.setitimer(signal.ITIMER_REAL, 0)
      stats[category]["tracebacks"] += 1
      examples.setdefault(f"{category}: traceback", traceback.format_exc().splitlines()[-1])
    slowest = max(slowest, time.perf_counter() - start)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  failed = []
  for category in MUST_REFUSE + UNDETECTABLE:
    c = stats[category]
    print(f"{category:10s} cases {c['cases']:6d}  refused {c['refused']:6d}  accepted "
          f"{c['accepted']:5d}  tracebacks {c['tracebacks']}  hangs {c['hangs']}  multi-line "
          f"{c['multiline']}" + ("  (undetectable by design: counted apart)"
                                 if category in UNDETECTABLE else ""))
    if category in MUST_REFUSE and c["accepted"]:
      failed.append(f"{category}: {c['accepted']} accepted")
    if c["tracebacks"] or c["hangs"] or c["multiline"] or c["bad_output"]:
      failed.append(f"{category}: tracebacks/hangs/multi-line errors")
  if peak_mb > args.max_rss_mb:
    failed.append(f"peak memory {peak_mb:.0f} MB over the {args.max_rss_mb:.0f} MB ceiling")
  total = sum(c["cases"] for c in stats.values())
  print(f"{total} cases in {time.perf_counter() - began:.1f} s, slowest {1e3 * slowest:.1f} ms, "
        f"peak RSS {peak_mb:.0f} MB; {len(samples)} source files")
  for key, value in examples.items():
    print(f"  first {key}: {value}")
  if args.json:
    print(json.dumps({"categories": {k: dict(v) for k, v in stats.items()}, "cases": total,
                      "slowest_ms": round(1e3 * slowest, 2), "peak_rss_mb": round(peak_mb, 1),
                      "failed": failed}))
  for line in failed:
    print(f"FAIL: {line}")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
