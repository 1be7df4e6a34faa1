"""Cross-metric BD-rate matrix: every test curve against one anchor, on every evaluation metric.

The PCS 2022 study's summary table: one codec fine-tuned with each distortion (rows), evaluated
with every metric (columns), each cell the BD-rate of that model against the MSE model on that
metric. Each cell is exactly `compare.compare(anchor, test, key, method, mode)`: the same curves,
the same handling of lower-is-better metrics (the distance is negated before fitting, so a
negative BD-rate always means "fewer bits for equal quality"), the same overlap rule. A cell whose
curves cannot be compared (no overlap of the quality ranges, a key missing from the test, too few
points) is empty ('—' in the table, NaN-grey in the heat map) and its reason is kept, with 'worse' or
'better' when the model's quality range lies entirely below or above the anchor's; a cell whose
curves overlap by less than `min_overlap` carries a mark (†) and its warning.

Outputs (`write`): a markdown table, a heat map (diverging colour map centred at 0, symmetric
range, each cell annotated with its percentage, the cell where a model is evaluated with its own
training metric outlined) and a JSON document:

    {"anchor": "mse", "method": "pchip", "mode": "curve", "min_overlap": 0.75,
     "metrics": ["psnr-rgb", ...], "models": ["ssim", ...],
     "cells": {"ssim": {"psnr-rgb": {"bd_rate": -1.2, "bd_quality": 0.03, "warnings": []},
                        "lpips-rgb": {"bd_rate": null, "error": "the quality ranges do not ..."}}}}
"""

import dataclasses
import json
import math
import warnings

from jaxcomp.errors import UserError
from jaxcomp.evaluate import compare, results
from jaxcomp.fileio import atomic_path

EMPTY = "—"
LOW_OVERLAP_MARK = "†"
CMAP = "RdBu_r"  # negative (saves bits) blue, positive (costs bits) red
DPI = 120
MAX_COLOUR = 100.0  # percent: larger |BD-rate| saturate the colour (the annotation stays exact)


@dataclasses.dataclass(frozen=True)
class Cell:
  """One model x metric entry.

  Attributes:
    bd_rate: percent, or None when the curves cannot be compared.
    bd_quality: in the metric's units (positive = better), or None.
    warnings: the comparison's warnings (low overlap, non-monotonic curve).
    error: why there is no value (None when there is one).
  """

  bd_rate: float = None
  bd_quality: float = None
  warnings: tuple = ()
  error: str = None
  side: str = None  # without a value: 'better' / 'worse' when the test's quality range lies
  # entirely above / below the anchor's (curve mode; then it is better / worse at every rate)

  @property
  def low_overlap(self):
    return any("overlap" in w for w in self.warnings)


@dataclasses.dataclass(frozen=True)
class Matrix:
  """BD-rates of `models` (rows) against `anchor` on `keys` (columns).

  Attributes:
    anchor: the anchor curve's name.
    models: [R] test curve names, in the order given.
    keys: [C] results keys.
    cells: {model: {key: Cell}}.
    method, mode, min_overlap: as `compare.compare`.
  """

  anchor: str
  models: tuple
  keys: tuple
  cells: dict
  method: str
  mode: str
  min_overlap: float


def short_name(key):
  """Column label of a results key: 'ms-ssim-rgb' -> 'MS-SSIM', 'psnr-rgb' -> 'PSNR'."""
  return results.metric_name(key).upper().replace("_", "-")


def metric_keys(anchor, spec=None):
  """The columns: `spec` (comma-separated names or keys) resolved in the anchor, or its keys.

  Default: every quality key of the anchor's results (derived keys left out), PSNR and MS-SSIM
  first. UserError for an empty spec or a metric the anchor lacks.
  """
  if spec is None:
    keys = [k for k in anchor["results"] if k not in results.NON_QUALITY_KEYS]
    first = [k for k in ("psnr-rgb", "ms-ssim-rgb") if k in keys]
    keys = first + [k for k in keys if k not in first]
    if not keys:
      raise UserError(f"anchor '{anchor['name']}' has no quality values (only bpp and times)")
    return keys
  names = [n.strip() for n in spec.split(",") if n.strip()]
  if not names:
    raise UserError("--metrics: give at least one metric name")
  keys = [results.resolve_key(anchor, name, f"anchor '{anchor['name']}'") for name in names]
  return list(dict.fromkeys(keys))


