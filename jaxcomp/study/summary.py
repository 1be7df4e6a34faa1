"""Per-rate summary of a pairwise-comparison study: rate order, zero point, intervals, bpp.

The PCS 2022 study reads its results per bit rate, from low to high, each model against the MSE
model. So the summary
  * orders the rates by their target bpp (from the study's conditions.csv, `stimuli`), or, without
    the study folder, by the usual labels (very-low < low < medium < high < very-high; numeric
    labels by value), never alphabetically (which puts 'high' before 'low');
  * puts the zero point of the scaled scores (JOD) at the MSE model (`default_reference`): a
    condition named 'mse', else the one condition whose name has 'mse' as a word
    ('pretrain-mse', 'b-mse'); it comes first in every table and plot, the others follow
    alphabetically;
  * gives each condition's mean over images of the normalised winning frequency (its winning
    frequency divided by the sum over the scene's conditions, so a scene's values sum to 1 and
    chance is 1/C) and of the JOD, each with a 95 % percentile bootstrap interval over subjects
    (all of a rate's scenes resampled together, so the interval is that of the mean);
  * shows each condition's achieved bpp at that rate (mean and range over images) when the study
    folder is known.
"""

import collections
import csv
import json
import os
import re
import warnings

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.study import scaling, votes as votes_lib

LEVEL = 0.95
# Rate labels in increasing order of bit rate, for studies analysed without their folder.
LABEL_ORDER = ("lowest", "very-low", "verylow", "very_low", "low", "medium-low", "med", "mid",
               "medium", "medium-high", "high", "very-high", "veryhigh", "very_high", "highest")
REFERENCE_WORD = "mse"


def split_scene(scene):
  """'<image>@<rate>' -> (image, rate); a scene without '@' has rate ''."""
  image, _, rate = scene.rpartition("@")
  return (image, rate) if image else (scene, "")


def stimuli(study_folder):
  """Targets and achieved rates of a prepared study (`jaxcomp study prepare`'s folder).

  Reads conditions.csv (scene, rate, target_bpp, condition, bpp, ...); a folder without it (an
  older study) gives the targets from study.json's scenes and no bpp.

  Returns:
    {'targets': {rate: target bpp}, 'bpp': {scene: {condition: bpp}}}. UserError if the folder
    has neither file.
  """
  table = os.path.join(study_folder, "conditions.csv")
  targets, bpp = {}, collections.defaultdict(dict)
  if os.path.isfile(table):
    with open(table, newline="", encoding="utf-8") as f:
      for row in csv.DictReader(f):
        try:
          targets[row["rate"]] = float(row["target_bpp"])
          bpp[row["scene"]][row["condition"]] = float(row["bpp"])
        except (KeyError, ValueError):
          raise UserError(f"{table}: needs columns scene, rate, target_bpp, condition, bpp with "
                          "numbers") from None
    return {"targets": targets, "bpp": dict(bpp)}
  manifest = os.path.join(study_folder, "study.json")
  if not os.path.isfile(manifest):
    raise UserError(f"--study: {study_folder} has no conditions.csv or study.json")
  with open(manifest, encoding="utf-8") as f:
    try:
      scenes = json.load(f).get("scenes", [])
    except ValueError as e:
      raise UserError(f"{manifest}: not JSON ({e})") from None
  for scene in scenes:
    if "rate" in scene and "target_bpp" in scene:
      targets[scene["rate"]] = float(scene["target_bpp"])
  return {"targets": targets, "bpp": {}}


def rate_order(rates, targets=None):
  """Rate labels from low to high: by target bpp where known, else by `LABEL_ORDER`, else by
  numeric value of the label, else alphabetically (unknown labels after known ones)."""
  targets = targets or {}

  def key(rate):
    if rate in targets:
      return (0, targets[rate], rate)
    label = rate.lower()
    if label in LABEL_ORDER:
      return (1, LABEL_ORDER.index(label), rate)
    try:
      return (2, float(label), rate)
    except ValueError:
      return (3, 0.0, rate)

  return sorted(rates, key=key)


def default_reference(conditions):
  """(condition, how it was chosen): the MSE model, else the first condition alphabetically."""
  conditions = sorted(conditions)
  if REFERENCE_WORD in conditions:
    return REFERENCE_WORD, "the MSE model"
  named = [c for c in conditions if REFERENCE_WORD in re.split(r"[^a-z0-9]+", c.lower())]
  if len(named) == 1:
    return named[0], "the MSE model"
  if named:
    return named[0], f"the first of the MSE models {named}"
  return conditions[0], "no MSE model among the conditions: the first condition alphabetically"


def ordered(conditions, reference):
  """The reference first, then the other conditions alphabetically."""
  rest = sorted(c for c in conditions if c != reference)
  return [reference] + rest if reference in conditions else rest


def _scene_fits(counts, conditions, reference, options):
  """([C] JOD with the reference at 0, or None if absent; [C] normalised winning frequency)."""
  unseen = (counts.sum(0) + counts.sum(1)) == 0
  jod = None
  if reference in conditions:
    jod = np.where(unseen, np.nan, scaling.thurstone(
        counts, reference=conditions.index(reference), prior_sd=options.prior_sd))
  return jod, scaling.winning_frequencies(counts)[1]


