"""Saliency metrics of the MIT/Tuebingen saliency benchmark, as pysaliency 0.2.22 defines them.

Per image, for a predicted map s [H, W] (any non-negative scale), a ground-truth saliency map g
[H, W] and a binary fixation map f [H, W] (fixated pixels = 1):

  AUC-Judd  ROC area with the fixated values of s as thresholds (high to low), hit rate =
            share of fixated pixels with s >= t, false-positive rate = share of non-fixated
            pixels with s >= t, the curve closed by (0, 0) and (1, 1), trapezoid rule
            (pysaliency `AUC_Judd`: nonfixations='unfixated', thresholds='fixations').
  NSS       mean over fixated pixels of (s - mean(s)) / std(s) (population std; not divided
            when std is 0) (pysaliency `NSS`).
  CC        Pearson correlation of s and g; 0 when s is constant (pysaliency `CC`; also 0 when g
            is constant, where pysaliency gives NaN).
  KLD       KL(g || s) of the maps as densities p = s / sum(s), q = g / sum(g) (a map with a
            negative minimum is shifted to 0 first; an all-zero map counts as uniform):
            sum q log(eps + q / (p + eps)), eps = 2.2204e-16 (pysaliency `MIT_KLDiv`).
  SIM       sum min(p, q) of the same densities (pysaliency `SIM`).

Dataset scores are means over images (the benchmark's per-image averaging; pysaliency's
`AUC_Judd` averages over images too, its `NSS` defaults to a mean over fixations). Higher is
better except for KLD.

Differences from pysaliency: `AUC_Judd` there adds N(0, 1e-7) jitter (seed 42) to break ties;
here ties are kept (no jitter, deterministic) and counted with `>=` exactly as pysaliency's
`general_roc(..., judd=1)` does without jitter. Fixations come as binary maps, so a pixel fixated
several times counts once (as in the MIT benchmark's fixation maps).

Verified against pysaliency itself: scripts/make_saliency_fixtures.py computes all five on small
maps with pysaliency and tests/test_saliency_models.py compares (fixture in
tests/fixtures/saliency/). Pure numpy, float64.
"""

import jax.numpy as jnp
import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.saliency import data

KLD_EPS = 2.2204e-16
METRICS = ("auc_judd", "cc", "nss", "kld", "sim")
LABELS = {"auc_judd": "AUC-Judd", "cc": "CC", "nss": "NSS", "kld": "KLD", "sim": "SIM"}
HIGHER_IS_BETTER = {"auc_judd": True, "cc": True, "nss": True, "kld": False, "sim": True}
FIXATION_METRICS = ("auc_judd", "nss")


def _as_map(x):
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"expected a [H, W] map, got shape {x.shape}")
  return x


def _check_same(a, b):
  if a.shape != b.shape:
    raise ValueError(f"map shapes differ: {a.shape} and {b.shape}")


def _fixated(fixations, shape):
  f = np.asarray(fixations) > 0.5
  if f.shape != shape:
    raise ValueError(f"fixation map shape {f.shape} differs from the saliency map's {shape}")
  if not f.any():
    raise ValueError("the fixation map has no fixated pixel")
  return f


def auc_judd(saliency, fixations):
  """AUC-Judd of one map: saliency [H, W], fixations [H, W] binary (>0.5 = fixated) -> float."""
  s = _as_map(saliency)
  f = _fixated(fixations, s.shape)
  positives = np.sort(s[f])[::-1]
  negatives = np.sort(s[~f])
  if negatives.size == 0:
    raise ValueError("AUC-Judd needs at least one non-fixated pixel")
  # Hit rate at threshold positives[i] (with ties counted by >=): #positives >= t.
  hits = ((positives.size - np.searchsorted(positives[::-1], positives, side="left"))
          / positives.size)
  false_pos = (negatives.size - np.searchsorted(negatives, positives, side="left")) / negatives.size
  hit_rate = np.concatenate([[0.0], hits, [1.0]])
  fp_rate = np.concatenate([[0.0], false_pos, [1.0]])
  return float(np.sum(np.diff(fp_rate) * (hit_rate[1:] + hit_rate[:-1]) / 2))