def _cell(anchor, test, key, method, mode, min_overlap):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    try:
      result = compare.compare(anchor, test, key, method, mode, None, min_overlap)
    except UserError as e:
      return Cell(error=str(e), side=_side(anchor, test, key) if mode == "curve" else None)
  return Cell(result.bd_rate, result.bd_quality,
              tuple(dict.fromkeys(str(w.message) for w in caught)))


def _side(anchor, test, key):
  """'better' / 'worse' if the test's mean-curve quality range lies entirely above / below the
  anchor's (direction-adjusted), else None."""
  try:
    a = results.curve(anchor["results"], results.resolve_key(anchor, key))[1]
    t = results.curve(test["results"], results.resolve_key(test, key))[1]
  except UserError:
    return None
  if not len(a) or not len(t):
    return None
  sign = 1.0 if results.higher_is_better(key) else -1.0
  a, t = sign * a, sign * t
  if t.min() > a.max():
    return "better"
  if t.max() < a.min():
    return "worse"
  return None


def matrix(anchor, tests, keys, method="pchip", mode="curve",
           min_overlap=compare.bdrate.DEFAULT_MIN_OVERLAP):
  """The BD-rate of every test document against `anchor` on every key.

  Args:
    anchor: results document (`results.load`) of the anchor curve (the MSE model).
    tests: [R] results documents with distinct names.
    keys: [C] results keys present in the anchor (`metric_keys`).
    method: 'cubic', 'pchip' or 'akima'.
    mode: 'curve' or 'per-image' (`compare.MODES`).
    min_overlap: cells whose curves overlap less than this carry a warning.

  Returns:
    `Matrix`. UserError for duplicate test names, a bad method/mode, or when no cell has a value.
  """
  if mode not in compare.MODES:
    raise UserError(f"unknown BD mode {mode!r}; choose from {', '.join(compare.MODES)}")
  if method not in compare.bdrate.METHODS:
    raise UserError(f"unknown BD interpolation method {method!r}; choose from "
                    f"{', '.join(compare.bdrate.METHODS)}")
  names = [t["name"] for t in tests]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise UserError(f"several test files have the curve name {', '.join(duplicates)}; each row "
                    "needs its own name")
  if not tests or not keys:
    raise UserError("give at least one test file and one metric")
  cells = {t["name"]: {k: _cell(anchor, t, k, method, mode, min_overlap) for k in keys}
           for t in tests}
  if all(c.bd_rate is None for row in cells.values() for c in row.values()):
    first = next(iter(next(iter(cells.values())).values()))
    raise UserError(f"no model/metric pair could be compared (first: {first.error})")
  return Matrix(anchor["name"], tuple(names), tuple(keys), cells, method, mode, min_overlap)


def to_json(m):
  """The JSON object of a matrix (see the module docstring)."""

  def cell(c):
    if c.bd_rate is None:
      return {"bd_rate": None, "bd_quality": None, "error": c.error, "side": c.side}
    return {"bd_rate": c.bd_rate, "bd_quality": c.bd_quality, "warnings": list(c.warnings)}

  return {"anchor": m.anchor, "method": m.method, "mode": m.mode, "min_overlap": m.min_overlap,
          "metrics": list(m.keys), "models": list(m.models),
          "cells": {name: {k: cell(c) for k, c in row.items()} for name, row in m.cells.items()}}


def _is_own_metric(model, key):
  """Whether curve `model` is named after `key`'s metric ('ms_ssim' or 'ms-ssim' on 'ms-ssim-rgb')."""
  return model.replace("-", "_") == results.metric_name(key)