def per_rate(kept_votes, reference, options, stimulus_table=None):
  """The per-rate summary (see the module docstring).

  Args:
    kept_votes: [Vote] main votes of the kept subjects.
    reference: the condition at 0 JOD.
    options: `analysis.Options` (bootstrap, seed, prior_sd).
    stimulus_table: `stimuli(...)` or None.

  Returns:
    {rate: {'target_bpp': float or None, 'images': int, 'subjects': int,
            'conditions': {condition: {'images', 'winning_frequency_normalised',
                                       'winning_frequency_normalised_ci': [lo, hi],
                                       'jod', 'jod_ci': [lo, hi], 'jod_images',
                                       'bpp', 'bpp_range': [lo, hi]}}}}
    with rates in `rate_order` and conditions in `ordered` order; intervals absent without
    bootstrap (or with one subject), bpp None without the study's table.
  """
  stimulus_table = stimulus_table or {"targets": {}, "bpp": {}}
  by_rate = collections.defaultdict(lambda: collections.defaultdict(list))
  for v in kept_votes:
    by_rate[split_scene(v.scene)[1]][v.scene].append(v)
  summary = {}
  for rate in rate_order(by_rate, stimulus_table["targets"]):
    scenes = dict(sorted(by_rate[rate].items()))
    observers = sorted({v.observer for scene_votes in scenes.values() for v in scene_votes})
    names = sorted({c for scene_votes in scenes.values()
                    for c in votes_lib.conditions_of(scene_votes)})
    columns = ordered(names, reference)
    per_subject = {}  # scene -> (conditions, [S, C, C])
    for scene, scene_votes in scenes.items():
      conditions = votes_lib.conditions_of(scene_votes)
      per_subject[scene] = (conditions, np.stack([
          votes_lib.count_matrix([v for v in scene_votes if v.observer == o], conditions)
          for o in observers]))

    def means(weights, per_subject=per_subject, columns=columns):
      """[C] mean JOD and [C] mean normalised frequency over the scenes, subjects weighted."""
      jod, wf = np.full((len(per_subject), len(columns)), np.nan), np.full(
          (len(per_subject), len(columns)), np.nan)
      for k, (conditions, matrices) in enumerate(per_subject.values()):
        counts = np.tensordot(weights, matrices, axes=1)
        scene_jod, scene_wf = _scene_fits(counts, conditions, reference, options)
        index = [columns.index(c) for c in conditions]
        wf[k, index] = scene_wf
        if scene_jod is not None:
          jod[k, index] = scene_jod
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a condition absent from every scene
        return np.nanmean(jod, 0), np.nanmean(wf, 0), (~np.isnan(jod)).sum(0), (
            ~np.isnan(wf)).sum(0)

    jod, wf, jod_images, wf_images = means(np.ones(len(observers)))
    intervals = None
    if options.bootstrap and len(observers) > 1:
      rng = np.random.default_rng(options.seed)
      draws = [means(np.bincount(rng.integers(0, len(observers), len(observers)),
                                 minlength=len(observers)).astype(np.float64))[:2]
               for _ in range(options.bootstrap)]
      tail = 100 * (1 - LEVEL) / 2
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        intervals = [np.nanpercentile([d[i] for d in draws], [tail, 100 - tail], axis=0)
                     for i in (0, 1)]
    rows = {}
    for c, name in enumerate(columns):
      achieved = [stimulus_table["bpp"][s][name] for s in scenes
                  if name in stimulus_table["bpp"].get(s, {})]
      row = {"images": int(wf_images[c]),
             "winning_frequency_normalised": _number(wf[c]),
             "jod": _number(jod[c]), "jod_images": int(jod_images[c]),
             "bpp": _number(np.mean(achieved)) if achieved else None,
             "bpp_range": [_number(min(achieved)), _number(max(achieved))] if achieved else None}
      if intervals is not None:
        row["jod_ci"] = [_number(intervals[0][0][c]), _number(intervals[0][1][c])]
        row["winning_frequency_normalised_ci"] = [_number(intervals[1][0][c]),
                                                  _number(intervals[1][1][c])]
      rows[name] = row
    summary[rate] = {"target_bpp": stimulus_table["targets"].get(rate), "images": len(scenes),
                     "subjects": len(observers), "conditions": rows}
  return summary


def _number(x):
  return None if x is None or not np.isfinite(x) else round(float(x), 6)


def _interval(row, key, fmt):
  value, ci = row.get(key), row.get(f"{key}_ci")
  if value is None:
    return "—"
  text = fmt.format(value)
  if ci and None not in ci:
    text += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
  return text


def markdown(report):
  """Markdown tables, one per rate (low to high), of an analysis report's 'rates'."""
  reference = report["reference"]
  lines = [f"Scores per rate, means over images; 95 % bootstrap intervals over subjects in "
           f"brackets. JOD: 0 = {reference['condition']} ({reference['why']}), 1 JOD = 75 % "
           "preference. Normalised winning frequency: wins / comparisons, divided by the sum "
           "over the scene's conditions (sums to 1 per image; chance = 1 / conditions).", ""]
  for rate, entry in report["rates"].items():
    target = entry["target_bpp"]
    lines += [f"### rate {rate or '-'}" + (f" (target {target:g} bpp)" if target else "") +
              f": {entry['images']} images, {entry['subjects']} subjects", "",
              f"| condition | bpp (mean, range) | normalised winning frequency | "
              f"JOD (0 = {reference['condition']}) |", "|---|---|---|---|"]
    for name, row in entry["conditions"].items():
      bpp = "—" if row["bpp"] is None else (
          f"{row['bpp']:.3f} ({row['bpp_range'][0]:.3f}–{row['bpp_range'][1]:.3f})")
      jod = "0 (reference)" if name == reference["condition"] else _interval(row, "jod", "{:+.2f}")
      lines.append(f"| {name} | {bpp} | "
                   f"{_interval(row, 'winning_frequency_normalised', '{:.3f}')} | {jod} |")
    lines.append("")
  return "\n".join(lines)
