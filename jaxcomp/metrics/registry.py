"""Registry name -> `Metric`: the value a metric reports and the distortion used in training.

A metric module adds itself with a decorated factory; nothing here needs editing:

    @registry.register("ssim")
    def _ssim_metric(arg=None):
      return registry.Metric(name="ssim", kind="similarity",
                             compute=lambda params, x, y: ssim(x, y),
                             loss_fn=lambda params, x, y: 1.0 - ssim(x, y))

A name with a colon, "family:arg" (e.g. "dpl:/path/to/heads"), goes to the factory registered
as `register("family", prefix=True)` with `arg` = the part after the colon (`jaxcomp.registry`'s
spec syntax). The registry is a `jaxcomp.registry.Registry`; `get` imports the modules listed in
`MODULES` once: a new metric module is added to that list.

`compute(params, x, y)` and `loss_fn(params, x, y)` are pure functions of NHWC float images in
[0, 1] returning [B]; `params` is a pytree of weights (None for classical metrics), passed as
an argument rather than closed over so that `jax.jit` does not embed it as a constant.

A loss built from a spatial map (per-pixel errors, the SSIM maps, LPIPS's per-location
distances) also has `weighted_loss_fn(params, x, y, w)`: the same loss with the map averaged under
per-pixel weights w [B, H, W] (normalised to mean 1 per image, e.g. from a saliency map;
`jaxcomp.nets.imageops.weighted_mean`), equal to `loss_fn` for w = 1.
"""

import dataclasses
from typing import Any, Callable, Optional

from jaxcomp.errors import UserError
from jaxcomp.registry import Registry

# The modules that register metrics (each with `@register`), imported on the first lookup.
MODULES = tuple(f"jaxcomp.metrics.{m}" for m in (
    "psnr", "ssim", "gmsd", "fsim", "vsi", "nlpd", "lpips", "dists", "dpl"))
METRICS = Registry("metric", modules=MODULES)


@dataclasses.dataclass(frozen=True)
class Metric:
  """One metric, ready to apply.

  Attributes:
    name: registry name.
    kind: "distance" (lower is better, 0 for identical images) or "similarity".
    compute: (params, x, y) -> [B] value as reported (e.g. PSNR in dB, SSIM in [-1, 1]).
    loss_fn: (params, x, y) -> [B] differentiable distortion, lower is better (e.g. 1 - SSIM);
      None for metrics that are not used as losses (PSNR).
    params: weights pytree for `compute` and `loss_fn`, or None.
    weighted_loss_fn: (params, x, y, w [B, H, W]) -> [B], `loss_fn` with its spatial map averaged
      under the weights w; None for losses that have no spatial map (e.g. GMSD's deviation
      pooling, DISTS's global statistics).
  """

  name: str
  kind: str
  compute: Callable[[Any, Any, Any], Any]
  loss_fn: Optional[Callable[[Any, Any, Any], Any]] = None
  params: Any = None
  weighted_loss_fn: Optional[Callable[[Any, Any, Any, Any], Any]] = None

  def __call__(self, x, y):
    """The metric value per image, [B]."""
    return self.compute(self.params, x, y)

  def loss(self, x, y):
    """The training distortion per image, [B]."""
    if self.loss_fn is None:
      raise UserError(f"metric '{self.name}' is not available as a loss")
    return self.loss_fn(self.params, x, y)


def register(name, *, prefix=False):
  """Decorator: registers `factory(arg) -> Metric` under `name` (or the family `name:<arg>`)."""
  return METRICS.register(name, takes_arg=prefix)


def names():
  """Registered metric names (prefix families as 'family:<arg>'), sorted."""
  return METRICS.names()


def get(name):
  """Returns the `Metric` for `name`; weights, if any, are loaded here (UserError if missing)."""
  factory, arg = METRICS.lookup(name)
  return factory(arg)


def loss(name):
  """The `Metric` for `name`, checked to have a loss (UserError for metric-only names)."""
  metric = get(name)
  if metric.loss_fn is None:
    raise UserError(f"metric '{name}' is not available as a loss (use e.g. mse instead)")
  return metric
