"""`jaxcomp study prepare`: stimuli at matched bit rates, conditions table, golden pairs, manifest.

Rate matching is per image. Each image has one target bpp per rate label: the global `--rates`
value, or (`match_to`) the bpp that a reference condition, given by rate point, reaches on that
image (the paper compares models at the same rate; the MSE model is the natural reference). Each
condition then contributes, per image and rate, one decoded stimulus:
  - a model codec given by rate point (`--model NAME=LABEL:DIR,...`): its model for that label;
  - a model codec given as a set of points (`--model NAME=DIR,DIR`): per image, the assignment of
    distinct points to rates (in rate order) nearest to the targets in log(bpp) (`assign`);
  - a classical anchor: per image, integer qualities found by bisection over 1..100 around each
    target, assigned the same way (so two rates never share a quality).
No stimulus serves two rates of one image (distinct model point, quality and decoded pixels), and
every stimulus must lie within `tolerance` of its image's target (|bpp / target - 1|); otherwise
the whole study is refused, with the list of offending stimuli on the progress stream, and
nothing is written. Stimuli are stored as lossless PNG; bpp is always 8 · file bytes / (W · H) of
the coded crop.

Golden units: per image, the original against a JPEG at `golden_quality` (expected: the original).
Training units: on the first image, the original against JPEG q=10, and JPEG q=5 against JPEG
q=50 (expected: the better one); subjects are told whether they answered right.

Output folder (written whole or not at all):
    study.json       the manifest (`manifest` module)
    conditions.csv   scene, image, rate, target_bpp, condition, codec, point, bpp, deviation,
                     psnr, file, reference (bpp achieved; deviation = bpp / target_bpp - 1)
    stimuli/<image>/reference.png, stimuli/<image>/<rate>/<condition>.png,
    stimuli/<image>/golden/…, stimuli/<image>/training/…
"""

import csv
import hashlib
import math
import os
import re
import sys
import tempfile

import numpy as np
from PIL import Image

from jaxcomp import images
from jaxcomp.codec import export
from jaxcomp.errors import UserError
from jaxcomp.evaluate import anchors as anchors_lib
from jaxcomp.evaluate import rd_eval
from jaxcomp.fileio import atomic_path
from jaxcomp.study import manifest

QUALITY_RANGE = (1, 100)
JPEG = "jpeg-420"
DEFAULT_TOLERANCE = 0.10
ANCHOR_NEIGHBOURS = 2  # qualities tried on each side of each target's bisection result
_LABEL = re.compile(r"[A-Za-z0-9_.-]+")


def parse_model(spec):
  """'NAME=DIR,DIR' or 'NAME=LABEL:DIR,LABEL:DIR' -> (name, [dir], [label] or None).

  DIR may be `zoo:NAME`; an item is read as LABEL:DIR when it is not an existing path and its
  part before the first ':' is a label other than 'zoo'. UserError for a bad spec, a mix of the
  two forms, a label given twice or one model for two labels.
  """
  name, _, items = spec.partition("=")
  items = [s.strip() for s in items.split(",") if s.strip()]
  if not name or not items:
    raise UserError(f"--model: expected NAME=DIR[,DIR...] or NAME=LABEL:DIR,..., got {spec!r}")
  labelled = []
  for item in items:
    label, colon, rest = item.partition(":")
    by_rate = (colon and rest and label != "zoo" and _LABEL.fullmatch(label)
               and not os.path.exists(item))
    labelled.append((label, rest) if by_rate else None)
  if not any(labelled):
    return name, items, None
  if not all(labelled):
    raise UserError(f"--model {name}: give every model as LABEL:DIR or none (got {spec!r})")
  labels, dirs = [l for l, _ in labelled], [d for _, d in labelled]
  twice = sorted({l for l in labels if labels.count(l) > 1})
  if twice:
    raise UserError(f"--model {name}: rate {', '.join(twice)} given twice")
  for d in set(dirs):
    shared = [l for l, other in labelled if other == d]
    if len(shared) > 1:
      raise UserError(f"--model {name}: one model ({d}) for two rates ({', '.join(shared)}); a "
                      "stimulus may serve one rate only")
  return name, dirs, labels


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


def _anchor_at(anchor, quality, image, workdir):
  return code(rd_eval.anchor_method(anchor, [quality]).points[0], image, workdir)


