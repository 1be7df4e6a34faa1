"""Figures of an analysis (matplotlib, Agg): one per scene (image and bit rate), one per rate."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position


def _safe(name):
  return "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in name)


def scene_figure(scene, result, path):
  """JOD (with bootstrap CIs when present) and normalised winning frequency of one scene."""
  conditions = result["conditions"]
  x = np.arange(len(conditions))
  fig, (left, right) = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(conditions)), 3.6))
  jod = np.array([np.nan if v is None else v for v in result["jod"]])
  if "jod_ci" in result:
    low, high = (np.array([np.nan if v is None else v for v in b]) for b in result["jod_ci"])
    left.errorbar(x, jod, yerr=[jod - low, high - jod], fmt="o", capsize=4)
  else:
    left.plot(x, jod, "o")
  left.set_ylabel(f"JOD (0 = {result['jod_reference']})")
  wf = [0 if v is None else v for v in result["winning_frequency_normalised"]]
  right.bar(x, wf)
  right.set_ylabel("winning frequency (normalised)")
  for ax in (left, right):
    ax.set_xticks(x, conditions, rotation=30, ha="right")
    ax.grid(alpha=0.3)
  fig.suptitle(f"{scene}: {result['observers']} subjects, {result['comparisons']} comparisons")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def rate_figure(rates, path):
  """Mean normalised winning frequency per condition, one panel per bit rate."""
  fig, axes = plt.subplots(1, len(rates), figsize=(4.5 * len(rates), 3.6), squeeze=False)
  for ax, (rate, conditions) in zip(axes[0], rates.items()):
    names = list(conditions)
    values = [conditions[c]["winning_frequency_normalised"] or 0 for c in names]
    ax.bar(np.arange(len(names)), values)
    ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
    ax.set_title(f"rate {rate or '-'}")
    ax.set_ylabel("mean winning frequency")
    ax.grid(alpha=0.3)
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
    rate_figure(report["rates"], paths[-1])
  return paths