def nss(saliency, fixations):
  """NSS of one map: mean normalised saliency at the fixated pixels -> float."""
  s = _as_map(saliency)
  f = _fixated(fixations, s.shape)
  values = s[f] - s.mean()
  std = s.std()
  if std:
    values = values / std
  return float(values.mean())


def cc(saliency, target):
  """Pearson correlation coefficient of two maps [H, W] -> float (0 if either is constant)."""
  a, b = _as_map(saliency), _as_map(target)
  _check_same(a, b)
  a, b = a - a.mean(), b - b.mean()
  denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
  return float(np.sum(a * b) / denominator) if denominator else 0.0


def density(x):
  """A map [H, W] as a density summing to 1 (shifted to 0 if negative; all-zero -> uniform)."""
  x = _as_map(x)
  if x.min() < 0:
    x = x - x.min()
  total = x.sum()
  return x / total if total else np.full(x.shape, 1.0 / x.size)


def kld(saliency, target):
  """MIT-benchmark KL divergence KL(target || saliency) of two maps as densities -> float."""
  a, b = _as_map(saliency), _as_map(target)
  _check_same(a, b)
  p, q = density(a), density(b)
  return float(np.sum(q * np.log(KLD_EPS + q / (p + KLD_EPS))))


def sim(saliency, target):
  """Similarity (histogram intersection) of two maps as densities -> float in [0, 1]."""
  a, b = _as_map(saliency), _as_map(target)
  _check_same(a, b)
  return float(np.sum(np.minimum(density(a), density(b))))


def image_metrics(saliency, target, fixations=None):
  """{metric: value} for one prediction; AUC-Judd and NSS only when `fixations` is given."""
  out = {"cc": cc(saliency, target), "kld": kld(saliency, target), "sim": sim(saliency, target)}
  if fixations is not None:
    out["auc_judd"] = auc_judd(saliency, fixations)
    out["nss"] = nss(saliency, fixations)
  return {k: out[k] for k in METRICS if k in out}


class Accumulator:
  """Per-image metrics -> dataset means (None for a metric no image had)."""

  def __init__(self):
    self.values = {k: [] for k in METRICS}
    self.count = 0

  def add(self, saliency, target, fixations=None):
    for name, value in image_metrics(saliency, target, fixations).items():
      self.values[name].append(value)
    self.count += 1

  def means(self):
    return {k: (float(np.mean(v)) if v else None) for k, v in self.values.items()}


def evaluate_models(models, samples, log=None):
  """Dataset means {model name: {metric: value or None}} of SaliencyModels on data.Samples.

  Each image is predicted at its own size and compared with its own map (and fixations).
  """

  accumulators = {m.name: Accumulator() for m in models}
  for i, sample in enumerate(samples):
    image, target, fixations = data.load_sample(sample)
    x = jnp.asarray(image[None], jnp.float32) / 255.0
    for model in models:
      pred = np.asarray(model(x))[0]
      if pred.shape != target.shape or not np.all(np.isfinite(pred)):
        raise ValueError(f"{model.name}: bad prediction for {sample.image} "
                         f"(shape {pred.shape}, finite {bool(np.all(np.isfinite(pred)))})")
      try:
        accumulators[model.name].add(pred, target, fixations)
      except ValueError as e:  # data that the metrics cannot score, e.g. every pixel fixated
        raise UserError(f"{sample.stem}: {e}") from e
    if log and (i + 1) % 100 == 0:
      log(f"evaluated {i + 1}/{len(samples)} images")
  return {name: acc.means() for name, acc in accumulators.items()}


def format_table(results, n, fixations):
  """Lines of a table: one row per model, columns AUC-Judd CC NSS KLD SIM ('n/a' if absent)."""
  width = max([len(name) for name in results] + [5])
  head = f"{'model':{width}s}  " + "  ".join(f"{LABELS[k]:>8s}" for k in METRICS)
  lines = [head]
  for name, means in results.items():
    cells = [f"{means[k]:8.4f}" if means[k] is not None else f"{'n/a':>8s}" for k in METRICS]
    lines.append(f"{name:{width}s}  " + "  ".join(cells))
  note = ("" if fixations else "; AUC-Judd and NSS need --fixations")
  lines.append(f"({n} images; KLD lower is better, the others higher{note})")
  return lines
