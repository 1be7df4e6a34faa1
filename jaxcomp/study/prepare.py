"""`jaxcomp study prepare`: stimuli at matched bit rates, conditions table, golden pairs, manifest.

For every image (centre-cropped to the stimulus size) and every target rate, each codec
contributes one decoded stimulus: an exported-model codec (one model directory per rate point)
the point whose real bitstream bpp is nearest to the target in log(bpp); a classical anchor the
integer quality, found by bisection over 1..100, whose file is nearest. Stimuli are stored as
lossless PNG; bpp is always 8 · file bytes / (W · H) of the coded crop.

Golden units: per image, the original against a JPEG at `golden_quality` (expected: the original).
Training units: on the first image, the original against JPEG q=10, and JPEG q=5 against JPEG
q=50 (expected: the better one); subjects are told whether they answered right.

Output folder (written whole or not at all):
    study.json       the manifest (`manifest` module)
    conditions.csv   scene, image, rate, target_bpp, condition, codec, point, bpp, file
    stimuli/<image>/reference.png, stimuli/<image>/<rate>/<condition>.png,
    stimuli/<image>/golden/…, stimuli/<image>/training/…
"""

import csv
import math
import os
import sys
import tempfile

import numpy as np
from PIL import Image

from jaxcomp import images
from jaxcomp.errors import UserError
from jaxcomp.evaluate import anchors as anchors_lib
from jaxcomp.evaluate import rd_eval
from jaxcomp.fileio import atomic_path
from jaxcomp.study import manifest

QUALITY_RANGE = (1, 100)
JPEG = "jpeg-420"


def centre_crop(image, size):
  """[h, w, 3] centre crop of `image` to size (w, h); UserError if the image is smaller."""
  width, height = size
  if image.shape[0] < height or image.shape[1] < width:
    raise UserError(f"image {image.shape[1]}x{image.shape[0]} is smaller than the crop "
                    f"{width}x{height}")
  top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
  return image[top:top + height, left:left + width]


def code(point, image, workdir):
  """(bpp, decoded [H, W, 3] uint8) of `image` through an `rd_eval.Point`, from the real file."""
  path = os.path.join(workdir, "coded" + point.extension)
  point.encode(image, path)
  decoded = point.decode(path)
  return 8.0 * os.path.getsize(path) / (image.shape[0] * image.shape[1]), decoded


def nearest_model_point(codec, image, target, workdir, cache):
  """(label, bpp, decoded) of the codec point nearest to `target` bpp (log distance)."""
  coded = []
  for point in codec.points:
    key = (codec.name, point.label)
    if key not in cache:
      cache[key] = code(point, image, workdir)
    coded.append((point.label, *cache[key]))
  return min(coded, key=lambda c: abs(math.log(c[1] / target)))


def nearest_anchor_quality(anchor, image, target, workdir):
  """(label 'q=N', bpp, decoded) of the anchor quality whose file is nearest to `target` bpp."""

  def at(quality):
    return code(rd_eval.anchor_codec(anchor, [quality]).points[0], image, workdir)

  low, high = QUALITY_RANGE
  results = {}
  while low < high:  # Smallest quality with bpp >= target (bpp grows with quality).
    mid = (low + high) // 2
    results[mid] = at(mid)
    if results[mid][0] >= target:
      high = mid
    else:
      low = mid + 1
  candidates = {q for q in (low - 1, low) if QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]}
  for q in candidates - set(results):
    results[q] = at(q)
  best = min(candidates, key=lambda q: abs(math.log(results[q][0] / target)))
  return f"q={best}", *results[best]


def _save(folder, relative, image):
  path = os.path.join(folder, relative)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, format="PNG")
  return relative


def _jpeg(image, quality, workdir):
  return code(rd_eval.anchor_codec(anchors_lib.get(JPEG), [quality]).points[0], image, workdir)


def _image_name(path):
  stem = os.path.splitext(os.path.basename(path))[0]
  return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)


