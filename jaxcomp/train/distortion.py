"""A config's distortion: a weighted sum of metric losses, each optionally saliency-weighted.

    config.distortion = "mse"                                   # one term (the default)
    config.distortion = "ms_ssim + 0.1*lpips + 2*l1@saliency"   # three terms

Grammar: terms joined by '+'; a term is `[weight*]name[@saliency]`. `name` is `mse` (255^2 MSE,
the scale of CompressAI's lambdas) or any loss of the metric registry (`jaxcomp.metrics.registry`:
ssim and ms_ssim as 1 - similarity, l1, lpips, dpl:<path>, ...). `@saliency` averages the term's
spatial map under per-pixel weights

    w = (1 + alpha S) / mean over the image of (1 + alpha S)

from the run's saliency map S in [0, 1] (`config.saliency.model`, default SDSP), so that salient
pixels count up to (1 + alpha) times more than the least salient ones while the mean weight over
the image stays 1 (the loss keeps its scale, and lambda its meaning). Training crops are normalised
by their whole image's mean (`saliency_mean`), not their own, and a weighted term of a crop is its
weighted average times the crop's mean weight: a crop of the salient region counts more than a crop
of the background, as the same pixels would inside the whole image (for MSE and L1 this is exactly
the crop's share of the whole image's weighted loss). Only losses with a spatial map can be weighted
(`Metric.weighted_loss_fn`: mse, l1, ssim, ms_ssim, lpips, dpl:<path>); any other gets a clear
error. The weights are a saliency weighting of the reconstruction error in the spirit of Patel et
al. (WACV 2021), whose exact equation is not public; alpha is a config choice
(`config.saliency.alpha`).

The loss is D = sum_i weight_i d_i(x, x_hat [; w]); L = bpp + lambda D as before.
"""

import dataclasses
import functools
import re
from typing import Any, Callable, Tuple

import jax.numpy as jnp

from jaxcomp.errors import UserError
from jaxcomp.metrics import registry

SALIENCY_SUFFIX = "@saliency"
_NUMBER = re.compile(r"^[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?$")


@dataclasses.dataclass(frozen=True)
class Term:
  """One term of a distortion: weight * loss(name), saliency-weighted or not."""

  weight: float
  name: str
  salient: bool = False

  def __str__(self):
    scale = "" if self.weight == 1.0 else f"{self.weight:g}*"
    return f"{scale}{self.name}{SALIENCY_SUFFIX if self.salient else ''}"


def parse(spec):
  """'ms_ssim + 0.1*lpips + 2*l1@saliency' -> (Term, ...); UserError for malformed text."""
  if not isinstance(spec, str) or not spec.strip():
    raise UserError("distortion: give at least one term, e.g. 'mse' or 'ms_ssim + 0.1*lpips'")
  terms = []
  for text in spec.split("+"):
    text = text.strip()
    if not text:
      raise UserError(f"distortion {spec!r}: empty term (a '+' with nothing beside it)")
    weight = 1.0
    head, star, rest = text.partition("*")
    if star:
      if not _NUMBER.match(head.strip()):
        raise UserError(f"distortion {spec!r}: {head.strip()!r} is not a weight "
                        "(use e.g. 0.1*lpips)")
      weight, text = float(head), rest.strip()
    salient = text.endswith(SALIENCY_SUFFIX)
    name = text[:-len(SALIENCY_SUFFIX)].strip() if salient else text
    if not name or "@" in name or "*" in name:
      raise UserError(f"distortion {spec!r}: cannot read the term {text!r} "
                      f"(write [weight*]name[{SALIENCY_SUFFIX}])")
    if not weight > 0:
      raise UserError(f"distortion {spec!r}: term weights must be positive, got {weight:g}")
    terms.append(Term(weight, name, salient))
  return tuple(terms)


