"""Active pair selection: the next pairs by expected information gain (ASAP-style, batch mode).

After Mikhailiuk et al., "Active Sampling for Pairwise Comparisons via Approximate Message Passing
and Information Gain Maximization" (ICPR 2020): the scores follow Thurstone Case V in JOD,
P(i ≻ j | q) = Φ((q_i - q_j) / σ), σ = 1.4826. Their posterior given the votes so far is
approximated by a Gaussian N(μ, Σ) (here: Laplace at the MAP of `scaling.thurstone_posterior`,
prior N(0, prior_sd²) on the centred scores; ASAP uses expectation propagation). The expected
information gain of comparing i with j is the mutual information between the outcome y and the
scores, which depends on the scores only through d = q_i - q_j ~ N(m, v),
m = μ_i - μ_j, v = Σ_ii + Σ_jj - 2Σ_ij:

    EIG(i, j) = H(E[p]) - E[H(p)],   p = Φ(d / σ),   E[p] = Φ(m / sqrt(σ² + v)),

H the binary entropy (nats); E[H(p)] by 24-point Gauss-Hermite quadrature. This is exactly the
expected KL divergence from the current posterior to the updated one, for the Gaussian model.

Batch mode (many subjects at once): the n-1 pairs of the maximum spanning tree of the EIG graph
(ASAP's minimum spanning tree on 1/EIG), so every condition is in the batch and the most informative
pairs are chosen; a server hands them out to concurrent subjects before it recomputes.

Cost for C conditions: one Newton fit on a [C, C] Hessian, one pseudo-inverse, and [C², 24]
entropy terms: 66 ms for C = 100 on one shared core of the 2-core Xeon in `docs/study_load.md`.
"""

import numpy as np
from scipy import special
from scipy.sparse import csgraph

from jaxcomp.study import scaling

PRIOR_SD = 3.0  # JOD; the spread of codec scores in a study is a few JOD.
_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(24)


def _entropy(p):
  """Binary entropy in nats of probabilities p (any shape), 0 at p in {0, 1}."""
  p = np.clip(p, 1e-300, 1.0)
  q = np.clip(1.0 - p, 1e-300, 1.0)
  return -(p * np.log(p) + q * np.log(q))


def information_gain(mean, cov):
  """[C, C] EIG in nats of comparing i with j (symmetric, 0 on the diagonal).

  Args:
    mean: [C] posterior mean of the scores in JOD.
    cov: [C, C] posterior covariance (only differences of scores are used, so a covariance that
      is singular along the all-ones direction is fine).
  """
  mean = np.asarray(mean, np.float64)
  cov = np.asarray(cov, np.float64)
  var = np.diag(cov)
  m = mean[:, None] - mean[None, :]
  v = np.maximum(var[:, None] + var[None, :] - 2.0 * cov, 0.0)
  sigma = scaling.JOD_SIGMA
  marginal = special.ndtr(m / np.sqrt(sigma ** 2 + v))
  d = m[..., None] + np.sqrt(2.0 * v)[..., None] * _NODES  # [C, C, K]
  expected = _entropy(special.ndtr(d / sigma)) @ _WEIGHTS / np.sqrt(np.pi)
  gain = np.maximum(_entropy(marginal) - expected, 0.0)
  np.fill_diagonal(gain, 0.0)
  return gain


def gain_matrix(counts, prior_sd=PRIOR_SD):
  """[C, C] EIG of every pair given the [C, C] win counts so far (D[i, j]: i chosen over j)."""
  mean, cov = scaling.thurstone_posterior(counts, prior_sd)
  return information_gain(mean, cov)


def batch(counts, prior_sd=PRIOR_SD, seed=0):
  """[C-1] pairs (i, j), i < j: the maximum spanning tree of the EIG graph, best pair first.

  Args:
    counts: [C, C] win counts of the group so far (zeros at the start).
    prior_sd: prior SD of the scores in JOD.
    seed: breaks ties (equal gains, e.g. before any vote) by a tiny random perturbation.
  """
  gain = gain_matrix(counts, prior_sd)
  n = len(gain)
  jitter = np.random.default_rng(seed).uniform(1.0, 1.0 + 1e-9, (n, n))
  jitter = np.triu(jitter, 1) + np.triu(jitter, 1).T
  weights = 1.0 / np.maximum(gain * jitter, 1e-300)  # ASAP: minimum spanning tree on 1 / EIG.
  np.fill_diagonal(weights, 0.0)
  tree = csgraph.minimum_spanning_tree(weights).tocoo()
  pairs = [tuple(sorted((int(i), int(j)))) for i, j in zip(tree.row, tree.col)]
  return sorted(pairs, key=lambda p: -gain[p])


def best_pair(counts, exclude=(), prior_sd=PRIOR_SD):
  """The pair (i, j), i < j, of largest EIG not in `exclude`, or None if every pair is excluded."""
  gain = gain_matrix(counts, prior_sd)
  gain = np.triu(gain, 1) + np.tril(np.full_like(gain, -np.inf))
  for i, j in exclude:
    gain[min(i, j), max(i, j)] = -np.inf
  k = int(np.argmax(gain))
  i, j = divmod(k, len(gain))
  return None if not np.isfinite(gain[i, j]) else (i, j)
