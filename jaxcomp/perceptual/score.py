"""2AFC scores of registered metrics on a split (see twoafc.py for the score).

A metric is applied as `jaxcomp metric` does, metric(p, ref) on float images in [0, 1]. A
distance is used as is; a similarity s is negated (the same ranking as 1 - s, without rounding
ties). Batches have a fixed size (the last one padded) so that jitted metrics compile once.
"""

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.metrics import registry
from jaxcomp.perceptual import twoafc

BATCH = 16


def distances(metric, ref, p, batch=BATCH):
  """[N] float64 distances of patches p to ref, [N, H, W, 3] uint8 each, under `metric`."""
  n = len(ref)
  batch = min(batch, n)
  out = []
  for start in range(0, n, batch):
    index = np.minimum(np.arange(start, start + batch), n - 1)
    x = p[index].astype(np.float32) / 255.0
    y = ref[index].astype(np.float32) / 255.0
    try:
      value = np.asarray(metric(x, y), np.float64)
    except ValueError as e:
      raise UserError(f"{metric.name}: {e}") from e
    out.append(value[:min(batch, n - start)])
  d = np.concatenate(out)
  return -d if metric.kind == "similarity" else d


def score_metrics(names, split, batch=BATCH):
  """{name: 2AFC score} of each registered metric name on `split` (a twoafc.Split)."""

  metrics = [registry.get(n) for n in names]  # unknown names / missing weights fail first
  scores = {}
  for name, metric in zip(names, metrics):
    d0 = distances(metric, split.ref, split.p0, batch)
    d1 = distances(metric, split.ref, split.p1, batch)
    scores[name] = twoafc.score_2afc(d0, d1, split.judge)
  return scores