def nearest_anchor_quality(anchor, image, target, workdir, results=None):
  """(label 'q=N', bpp, decoded) of the anchor quality whose file is nearest to `target` bpp.

  `results` ({quality: (bpp, decoded)}) caches the qualities coded, shared between calls.
  """
  results = {} if results is None else results

  def at(quality):
    if quality not in results:
      results[quality] = _anchor_at(anchor, quality, image, workdir)
    return results[quality]

  low, high = QUALITY_RANGE
  while low < high:  # Smallest quality with bpp >= target (bpp grows with quality).
    mid = (low + high) // 2
    if at(mid)[0] >= target:
      high = mid
    else:
      low = mid + 1
  candidates = [q for q in (low - 1, low) if QUALITY_RANGE[0] <= q <= QUALITY_RANGE[1]]
  best = min(candidates, key=lambda q: abs(math.log(at(q)[0] / target)))
  return f"q={best}", *results[best]


def assign(candidates, targets):
  """Distinct stimuli for the rates, nearest to their targets: {rate label: candidate index}.

  Minimises the sum of |log(bpp / target)| over the rates, with candidates assigned in rate
  order (a lower target never gets a larger file; for this convex cost that loses nothing) and
  no two rates sharing a stimulus key (identical decoded pixels). Dynamic programme over the
  candidates sorted by bpp; candidates with the same key and different bpp are tried one at a
  time.

  Args:
    candidates: [(bpp > 0, key)] the points available.
    targets: [(label, target bpp > 0)].

  Returns:
    {label: index into candidates}, or None when there are fewer distinct stimuli than rates.
  """
  first = {}  # Copies (same key and bpp: e.g. qualities that give one file) count once.
  for index, (bpp, key) in enumerate(candidates):
    first.setdefault((key, bpp), index)
  groups = {}
  for (key, _), index in sorted(first.items(), key=lambda item: item[1]):
    groups.setdefault(key, []).append(index)
  shared = [members for members in groups.values() if len(members) > 1]
  best = (math.inf, None)
  for keep in _one_of_each(shared):
    excluded = {i for members in shared for i in members} - set(keep)
    pool = [i for i in first.values() if i not in excluded]
    best = min(best, _monotone_assignment(candidates, targets, pool), key=lambda r: r[0])
  return best[1]


def _one_of_each(groups):
  """Every choice of one member from each group (one empty choice for no groups)."""
  if not groups:
    yield ()
    return
  for member in groups[0]:
    for rest in _one_of_each(groups[1:]):
      yield (member,) + rest


def _monotone_assignment(candidates, targets, pool):
  """(cost, {label: index}) of the order-preserving assignment of `pool` to `targets`."""
  rates = sorted(range(len(targets)), key=lambda r: (targets[r][1], r))
  pool = sorted(pool, key=lambda i: candidates[i][0])
  if len(pool) < len(rates):
    return math.inf, None
  cost = lambda r, i: abs(math.log(candidates[i][0] / targets[r][1]))
  # f[k][j]: least cost of the first k rates on the first j pooled candidates.
  f = [[0.0] * (len(pool) + 1)] + [[math.inf] * (len(pool) + 1) for _ in rates]
  for k, r in enumerate(rates, 1):
    for j in range(k, len(pool) + 1):
      f[k][j] = min(f[k][j - 1], f[k - 1][j - 1] + cost(r, pool[j - 1]))
  chosen, j = {}, len(pool)
  for k in range(len(rates), 0, -1):
    while f[k][j] == f[k][j - 1]:
      j -= 1
    chosen[targets[rates[k - 1]][0]] = pool[j - 1]
    j -= 1
  return f[len(rates)][len(pool)], chosen


def _save(folder, relative, image):
  path = os.path.join(folder, relative)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, format="PNG")
  return relative


def _jpeg(image, quality, workdir):
  return _anchor_at(anchors_lib.get(JPEG), quality, image, workdir)


def _image_name(path):
  stem = os.path.splitext(os.path.basename(path))[0]
  return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)


def _key(decoded):
  return hashlib.sha256(np.ascontiguousarray(decoded).tobytes()).hexdigest()


def _training_record(model_dir):
  """model.json's "training" entry of an exported model (None when it has none)."""
  return export.read_config(model_dir).get("training")


def check_rate_points(by_rate, labels):
  """UserError unless every codec given by rate point has one model for each rate label."""
  for name, given in by_rate.items():
    unknown = [l for l in given if l not in labels]
    if unknown:
      raise UserError(f"--model {name}: rate {', '.join(unknown)} is not one of the study's "
                      f"rates ({', '.join(labels)})")
    missing = [l for l in labels if l not in given]
    if missing:
      raise UserError(f"--model {name}: no model for rate {', '.join(missing)}")


def check_match_to(names, by_rate, match_to):
  """UserError unless `match_to` is one of the codecs given by rate point (`by_rate`)."""
  if match_to in by_rate:
    return
  if match_to in names:
    raise UserError(f"--match-to {match_to}: that model is not given by rate point (use "
                    f"--model {match_to}=LABEL:DIR,...)")
  raise UserError(f"--match-to {match_to}: unknown condition (models given by rate point: "
                  f"{', '.join(by_rate) or 'none'})")


