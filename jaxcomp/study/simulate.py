"""Simulated observers: how well does each design recover the true ranking per comparison spent?

Ground truth: n conditions with true scores evenly spread over `spread` JOD (Thurstone) or logits
(Bradley-Terry), in a random order. Each simulated observer judges one batch of distinct pairs
(full: all pairs; random, adjacent and active: n-1 pairs); with probability `random_share` the
observer is
a random clicker (P = 1/2 for every pair), otherwise

    Thurstone: P(i ≻ j) = Φ((q_i - q_j) / (1.4826 · noise))
    Bradley-Terry: P(i ≻ j) = σ((θ_i - θ_j) / noise).

After each observer the group's votes are scaled by Bradley-Terry (α = `alpha`) and the rank
accuracy is Kendall's τ between the fitted and the true scores. The adjacent design ranks by that
same fit for its next round; the active design takes the batch of largest expected information
gain under the group's Thurstone posterior (`active.batch`). The score error is the RMSE between
the centred true scores and the centred fit of the observers' own model (Thurstone in JOD with
`scaling.thurstone`'s default prior, or Bradley-Terry in logits).
"""

import dataclasses

import numpy as np
from scipy import special, stats

from jaxcomp.study import active, designs, scaling

OBSERVER_MODELS = ("thurstone", "bradley-terry")


@dataclasses.dataclass(frozen=True)
class Settings:
  """A simulated experiment.

  Attributes:
    conditions: n.
    observers: observers per run.
    spread: range of the true scores (JOD or logits).
    noise: multiplies the observer model's scale (1: the model's own).
    random_share: probability that an observer clicks at random.
    model: 'thurstone' or 'bradley-terry'.
    runs: independent repetitions averaged.
    alpha: Bradley-Terry regularisation used to scale the votes.
    seed: of everything.
  """

  conditions: int = 8
  observers: int = 40
  spread: float = 4.0
  noise: float = 1.0
  random_share: float = 0.1
  model: str = "thurstone"
  runs: int = 20
  alpha: float = 0.1
  seed: int = 0


def _win_probability(settings, truth, pairs):
  i, j = np.asarray(pairs).T
  diff = (truth[i] - truth[j]) / settings.noise
  if settings.model == "thurstone":
    return stats.norm.cdf(diff / scaling.JOD_SIGMA)
  return special.expit(diff)


def _fit(settings, counts):
  return scaling.bradley_terry(counts, alpha=settings.alpha, tol=1e-4)


def _batch(design, n, scores, counts, rng):
  seed = int(rng.integers(2 ** 31))
  if design == "full":
    return designs.full(n, seed)
  if design == "random":
    return designs.random_pairs(n, n - 1, seed)
  if design == "active":
    return active.batch(counts, seed=seed)
  return designs.adjacent_round(scores, (), seed)


def _score_error(settings, counts, scores, truth):
  """RMSE between centred true scores and the centred fit of the observers' model."""
  if settings.model == "thurstone":
    scores = scaling.thurstone(counts)
  centred = truth - truth.mean()
  return float(np.sqrt(np.mean((scores - scores.mean() - centred) ** 2)))


def run(design, settings, run_index=0):
  """One simulated experiment.

  Returns:
    ([observers] cumulative comparisons, [observers] Kendall τ after each observer, [observers]
    RMSE of the scores after each observer).
  """
  if design not in designs.DESIGNS:
    raise ValueError(f"unknown design {design!r}")
  rng = np.random.default_rng([settings.seed, run_index])
  n = settings.conditions
  truth = rng.permutation(np.linspace(0.0, settings.spread, n))
  counts = np.zeros((n, n))
  scores = np.zeros(n)
  spent, accuracy, error = [], [], []
  for _ in range(settings.observers):
    pairs = _batch(design, n, scores, counts, rng)
    if rng.random() < settings.random_share:
      prob = np.full(len(pairs), 0.5)
    else:
      prob = _win_probability(settings, truth, pairs)
    first_wins = rng.random(len(pairs)) < prob
    for (i, j), won in zip(pairs, first_wins):
      counts[(i, j) if won else (j, i)] += 1
    scores = _fit(settings, counts)
    spent.append((spent[-1] if spent else 0) + len(pairs))
    accuracy.append(stats.kendalltau(scores, truth)[0])
    error.append(_score_error(settings, counts, scores, truth))
  return np.asarray(spent), np.nan_to_num(np.asarray(accuracy)), np.asarray(error)


def accuracy_curve(design, settings, budgets):
  """([B] mean Kendall τ, [B] mean score RMSE) over `settings.runs` at each comparison budget.

  At a budget the values are those after the last observer whose batch fits within it (τ 0 and
  RMSE NaN if none).
  """
  taus, errors = [], []
  for r in range(settings.runs):
    spent, accuracy, error = run(design, settings, r)
    done = np.searchsorted(spent, budgets, side="right")
    taus.append(np.where(done > 0, accuracy[np.maximum(done - 1, 0)], 0.0))
    errors.append(np.where(done > 0, error[np.maximum(done - 1, 0)], np.nan))
  return np.mean(taus, axis=0), np.mean(errors, axis=0)


def comparisons_needed(budgets, curve, target):
  """Smallest budget whose mean accuracy reaches `target` (None if none does)."""
  reached = np.flatnonzero(np.asarray(curve) >= target)
  return int(budgets[reached[0]]) if len(reached) else None


def compare(settings, target=0.9, design_names=designs.DESIGNS):
  """{'budgets': [B], design: {'accuracy': [B], 'rmse': [B], 'comparisons_needed': int or None}}.

  Budgets are multiples of n-1 up to what the random and adjacent designs spend in total.
  """
  n = settings.conditions
  budgets = np.arange(1, settings.observers + 1) * (n - 1)
  report = {"settings": dataclasses.asdict(settings), "target_tau": target,
            "budgets": budgets.tolist()}
  for design in design_names:
    curve, error = accuracy_curve(design, settings, budgets)
    report[design] = {"accuracy": [round(float(a), 4) for a in curve],
                      "rmse": [None if np.isnan(e) else round(float(e), 4) for e in error],
                      "comparisons_needed": comparisons_needed(budgets, curve, target)}
  return report


def plot(report, path):
  """Kendall τ and score RMSE against comparisons, one line per design, into a PNG/PDF file."""
  # matplotlib (about half a second to import) only when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  budgets = report["budgets"]
  settings = report["settings"]
  unit = "JOD" if settings["model"] == "thurstone" else "logits"
  figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
  styles = {"full": ("tab:gray", "s"), "random": ("tab:blue", "o"),
            "adjacent": ("tab:orange", "^"), "active": ("tab:green", "D")}
  for design in designs.DESIGNS:
    if design not in report:
      continue
    color, marker = styles[design]
    step = max(1, len(budgets) // 10)
    left.plot(budgets, report[design]["accuracy"], color=color, marker=marker, markevery=step,
              label=design)
    rmse = [np.nan if e is None else e for e in report[design]["rmse"]]
    right.plot(budgets, rmse, color=color, marker=marker, markevery=step, label=design)
  left.axhline(report["target_tau"], color="black", linewidth=0.8, linestyle=":")
  left.set(xlabel="comparisons", ylabel="Kendall τ (fit vs truth)", ylim=(0, 1))
  right.set(xlabel="comparisons", ylabel=f"RMSE of scores ({unit})", yscale="log")
  left.legend(title="design")
  figure.suptitle(f"{settings['conditions']} conditions, {settings['model']} observers "
                  f"(noise {settings['noise']:g}, random share {settings['random_share']:g}), "
                  f"mean of {settings['runs']} runs")
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
