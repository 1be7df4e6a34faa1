"""Scales from a count matrix D (D[i, j] = times condition i was chosen over condition j).

- Winning frequency (PCS 2022): w_i = wins_i / comparisons_i, and normalised per image,
  w_i / Σ_j w_j (so a scene's frequencies sum to 1). It ignores who the opponents were: with
  adjacent sampling it favours conditions that met weak neighbours, so report a model scale too.
- Bradley-Terry: P(i ≻ j) = σ(θ_i - θ_j), fitted by Hunter's (2004) MM iteration with choix's
  regulariser α (π_i ← (W_i + α) / (Σ_j n_ij / (π_i + π_j) + α)); θ has mean 0. Equal to
  `choix.mm_pairwise(n, data, alpha=α)` on the same data.
- Thurstone Case V in JOD (pwcmp): P(i ≻ j) = Φ((q_i - q_j) / 1.4826), so a difference of 1 JOD
  is 75 % preference. Maximum likelihood of the binomial counts with a weak Gaussian prior on q
  (mean 0, `prior_sd` JOD) that keeps unanimous pairs and disconnected designs finite, by
  Newton's method; reported with the reference condition at 0. `thurstone_posterior`: its
  Laplace approximation (mean and covariance), which the active design (`active`) needs.
- Bootstrap over subjects: resample subjects with replacement, refit, percentile intervals.
"""

import warnings

import numpy as np
from scipy import optimize, stats

JOD_SIGMA = 1.4826  # 1 JOD = Φ(1 / 1.4826) = 75 % preference.


def winning_frequencies(counts):
  """([C] wins / comparisons (NaN if never compared), [C] the same normalised to sum 1)."""
  counts = np.asarray(counts, np.float64)
  games = counts.sum(1) + counts.sum(0)
  with np.errstate(invalid="ignore", divide="ignore"):
    freq = np.where(games > 0, counts.sum(1) / games, np.nan)
  total = np.nansum(freq)
  normalised = freq / total if total > 0 else np.full_like(freq, np.nan)
  return freq, normalised


def _mm_step(params, wins, games, alpha):
  """One MM update of θ (choix's `_mm` with `exp_transform` / `log_transform`)."""
  weights = np.exp(params - params.mean())
  weights *= len(weights) / weights.sum()
  denoms = (games / (weights[:, None] + weights[None, :])).sum(1)
  with np.errstate(divide="ignore"):
    new = np.log((wins + alpha) / (denoms + alpha))
  return new - new.mean()


def bradley_terry(counts, alpha=0.0, max_iter=10000, tol=1e-8):
  """Bradley-Terry log-strengths θ ([C], mean 0): the fixed point of choix's MM iteration.

  MM converges slowly when strengths are far apart (near-unanimous pairs, small alpha); after
  100 MM steps the same fixed-point equation θ = MM(θ) is handed to a root finder, and MM goes
  on only if that fails. Either way the result is `choix.mm_pairwise(n, data, alpha=α)`.

  Args:
    counts: [C, C] D.
    alpha: regularisation (choix's `alpha`); needed when a condition never wins or loses.
    max_iter, tol: stop when the L1 change of θ is below tol (choix's test).

  Returns:
    [C] float64 θ, mean 0.
  """
  counts = np.asarray(counts, np.float64)
  wins = counts.sum(1)
  games = counts + counts.T
  params = np.zeros(len(counts))
  for step in range(max_iter):
    new = _mm_step(params, wins, games, alpha)
    if not np.all(np.isfinite(new)) or np.sum(np.abs(new - params)) < tol:
      return new
    params = new
    if step == 100:
      root = optimize.root(lambda p: _mm_step(p, wins, games, alpha) - p, params, tol=1e-13)
      fixed = root.x - root.x.mean()
      if root.success and np.sum(np.abs(_mm_step(fixed, wins, games, alpha) - fixed)) < tol:
        return fixed
  return params