def prepare(image_paths, codecs, anchor_list, rates, out, size, settings, stream=None,
            by_rate=None, match_to=None, tolerance=DEFAULT_TOLERANCE):
  """Writes the study folder `out`, or refuses (UserError, nothing written).

  Args:
    image_paths: [I] source images.
    codecs: [rd_eval.Method] of exported models (one point per model directory).
    anchor_list: [anchors.Anchor].
    rates: [(label, target bpp)], or with `match_to` [(label, None)] (labels in study order).
    out: output folder.
    size: (W, H) of the stimuli (centre crops).
    settings: dict with design, trials_per_subject, golden_every, seed, golden_quality,
      min_screen, show_reference, title.
    stream: progress lines and the list of refused stimuli (default stderr).
    by_rate: {codec name: [rate label per point]} for the codecs given by rate point.
    match_to: name of a codec in `by_rate`: each image's target at each rate is the bpp that
      codec reaches on it (None: the global targets of `rates`).
    tolerance: largest |bpp / target - 1| accepted for any stimulus (math.inf: no limit).

  Returns:
    The manifest dict.
  """
  stream = stream or sys.stderr
  by_rate = dict(by_rate or {})
  labels = [label for label, _ in rates]
  names = [c.name for c in codecs] + [a.name for a in anchor_list]
  if len(set(names)) != len(names) or len(names) < 2:
    raise UserError(f"need at least two differently named codecs, got {names}")
  check_rate_points(by_rate, labels)
  if match_to is not None:
    check_match_to(names, by_rate, match_to)
  elif any(t is None for _, t in rates):
    raise UserError("every rate needs a target bpp (or give --match-to)")
  scenes, golden, training, table, refused = [], [], [], [], []
  with atomic_path(out) as folder, tempfile.TemporaryDirectory(prefix="jaxcomp-study-") as work:
    os.makedirs(folder)
    for k, image_path in enumerate(image_paths):
      image = centre_crop(images.read(image_path)[0], size)
      name = _image_name(image_path)
      reference = _save(folder, f"stimuli/{name}/reference.png", image)
      coded = {c.name: [(p.label, *code(p, image, work)) for p in c.points] for c in codecs}
      chosen = {c: dict(zip(given, coded[c])) for c, given in by_rate.items()}
      targets = list(rates) if match_to is None else [
          (label, chosen[match_to][label][1]) for label in labels]
      for codec in codecs:
        if codec.name not in by_rate:
          chosen[codec.name] = _pick(coded[codec.name], targets)
      for anchor in anchor_list:
        chosen[anchor.name] = _pick(_anchor_candidates(anchor, image, targets, work), targets)
      refused += _check(name, names, chosen, targets, tolerance)
      for label, target in targets:
        conditions, stimuli = {}, {}
        for condition in names:
          if chosen[condition] is None:
            continue
          row = _stimulus(folder, name, label, target, condition, image, reference,
                          chosen[condition][label], conditions, stream)
          table.append(row)
          stimuli[condition] = {key: row[key] for key in ("point", "target_bpp", "bpp",
                                                           "deviation")}
        scenes.append({"id": f"{name}@{label}", "image": name, "rate": label,
                       "target_bpp": target, "reference": reference, "conditions": conditions,
                       "stimuli": stimuli})
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
    if refused:
      _refuse(refused, tolerance, stream)
    study = {"format": manifest.FORMAT, "version": manifest.VERSION,
             "title": settings["title"], "stimulus_size": list(size),
             "display": {"min_screen": list(settings["min_screen"])},
             "design": {"name": settings["design"],
                        "trials_per_subject": settings["trials_per_subject"],
                        "golden_every": settings["golden_every"], "seed": settings["seed"]},
             "show_reference": settings["show_reference"],
             "rate_matching": {"rates": labels, "match_to": match_to,
                               "targets": dict(rates) if match_to is None else None,
                               "tolerance": tolerance if math.isfinite(tolerance) else None},
             "conditions": _condition_entries(codecs, anchor_list, by_rate),
             "scenes": scenes, "golden": golden, "training": training}
    manifest.write(study, folder)
    with open(os.path.join(folder, "conditions.csv"), "w", newline="", encoding="utf-8") as f:
      writer = csv.DictWriter(f, fieldnames=list(table[0]))
      writer.writeheader()
      writer.writerows(table)
  return study


def _anchor_candidates(anchor, image, targets, workdir):
  """[(label 'q=N', bpp, decoded)]: the qualities bisected for each target and their neighbours."""
  results = {}
  for _, target in targets:
    best = int(nearest_anchor_quality(anchor, image, target, workdir, results)[0][2:])
    for quality in range(best - ANCHOR_NEIGHBOURS, best + ANCHOR_NEIGHBOURS + 1):
      if QUALITY_RANGE[0] <= quality <= QUALITY_RANGE[1] and quality not in results:
        results[quality] = _anchor_at(anchor, quality, image, workdir)
  return [(f"q={q}", *results[q]) for q in sorted(results)]


