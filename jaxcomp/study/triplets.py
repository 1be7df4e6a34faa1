"""`jaxcomp study prepare --mode 2afc`: a 2AFC study from a BAPPS-layout folder of triplets.

Input: a folder with ref/, p0/, p1/ image files, as `jaxcomp perceptual build` writes it (or any
BAPPS split); as in BAPPS's TwoAFCDataset each folder is sorted by file name and triplets are
paired by index. A judge/ folder is not needed (if present it is ignored: the study collects new
judgments). When info.json has a "triplets" list of {"name": <ref file name>, ...} rows (as
`perceptual build` writes), each triplet's row is kept in the manifest and in the exported split.

Every triplet becomes a scene whose id is the stem of its ref/ file, with conditions p0 and p1
and its reference; subjects see p0 and p1 on either side of the reference and pick the one closer
to it. Golden units: min(triplets, trials_per_subject) // golden_every triplets drawn by the seed,
each as the reference itself against a JPEG of it at `golden_quality` (expected: the original,
identical to the reference between them). Training: on the first triplet, the original against
JPEG q=10 and JPEG q=5 against JPEG q=50 (expected: the closer one).

Output folder (written whole or not at all): study.json (`manifest`, mode "2afc") and
stimuli/<id>/{ref,p0,p1}.png, stimuli/<id>/golden/..., stimuli/<id>/training/... (lossless PNG).
"""

import io
import json
import os
import sys

import numpy as np
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.images import read_rgb
from jaxcomp.study import manifest

IMAGE_FOLDERS = ("ref", "p0", "p1")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
TRAINING_QUALITIES = (5, 10, 50)


def list_triplets(path):
  """{'ref': [N names], 'p0': [...], 'p1': [...]}, sorted, of a triplet folder; validated.

  UserError when the folder or one of ref/, p0/, p1/ is missing, a folder has no images, the
  counts differ, or two ref/ files share a stem.
  """
  if not os.path.isdir(path):
    raise UserError(f"{path}: no such folder (need a 2AFC split with ref/, p0/, p1/)")
  lists = {}
  for k in IMAGE_FOLDERS:
    folder = os.path.join(path, k)
    if not os.path.isdir(folder):
      raise UserError(f"{folder}: missing (a 2AFC split has ref/, p0/, p1/)")
    lists[k] = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
  counts = {k: len(v) for k, v in lists.items()}
  if not counts["ref"]:
    raise UserError(f"{os.path.join(path, 'ref')}: no images "
                    f"({', '.join(IMAGE_EXTENSIONS)})")
  if len(set(counts.values())) != 1:
    raise UserError(f"{path}: file counts differ: "
                    + ", ".join(f"{k}/ {n}" for k, n in counts.items()))
  stems = [os.path.splitext(n)[0] for n in lists["ref"]]
  if len(set(stems)) != len(stems):
    raise UserError(f"{os.path.join(path, 'ref')}: two files share a name stem")
  return lists


def _info_rows(path):
  """({ref file name: row} of info.json's "triplets" list, its other keys); ({}, {}) if none."""
  file = os.path.join(path, "info.json")
  if not os.path.isfile(file):
    return {}, {}
  try:
    with open(file, encoding="utf-8") as f:
      info = json.load(f)
  except ValueError as e:
    raise UserError(f"{file}: not JSON ({e})") from None
  if not isinstance(info, dict):
    return {}, {}
  rows = info.get("triplets")
  rows = {r["name"]: r for r in rows if isinstance(r, dict) and "name" in r} if isinstance(
      rows, list) else {}
  return rows, {k: v for k, v in info.items() if k != "triplets"}


def _jpeg(image, quality):
  """[H, W, 3] uint8 decoded JPEG 4:2:0 of `image` at `quality`."""
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG", quality=quality, subsampling=2)
  buf.seek(0)
  with Image.open(buf) as img:
    return np.asarray(img.convert("RGB"))


def _save(folder, relative, image):
  path = os.path.join(folder, relative)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, format="PNG")
  return relative