def _thurstone_terms(q, counts, prior_sd):
  """(value, [C] gradient, [C, C] Hessian) of the negative log posterior at scores q."""
  n = len(q)
  z = (q[:, None] - q[None, :]) / JOD_SIGMA
  logcdf = stats.norm.logcdf(z)
  ratio = np.exp(stats.norm.logpdf(z) - logcdf)  # φ(z) / Φ(z)
  centred = q - q.mean()
  value = -np.sum(counts * logcdf) + 0.5 * np.sum(centred ** 2) / prior_sd ** 2
  slope = counts * ratio / JOD_SIGMA
  grad = -(slope.sum(1) - slope.sum(0)) + centred / prior_sd ** 2
  # d²/dz² of -log Φ(z) is r (z + r) with r = φ/Φ; each ordered pair couples q_i and q_j.
  curvature = counts * ratio * (z + ratio) / JOD_SIGMA ** 2
  pair = curvature + curvature.T
  hessian = np.diag(pair.sum(1)) - pair + (np.eye(n) - 1.0 / n) / prior_sd ** 2
  return value, grad, hessian


def thurstone(counts, reference=0, prior_sd=10.0, max_iter=100, tol=1e-10):
  """Thurstone Case V scores in JOD ([C], q[reference] = 0), by damped Newton steps.

  The negative log posterior is convex (log Φ is concave), so Newton with backtracking converges
  to the unique optimum.

  Args:
    counts: [C, C] D.
    reference: index of the condition fixed at 0 JOD (pwcmp fixes its first condition).
    prior_sd: standard deviation in JOD of the Gaussian prior on the centred scores.
    max_iter, tol: stop when the Newton decrement is below tol.
  """
  counts = np.asarray(counts, np.float64)
  n = len(counts)
  q = np.zeros(n)
  free = np.arange(n) != reference
  for _ in range(max_iter):
    value, grad, hessian = _thurstone_terms(q, counts, prior_sd)
    step = np.zeros(n)
    step[free] = np.linalg.solve(hessian[np.ix_(free, free)], -grad[free])
    decrement = -grad @ step
    if decrement < tol:
      break
    t = 1.0
    while _thurstone_terms(q + t * step, counts, prior_sd)[0] > value - 0.25 * t * decrement:
      t *= 0.5
      if t < 1e-10:
        return q
    q = q + t * step
  return q


def thurstone_posterior(counts, prior_sd=10.0):
  """Laplace approximation N(μ, Σ) of the Thurstone posterior (`thurstone`'s model and prior).

  Returns:
    ([C] μ, the MAP scores centred to mean 0, [C, C] Σ, the pseudo-inverse of the negative log
    posterior's Hessian at the MAP; singular along the all-ones direction, which no score
    difference sees).
  """
  counts = np.asarray(counts, np.float64)
  q = thurstone(counts, reference=0, prior_sd=prior_sd)
  q = q - q.mean()
  return q, np.linalg.pinv(_thurstone_terms(q, counts, prior_sd)[2], hermitian=True)


def bootstrap(per_subject_counts, fit, samples=500, seed=0, level=0.95):
  """Percentile confidence intervals of `fit` over subjects resampled with replacement.

  Args:
    per_subject_counts: [S, C, C] one count matrix per subject.
    fit: [C, C] counts -> [C] scores.
    samples: bootstrap replicates.
    seed: of the resampling.
    level: coverage of the interval.

  Returns:
    ([C] lower, [C] upper) bounds. A replicate in which a condition was never compared leaves
    that condition out of its interval (its score there would be the prior's alone).
  """
  per_subject_counts = np.asarray(per_subject_counts, np.float64)
  rng = np.random.default_rng(seed)
  subjects = len(per_subject_counts)
  draws = []
  for _ in range(samples):
    counts = per_subject_counts[rng.integers(0, subjects, subjects)].sum(0)
    unseen = (counts.sum(0) + counts.sum(1)) == 0
    draws.append(np.where(unseen, np.nan, fit(counts)))
  tail = 100 * (1 - level) / 2
  with warnings.catch_warnings():  # A condition no resample compared has no interval (NaN).
    warnings.simplefilter("ignore", RuntimeWarning)
    return (np.nanpercentile(draws, tail, axis=0), np.nanpercentile(draws, 100 - tail, axis=0))


def connected(counts):
  """Whether the comparison graph of D (an edge where a pair was compared) is connected."""
  games = (np.asarray(counts) + np.asarray(counts).T) > 0
  seen, frontier = {0}, [0]
  while frontier:
    i = frontier.pop()
    for j in np.flatnonzero(games[i]):
      if j not in seen:
        seen.add(int(j))
        frontier.append(int(j))
  return len(seen) == len(counts)
