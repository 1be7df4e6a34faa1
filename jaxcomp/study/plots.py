"""Figures of an analysis (matplotlib, Agg): one per scene (image and bit rate), and one of all
rates (low to high), every score with its 95 % bootstrap interval and every condition with its
achieved bpp when the study folder was given."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def _safe(name):
  return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in name)


WF_LABEL = "normalised winning frequency\n(sums to 1 per image)"
CAPSIZE = 4


def _array(values):
  return np.array([np.nan if v is None else v for v in values], np.float64)


def _ticks(names, bpps):
  """Condition names, each with its achieved bpp below it when known."""
  return [name if bpp is None else f"{name}\n{bpp:.3f} bpp" for name, bpp in zip(names, bpps)]


def _errorbars(ax, x, values, interval, **style):
  """Points with asymmetric error bars (interval: [low], [high] or None)."""
  if interval is None:
    ax.plot(x, values, "o", **style)
    return
  low, high = _array(interval[0]), _array(interval[1])
  ax.errorbar(x, values, yerr=[np.clip(values - low, 0, None), np.clip(high - values, 0, None)],
              fmt="o", capsize=CAPSIZE, **style)


def scene_figure(scene, result, path):
  """JOD (with bootstrap CIs when present) and normalised winning frequency of one scene."""
  conditions = result["conditions"]
  x = np.arange(len(conditions))
  fig, (left, right) = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(conditions)), 3.8))
  jod = _array(result["jod"])
  _errorbars(left, x, jod, result.get("jod_ci"))
  left.axhline(0.0, color="0.5", linewidth=0.8)
  left.set_ylabel(f"JOD (0 = {result['jod_reference']})")
  right.bar(x, np.nan_to_num(_array(result["winning_frequency_normalised"])))
  right.axhline(1.0 / len(conditions), color="0.4", linestyle="--", linewidth=0.8,
                label="chance (1 / conditions)")
  right.legend(fontsize=7)
  right.set_ylabel(WF_LABEL)
  ticks = _ticks(conditions, result.get("bpp") or [None] * len(conditions))
  for ax in (left, right):
    ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
    ax.grid(alpha=0.3)
  fig.suptitle(f"{scene}: {result['observers']} subjects, {result['comparisons']} comparisons")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def rate_figure(rates, path, reference=None):
  """Per bit rate (columns, low to high): JOD and normalised winning frequency, means over
  images with their 95 % intervals, the achieved bpp under each condition.

  Args:
    rates: an analysis report's 'rates' (`summary.per_rate`), already ordered.
    path: output PNG.
    reference: the condition at 0 JOD, for the axis label.
  """
  fig, axes = plt.subplots(2, len(rates), figsize=(max(4.5, 0.9 * max(
      len(e["conditions"]) for e in rates.values())) * len(rates), 7.0), squeeze=False,
                           sharey="row")
  for column, (rate, entry) in enumerate(rates.items()):
    names = list(entry["conditions"])
    rows = [entry["conditions"][c] for c in names]
    x = np.arange(len(names))
    top, bottom = axes[0, column], axes[1, column]
    target = f", target {entry['target_bpp']:g} bpp" if entry.get("target_bpp") else ""
    top.set_title(f"rate {rate or '-'}{target}\n{entry['images']} images, "
                  f"{entry['subjects']} subjects", fontsize=10)
    jod = _array([r["jod"] for r in rows])
    interval = ([[r.get("jod_ci", [None, None])[0] for r in rows],
                 [r.get("jod_ci", [None, None])[1] for r in rows]]
                if any("jod_ci" in r for r in rows) else None)
    _errorbars(top, x, jod, interval)
    top.axhline(0.0, color="0.5", linewidth=0.8)
    wf = _array([r["winning_frequency_normalised"] for r in rows])
    key = "winning_frequency_normalised_ci"
    error = None
    if any(key in r for r in rows):
      low = _array([r.get(key, [None, None])[0] for r in rows])
      high = _array([r.get(key, [None, None])[1] for r in rows])
      error = [np.clip(wf - low, 0, None), np.clip(high - wf, 0, None)]
    bottom.bar(x, np.nan_to_num(wf), yerr=error, capsize=CAPSIZE, color="#4c72b0")
    bottom.axhline(1.0 / len(names), color="0.4", linestyle="--", linewidth=0.8,
                   label="chance (1 / conditions)")
    bottom.legend(fontsize=7)
    ticks = _ticks(names, [r.get("bpp") for r in rows])
    for ax in (top, bottom):
      ax.set_xticks(x, ticks, rotation=35, ha="right", fontsize=8)
      ax.grid(alpha=0.3)
    if column == 0:
      top.set_ylabel(f"JOD (0 = {reference or names[0]}), 95 % CI")
      bottom.set_ylabel(WF_LABEL + ", 95 % CI")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_all(report, folder):
  """Writes scene_<scene>.png for every scene and rates.png into `folder`; returns the paths."""
  os.makedirs(folder, exist_ok=True)
  paths = []
  for scene, result in report["scenes"].items():
    paths.append(os.path.join(folder, f"scene_{_safe(scene)}.png"))
    scene_figure(scene, result, paths[-1])
  if report["rates"]:
    paths.append(os.path.join(folder, "rates.png"))
    rate_figure(report["rates"], paths[-1], (report.get("reference") or {}).get("condition"))
  return paths