def prepare(image_paths, codecs, anchor_list, rates, out, size, settings, stream=None):
  """Writes the study folder `out`.

  Args:
    image_paths: [I] source images.
    codecs: [rd_eval.Codec] of exported models (one point per model directory).
    anchor_list: [anchors.Anchor].
    rates: [(label, target bpp)].
    out: output folder.
    size: (W, H) of the stimuli (centre crops).
    settings: dict with design, trials_per_subject, golden_every, seed, golden_quality,
      min_screen, show_reference, title.
    stream: progress lines (default stderr).

  Returns:
    The manifest dict.
  """
  stream = stream or sys.stderr
  names = [c.name for c in codecs] + [a.name for a in anchor_list]
  if len(set(names)) != len(names) or len(names) < 2:
    raise UserError(f"need at least two differently named codecs, got {names}")
  scenes, golden, training, table = [], [], [], []
  with atomic_path(out) as folder, tempfile.TemporaryDirectory(prefix="jaxcomp-study-") as work:
    os.makedirs(folder)
    for k, image_path in enumerate(image_paths):
      image = centre_crop(images.read(image_path)[0], size)
      name = _image_name(image_path)
      reference = _save(folder, f"stimuli/{name}/reference.png", image)
      cache = {}
      for label, target in rates:
        conditions = {}
        for codec in codecs:
          table.append(_stimulus(folder, name, label, target, codec.name, image, reference,
                                 nearest_model_point(codec, image, target, work, cache),
                                 conditions, stream))
        for anchor in anchor_list:
          table.append(_stimulus(folder, name, label, target, anchor.name, image, reference,
                                 nearest_anchor_quality(anchor, image, target, work),
                                 conditions, stream))
        scenes.append({"id": f"{name}@{label}", "image": name, "rate": label,
                       "target_bpp": target, "reference": reference, "conditions": conditions})
      heavy = f"jpeg-q{settings['golden_quality']}"
      golden.append({"scene": f"{name}@golden", "reference": reference, "expected": "original",
                     "conditions": {"original": reference, heavy: _save(
                         folder, f"stimuli/{name}/golden/{heavy}.png",
                         _jpeg(image, settings["golden_quality"], work)[1])}})
      if k == 0:
        files = {q: _save(folder, f"stimuli/{name}/training/jpeg-q{q}.png",
                          _jpeg(image, q, work)[1]) for q in (5, 10, 50)}
        training = [
            {"scene": f"{name}@training", "reference": reference, "expected": "original",
             "conditions": {"original": reference, "jpeg-q10": files[10]}},
            {"scene": f"{name}@training", "reference": reference, "expected": "jpeg-q50",
             "conditions": {"jpeg-q5": files[5], "jpeg-q50": files[50]}}]
    study = {"format": manifest.FORMAT, "version": manifest.VERSION,
             "title": settings["title"], "stimulus_size": list(size),
             "display": {"min_screen": list(settings["min_screen"])},
             "design": {"name": settings["design"],
                        "trials_per_subject": settings["trials_per_subject"],
                        "golden_every": settings["golden_every"], "seed": settings["seed"]},
             "show_reference": settings["show_reference"], "scenes": scenes,
             "golden": golden, "training": training}
    manifest.write(study, folder)
    with open(os.path.join(folder, "conditions.csv"), "w", newline="", encoding="utf-8") as f:
      writer = csv.DictWriter(f, fieldnames=list(table[0]))
      writer.writeheader()
      writer.writerows(table)
  return study


def _stimulus(folder, image_name, label, target, condition, image, reference, coded, conditions,
              stream):
  """Saves one stimulus; returns its conditions-table row."""
  point, bpp, decoded = coded
  if decoded.shape != image.shape:
    raise UserError(f"{condition} decoded {image_name} to {decoded.shape}, expected {image.shape}")
  conditions[condition] = _save(folder, f"stimuli/{image_name}/{label}/{condition}.png", decoded)
  off = abs(math.log(bpp / target))
  stream.write(f"{image_name}@{label}: {condition} {point} at {bpp:.3f} bpp (target {target:g})"
               f"{'  WARNING: more than 25% off target' if off > math.log(1.25) else ''}\n")
  psnr = 10 * np.log10(255.0 ** 2 / max(np.mean((decoded.astype(float) - image) ** 2), 1e-10))
  return {"scene": f"{image_name}@{label}", "image": image_name, "rate": label,
          "target_bpp": target, "condition": condition, "codec": condition, "point": point,
          "bpp": round(bpp, 5), "psnr": round(float(psnr), 3), "file": conditions[condition],
          "reference": reference}
