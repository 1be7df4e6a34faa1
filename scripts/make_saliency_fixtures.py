"""Reference values of the saliency metrics from pysaliency, for tests/test_saliency_models.py.

Run in an environment with pysaliency (not jaxcomp's; numpy is all this script needs besides):

    ~/.cache/jaxcomp-refenv/bin/pip install pysaliency==0.2.22
    ~/.cache/jaxcomp-refenv/bin/python scripts/make_saliency_fixtures.py

Writes tests/fixtures/saliency/maps.npz (predictions [K, H, W], targets [K, H, W], fixations
[K, H, W] bool) and tests/fixtures/saliency/expected.json (per-map AUC-Judd, NSS, CC, KLD, SIM
from pysaliency). The maps: smooth mixtures of Gaussians (no ties), the same quantised to 8 levels
(ties, also among fixated pixels), a constant map, a map with negative values, an all-zero map,
and a map equal to the target.

pysaliency calls: AUC-Judd = `SaliencyMapModel.AUC_Judd(stimuli, fixations, jitter=False)` (per
image; also recorded with pysaliency's default jitter=True), NSS = `SaliencyMapModel.NSS(...,
average='image')`, CC = `metrics.CC`, KLD = `metrics.MIT_KLDiv`, SIM = `metrics.SIM`. The model
returns each stimulus as its own saliency map (the stimuli are the predictions).
"""

import json
import os
import sys
import types

import numpy as np

# pysaliency 0.2.22 imports pkg_resources (for its MATLAB models only), which setuptools >= 81
# no longer ships; a stub is enough for the metrics.
if "pkg_resources" not in sys.modules:
  try:
    import pkg_resources  # noqa: F401  pylint: disable=unused-import
  except ImportError:
    stub = types.ModuleType("pkg_resources")
    stub.resource_string = stub.resource_listdir = stub.resource_filename = None
    sys.modules["pkg_resources"] = stub

# numpy 2.4 removed np.trapz, which pysaliency 0.2.22's ROC code calls; np.trapezoid is the same.
if not hasattr(np, "trapz"):
  np.trapz = np.trapezoid

import pysaliency  # pylint: disable=g-import-not-at-top,wrong-import-position
from pysaliency import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests",
                   "fixtures", "saliency")
H, W = 24, 32


def _mixture(rng, count):
  yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
  out = np.zeros((H, W))
  for _ in range(count):
    cy, cx = rng.uniform(0, H), rng.uniform(0, W)
    s = rng.uniform(2, 8)
    out += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
  return out / out.max()


def make_inputs(seed=0):
  rng = np.random.default_rng(seed)
  targets, predictions, fixations = [], [], []
  for k in range(6):
    target = _mixture(rng, 3)
    fix = np.zeros((H, W), bool)
    p = (target / target.sum()).ravel()
    fix.flat[rng.choice(H * W, size=15, replace=False, p=p)] = True
    smooth = 0.6 * _mixture(rng, 2) + 0.4 * target
    pred = {0: smooth,
            1: np.floor(smooth * 8) / 8,  # ties
            2: np.full((H, W), 0.5),  # constant
            3: smooth - 0.3,  # negative values
            4: np.zeros((H, W)),  # all zero
            5: target}[k]
    targets.append(target)
    predictions.append(pred)
    fixations.append(fix)
  return np.stack(predictions), np.stack(targets), np.stack(fixations)


class _Identity(pysaliency.SaliencyMapModel):
  """The stimulus is the saliency map."""

  def _saliency_map(self, stimulus):
    return np.asarray(stimulus, np.float64)


def main():
  predictions, targets, fixations = make_inputs()
  stimuli = pysaliency.Stimuli(list(predictions))
  ys, xs, ns = [], [], []
  for n, fix in enumerate(fixations):
    y, x = np.nonzero(fix)
    ys.append(y)
    xs.append(x)
    ns.append(np.full(len(y), n))
  fix_obj = pysaliency.Fixations.create_without_history(
      np.concatenate(xs).astype(float), np.concatenate(ys).astype(float), np.concatenate(ns))
  model = _Identity(caching=False)
  per_image = {"auc_judd": [], "auc_judd_jitter": [], "nss": [], "cc": [], "kld": [], "sim": []}
  for n in range(len(predictions)):
    sub_stimuli = pysaliency.Stimuli([predictions[n]])
    sub_fix = fix_obj[fix_obj.n == n].copy()
    sub_fix.n[:] = 0
    per_image["auc_judd"].append(float(model.AUC_Judd(sub_stimuli, sub_fix, jitter=False)))
    per_image["auc_judd_jitter"].append(float(model.AUC_Judd(sub_stimuli, sub_fix)))
    per_image["nss"].append(float(model.NSS(sub_stimuli, sub_fix, average="image")))
    per_image["cc"].append(float(metrics.CC(predictions[n], targets[n])))
    per_image["kld"].append(float(metrics.MIT_KLDiv(predictions[n], targets[n])))
    per_image["sim"].append(float(metrics.SIM(predictions[n], targets[n])))
  dataset = {"auc_judd": float(model.AUC_Judd(stimuli, fix_obj, jitter=False)),
             "nss": float(model.NSS(stimuli, fix_obj, average="image"))}
  os.makedirs(OUT, exist_ok=True)
  np.savez_compressed(os.path.join(OUT, "maps.npz"), predictions=predictions, targets=targets,
                      fixations=fixations)
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  record = {"source": f"pysaliency {metadata.version('pysaliency')}",
            "script": "scripts/make_saliency_fixtures.py", "per_image": per_image,
            "dataset": dataset}
  with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump(record, f, indent=1)
  print(json.dumps(record, indent=1))


if __name__ == "__main__":
  main()