def _pick(coded, targets):
  """{label: (point, bpp, decoded)} by `assign`, or (None, [coded]) when there are too few."""
  picked = assign([(bpp, _key(decoded)) for _, bpp, decoded in coded], targets)
  if picked is None:
    return None, coded
  return {label: coded[index] for label, index in picked.items()}


def _check(image_name, names, chosen, targets, tolerance):
  """[problem dict] of one image: conditions with a stimulus for two rates, stimuli off target.

  Args:
    image_name: str.
    names: conditions in table order.
    chosen: {condition: {label: (point, bpp, decoded)}, or (None, coded) from `_pick`}; the
      latter are reported and replaced by None.
    targets: [(label, target bpp)] in study order.
    tolerance: largest |bpp / target - 1| accepted.
  """
  problems = []
  for condition in names:
    picked = chosen[condition]
    if isinstance(picked, tuple):
      distinct = len({_key(decoded) for _, _, decoded in picked[1]})
      problems.append({"image": image_name, "condition": condition,
                       "reason": f"only {distinct} distinct stimuli for {len(targets)} rates"})
      chosen[condition] = None
      continue
    seen = {}
    for label, _ in targets:
      point, _, decoded = picked[label]
      other = seen.setdefault(_key(decoded), label)
      if other != label:
        problems.append({"image": image_name, "condition": condition,
                         "reason": f"one stimulus ({point}) for rates {other} and {label}"})
  for label, target in targets:
    for condition in names:
      if chosen[condition] is not None:
        point, bpp, _ = chosen[condition][label]
        deviation = bpp / target - 1
        if abs(deviation) > tolerance + 1e-12:
          problems.append({"image": image_name, "rate": label, "condition": condition,
                           "point": point, "bpp": bpp, "target": target, "deviation": deviation})
  return problems


def _refuse(problems, tolerance, stream):
  """Lists the problems on `stream`, then raises the one-line UserError."""
  off = [p for p in problems if "deviation" in p]
  stream.write(f"refused: {len(problems)} problem(s) in the stimuli:\n")
  for p in problems:
    if "deviation" in p:
      stream.write(f"  {p['image']} {p['rate']} {p['condition']}: {p['bpp']:.4f} bpp, target "
                   f"{p['target']:.4f}, {p['deviation']:+.1%} ({p['point']})\n")
    else:
      stream.write(f"  {p['image']} {p['condition']}: {p['reason']}\n")
  reasons = []
  if off:
    reasons.append(f"{len(off)} stimuli outside ±{tolerance:.0%} of their image's target")
  if len(off) < len(problems):
    reasons.append(f"{len(problems) - len(off)} conditions without distinct stimuli per rate")
  raise UserError(f"{' and '.join(reasons)} (listed above); nothing written (adjust the models "
                  "or --rate-tolerance)")


def _condition_entries(codecs, anchor_list, by_rate):
  """The manifest's "conditions": per condition its kind and points, with training records."""
  entries = {}
  for codec in codecs:
    labels = by_rate.get(codec.name) or [None] * len(codec.points)
    entries[codec.name] = {"kind": "model", "by_rate": codec.name in by_rate, "points": [
        {"rate": label, "model": point.label, "training": _training_record(point.label)}
        for label, point in zip(labels, codec.points)]}
  for anchor in anchor_list:
    entries[anchor.name] = {"kind": "anchor", "description": anchor.description}
  return entries


def _stimulus(folder, image_name, label, target, condition, image, reference, coded, conditions,
              stream):
  """Saves one stimulus; returns its conditions-table row."""
  point, bpp, decoded = coded
  if decoded.shape != image.shape:
    raise UserError(f"{condition} decoded {image_name} to {decoded.shape}, expected {image.shape}")
  conditions[condition] = _save(folder, f"stimuli/{image_name}/{label}/{condition}.png", decoded)
  deviation = bpp / target - 1
  stream.write(f"{image_name}@{label}: {condition} {point} at {bpp:.3f} bpp (target "
               f"{target:.3f}, {deviation:+.1%})\n")
  psnr = 10 * np.log10(255.0 ** 2 / max(np.mean((decoded.astype(float) - image) ** 2), 1e-10))
  return {"scene": f"{image_name}@{label}", "image": image_name, "rate": label,
          "target_bpp": round(target, 5), "condition": condition, "codec": condition,
          "point": point, "bpp": round(bpp, 5), "deviation": round(deviation, 5),
          "psnr": round(float(psnr), 3), "file": conditions[condition], "reference": reference}