def markdown(m):
  """The matrix as a markdown table with a legend and the empty cells' reasons."""
  header = ["model \\ metric"] + [short_name(k) for k in m.keys]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  reasons, marked = [], False
  for model in m.models:
    row = [model]
    for key in m.keys:
      c = m.cells[model][key]
      if c.bd_rate is None:
        row.append(f"{EMPTY} ({c.side})" if c.side else EMPTY)
        reasons.append(f"- {model} on {short_name(key)}: {c.error}")
        continue
      text = f"{c.bd_rate:+.1f} %"
      if c.low_overlap:
        text += f" {LOW_OVERLAP_MARK}"
        marked = True
      row.append(f"**{text}**" if _is_own_metric(model, key) else text)
    lines.append("| " + " | ".join(row) + " |")
  directions = ", ".join(f"{short_name(k)} {'↑' if results.higher_is_better(k) else '↓'}"
                         for k in m.keys)
  scope = "averaged curves" if m.mode == "curve" else "per image, then averaged"
  notes = [
      "",
      f"BD-rate against **{m.anchor}** ({m.method} interpolation, {scope}): the rate change at "
      "equal quality; negative = fewer bits than the anchor. Metrics where lower is better are "
      "negated before fitting, so the sign means the same in every column "
      f"({directions}). Bold: the model evaluated with the metric it was trained on.",
  ]
  if marked:
    notes.append(f"{LOW_OVERLAP_MARK}: the quality ranges overlap by less than "
                 f"{m.min_overlap * 100:.0f} % of their union; the value covers the overlap only.")
  if reasons:
    notes += ["", f"{EMPTY}: no BD-rate; '(worse)' / '(better)': the model's quality range lies "
                  "entirely below / above the anchor's, so it is worse / better at every rate "
                  "the two share:"] + reasons
  return "\n".join(lines + notes) + "\n"


def figure(m, title=None):
  """The heat map (a matplotlib Figure): rows models, columns metrics, cells annotated in %.

  Diverging colour map `CMAP` centred at 0 over [-v, v], v the largest |BD-rate| (at least 1 %,
  at most `MAX_COLOUR`);
  empty cells grey with '—' (and 'worse' / 'better' when one curve's quality range lies entirely
  below / above the other's); low-overlap cells marked '†'; own-metric cells outlined.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import numpy as np  # pylint: disable=g-import-not-at-top
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import patches  # pylint: disable=g-import-not-at-top

  values = np.array([[math.nan if m.cells[r][k].bd_rate is None else m.cells[r][k].bd_rate
                      for k in m.keys] for r in m.models], np.float64)
  finite = values[np.isfinite(values)]
  limit = min(max(float(np.max(np.abs(finite))) if finite.size else 1.0, 1.0), MAX_COLOUR)
  cmap = plt.get_cmap(CMAP).with_extremes(bad="0.85")
  rows, columns = values.shape
  fig, ax = plt.subplots(figsize=(1.1 * columns + 2.4, 0.5 * rows + 1.8))
  image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-limit, vmax=limit,
                    aspect="auto")
  for i, model in enumerate(m.models):
    for j, key in enumerate(m.keys):
      c = m.cells[model][key]
      if c.bd_rate is None:
        text, colour = (f"{EMPTY}\n{c.side}" if c.side else EMPTY), "0.3"
      else:
        text = f"{c.bd_rate:+.1f}%" + (LOW_OVERLAP_MARK if c.low_overlap else "")
        colour = "white" if abs(c.bd_rate) > 0.6 * limit else "black"
      ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
      if _is_own_metric(model, key):
        ax.add_patch(patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black",
                                       linewidth=1.8))
  ax.set_xticks(range(columns), [short_name(k) for k in m.keys], rotation=45, ha="right")
  ax.set_yticks(range(rows), list(m.models))
  ax.set_xlabel("evaluation metric")
  ax.set_ylabel("model (training distortion)")
  bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
  bar.set_label(f"BD-rate vs {m.anchor} [%] (negative: fewer bits)")
  ax.set_title(title or f"BD-rate against {m.anchor} ({m.method}); outlined: own metric",
               fontsize=10)
  fig.tight_layout()
  return fig


def write(m, markdown_path=None, plot_path=None, json_path=None, title=None):
  """Writes whichever outputs are given, each atomically."""
  if markdown_path:
    with atomic_path(markdown_path) as tmp:
      with open(tmp, "w") as f:
        f.write(markdown(m))
  if json_path:
    with atomic_path(json_path) as tmp:
      with open(tmp, "w") as f:
        json.dump(to_json(m), f, indent=1)
        f.write("\n")
  if plot_path:
    from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

    fig = figure(m, title)
    try:
      with atomic_path(plot_path) as tmp:
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    finally:
      plt.close(fig)
