"""The study manifest (`study.json`, written by `jaxcomp study prepare`, read by `serve`).

    {"format": "jaxcomp-study", "version": 1, "title": str,
     "mode": "pc" | "2afc",                          absent means "pc"
     "stimulus_size": [W, H],                       every stimulus is W x H pixels
     "display": {"min_screen": [W, H]},             physical pixels (screen size x devicePixelRatio)
     "design": {"name": "adjacent" | "full" | "random", "trials_per_subject": int,
                "golden_every": int, "seed": int},
     "show_reference": bool,                         show the original above the pair
     "scenes": [{"id": "<image>@<rate>", "image": str, "rate": str, "target_bpp": float,
                 "reference": file, "conditions": {condition: file}}],
     "golden": [unit], "training": [unit]}

PC studies from `prepare` (rate matched per image) also carry, for the record (`serve` ignores it):
     "rate_matching": {"rates": [label], "match_to": condition or null,
                       "targets": {label: bpp} (global targets) or null (per image),
                       "tolerance": float or null},
     "conditions": {name: {"kind": "model", "by_rate": bool,
                           "points": [{"rate": label or null, "model": dir,
                                       "training": model.json's "training" or null}]}
                         | {"kind": "anchor", "description": str}},
     each scene's "target_bpp" is that image's target, and
     scene "stimuli": {condition: {"point": model dir or "q=N", "target_bpp": float,
                                   "bpp": achieved float, "deviation": bpp / target_bpp - 1}}.

A unit is one fixed pair with a right answer: {"scene", "reference", "conditions": {c1: file,
c2: file}, "expected": c1 or c2}. Files are relative to the manifest's folder, lossless PNG.

Mode "2afc" (`triplets` module): every scene is one triplet, {"id", "name": its file name in the
source split, "reference", "conditions": {"p0": file, "p1": file}, "info": {...}}; the design is
"balanced" (`schedule`), the reference is always shown (between the two), and the manifest has
"source": {"triplets": folder, "had_judges": bool, "info": the rest of its info.json}.
"""

import json
import os

from jaxcomp.errors import UserError
from jaxcomp.study import designs

FORMAT = "jaxcomp-study"
VERSION = 1
FILE = "study.json"
MODES = ("pc", "2afc")
TWO_AFC_DESIGN = "balanced"
TWO_AFC_CONDITIONS = ("p0", "p1")


def mode(study):
  """'pc' or '2afc'."""
  return study.get("mode", "pc")


def shows_reference(study):
  """Whether trials show the original (always in 2AFC, on request in PC mode)."""
  return mode(study) == "2afc" or bool(study.get("show_reference"))


def load(path):
  """(manifest dict, folder) from a manifest file or the folder holding study.json; validated."""
  if os.path.isdir(path):
    path = os.path.join(path, FILE)
  with open(path, encoding="utf-8") as f:
    try:
      study = json.load(f)
    except ValueError as e:
      raise UserError(f"{path}: not JSON ({e})") from None
  folder = os.path.dirname(os.path.abspath(path))
  _validate(study, folder, path)
  return study, folder


def _validate(study, folder, path):
  if not isinstance(study, dict) or study.get("format") != FORMAT:
    raise UserError(f"{path}: not a {FORMAT} manifest")
  if study.get("mode", "pc") not in MODES:
    raise UserError(f"{path}: mode must be one of {', '.join(MODES)}")
  two_afc = mode(study) == "2afc"
  names = (TWO_AFC_DESIGN,) if two_afc else designs.DESIGNS
  design = study.get("design", {})
  if design.get("name") not in names:
    raise UserError(f"{path}: design.name must be one of {', '.join(names)}")
  if not study.get("scenes"):
    raise UserError(f"{path}: no scenes")
  files = []
  for scene in study["scenes"]:
    if len(scene.get("conditions", {})) < 2:
      raise UserError(f"{path}: scene {scene.get('id')} has fewer than 2 conditions")
    if two_afc and sorted(scene["conditions"]) != list(TWO_AFC_CONDITIONS):
      raise UserError(f"{path}: 2AFC scene {scene.get('id')} needs exactly conditions p0, p1")
    files += list(scene["conditions"].values()) + [scene["reference"]]
  for unit in study.get("golden", []) + study.get("training", []):
    if len(unit.get("conditions", {})) != 2 or unit.get("expected") not in unit["conditions"]:
      raise UserError(f"{path}: unit {unit.get('scene')} needs 2 conditions and an expected one")
    files += list(unit["conditions"].values()) + [unit["reference"]]
  missing = [f for f in files if not os.path.isfile(os.path.join(folder, f))]
  if missing:
    raise UserError(f"{path}: {len(missing)} stimulus files missing, e.g. {missing[0]}")


def write(study, folder):
  """Writes `study` as folder/study.json."""
  with open(os.path.join(folder, FILE), "w", encoding="utf-8") as f:
    json.dump(study, f, indent=1)