def golden_count(count, settings):
  """Golden units a subject of a 2AFC study of `count` triplets sees (one per `golden_every`)."""
  every = settings["golden_every"]
  return min(count, settings["trials_per_subject"]) // every if every else 0


def prepare(path, out, settings, stream=None):
  """Writes the 2AFC study folder `out` from the triplet folder `path`.

  Args:
    path: BAPPS-layout folder (ref/, p0/, p1/; judge/ optional, ignored).
    out: study folder to write.
    settings: dict with trials_per_subject, golden_every, seed, golden_quality, min_screen,
      title.
    stream: notes (default stderr).

  Returns:
    The manifest dict.
  """

  stream = stream or sys.stderr
  lists = list_triplets(path)
  rows, split_info = _info_rows(path)
  had_judges = os.path.isdir(os.path.join(path, "judge"))
  if had_judges:
    stream.write(f"note: {os.path.join(path, 'judge')} is ignored; the study collects new "
                 "judgments\n")
  count = len(lists["ref"])
  golden_at = [int(k) for k in np.random.default_rng(settings["seed"]).choice(
      count, golden_count(count, settings), replace=False)]
  ids = [os.path.splitext(n)[0] for n in lists["ref"]]
  clashes = {f"{i}@golden" for i in ids} | {f"{ids[0]}@training"}
  if clashes & set(ids):
    raise UserError(f"{path}: a triplet is named like a golden or training unit "
                    f"({sorted(clashes & set(ids))[0]})")
  scenes, golden, training, shape = [], {}, [], None
  with atomic_path(out) as folder:
    os.makedirs(folder)
    for k, triplet_id in enumerate(ids):
      images, files = {}, {}
      for which in IMAGE_FOLDERS:
        file = os.path.join(path, which, lists[which][k])
        images[which] = read_rgb(file)
        if shape is None:
          shape, first = images[which].shape, file
        elif images[which].shape != shape:
          raise UserError(f"image sizes differ: {first} is {shape[1]}x{shape[0]}, "
                          f"{file} is {images[which].shape[1]}x{images[which].shape[0]}")
        files[which] = _save(folder, f"stimuli/{triplet_id}/{which}.png", images[which])
      ref, name = images["ref"], lists["ref"][k]
      scenes.append({"id": triplet_id, "name": name, "reference": files["ref"],
                     "conditions": {"p0": files["p0"], "p1": files["p1"]},
                     "info": rows.get(name, {})})
      if k in golden_at:
        heavy = f"jpeg-q{settings['golden_quality']}"
        golden[k] = {"scene": f"{triplet_id}@golden", "reference": files["ref"],
                     "expected": "original", "conditions": {
                         "original": files["ref"], heavy: _save(
                             folder, f"stimuli/{triplet_id}/golden/{heavy}.png",
                             _jpeg(ref, settings["golden_quality"]))}}
      if k == 0:
        coded = {q: _save(folder, f"stimuli/{triplet_id}/training/jpeg-q{q}.png", _jpeg(ref, q))
                 for q in TRAINING_QUALITIES}
        training = [
            {"scene": f"{triplet_id}@training", "reference": files["ref"],
             "expected": "original",
             "conditions": {"original": files["ref"], "jpeg-q10": coded[10]}},
            {"scene": f"{triplet_id}@training", "reference": files["ref"],
             "expected": "jpeg-q50",
             "conditions": {"jpeg-q5": coded[5], "jpeg-q50": coded[50]}}]
    study = {"format": manifest.FORMAT, "version": manifest.VERSION, "mode": "2afc",
             "title": settings["title"], "stimulus_size": [shape[1], shape[0]],
             "display": {"min_screen": list(settings["min_screen"])},
             "design": {"name": manifest.TWO_AFC_DESIGN,
                        "trials_per_subject": settings["trials_per_subject"],
                        "golden_every": settings["golden_every"], "seed": settings["seed"]},
             "show_reference": True,
             "source": {"triplets": os.path.abspath(path), "had_judges": had_judges,
                        "info": split_info},
             "scenes": scenes, "golden": [golden[k] for k in golden_at], "training": training}
    manifest.write(study, folder)
  return study