def saliency_weights(saliency, alpha, saliency_mean=None):
  """S [B, H, W] in [0, 1] -> w = (1 + alpha S) / mean(1 + alpha S) per image, [B, H, W].

  saliency_mean: optional [B] mean of S over the whole image each map was cropped from; then the
    normaliser is that image's, 1 + alpha mean, so that a crop of a salient region weighs more
    than a crop of the background (normalising each crop by itself would make every crop's mean
    weight 1 and leave only the emphasis within a crop).
  """
  w = 1.0 + alpha * saliency
  if saliency_mean is not None:
    return w / (1.0 + alpha * saliency_mean)[:, None, None]
  return w / jnp.mean(w, axis=(1, 2), keepdims=True)


def _mse255(params, x, y):
  del params
  return 255.0**2 * jnp.mean((x - y) ** 2, axis=(1, 2, 3))


def _weighted_mse255(params, x, y, w):
  del params
  return 255.0**2 * jnp.sum(w * jnp.mean((x - y) ** 2, axis=-1), axis=(1, 2)) / jnp.sum(
      w, axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class Distortion:
  """`(params, x, x_hat, saliency=None) -> [B]`: the weighted sum of a config's terms.

  Hashable (a static argument of the jitted/pmapped training step); its metric weights travel
  separately as `params` (a tuple, one entry per term), so jit does not embed them.

  Attributes:
    terms: the parsed terms.
    fns: per term, (params, x, y) -> [B], or (params, x, y, w) -> [B] for a salient term.
    alpha: the saliency weighting's strength.
  """

  terms: Tuple[Term, ...]
  fns: Tuple[Callable[..., Any], ...]
  alpha: float = 0.0

  @property
  def needs_saliency(self):
    return any(t.salient for t in self.terms)

  def __str__(self):
    return " + ".join(str(t) for t in self.terms)

  def __call__(self, params, x, x_hat, saliency=None, saliency_mean=None):
    """[B, H, W, 3] images x, x_hat; saliency [B, H, W] in [0, 1] (needed by salient terms);
    saliency_mean [B] for crops: the mean saliency of their whole images (`saliency_weights`)."""
    w = None
    if self.needs_saliency:
      if saliency is None:
        raise ValueError(f"distortion '{self}' has saliency-weighted terms: pass saliency=")
      w = saliency_weights(saliency, self.alpha, saliency_mean)
      # A weighted loss averages its map under w (sum w m / sum w); times mean(w), a crop's
      # importance relative to its whole image (1 for whole images), it is mean(w m) for MSE/L1.
      importance = jnp.mean(w, axis=(1, 2))
    total = 0.0
    for term, fn, p in zip(self.terms, self.fns, params):
      value = fn(p, x, x_hat, w) * importance if term.salient else fn(p, x, x_hat)
      total = total + term.weight * value
    return total


@functools.lru_cache(maxsize=16)
def create(spec, alpha=0.0):
  """(Distortion, params tuple) for a config's distortion text (cached: weights load once).

  Raises UserError for unknown metrics, metrics without a loss, or `@saliency` on a loss that
  has no spatial map.
  """

  fns, params = [], []
  terms = parse(spec)
  for term in terms:
    if term.name == "mse":
      fns.append(_weighted_mse255 if term.salient else _mse255)
      params.append(None)
      continue
    metric = registry.loss(term.name)
    if term.salient and metric.weighted_loss_fn is None:
      spatial = ", ".join(n for n in ("mse", "l1", "ssim", "ms_ssim", "lpips", "dpl:<path>"))
      raise UserError(f"distortion term '{term}': '{term.name}' has no spatial map to weight by "
                      f"saliency (saliency-weighted losses: {spatial})")
    fns.append(metric.weighted_loss_fn if term.salient else metric.loss_fn)
    params.append(metric.params)
  if any(t.salient for t in terms) and not alpha >= 0:
    raise UserError(f"saliency.alpha must be >= 0, got {alpha}")
  return Distortion(terms, tuple(fns), float(alpha)), tuple(params)
