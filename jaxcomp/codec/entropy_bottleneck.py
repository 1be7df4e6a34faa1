"""Factorized (non-parametric) density for the hyper-latent z (Ballé et al. 2018, appendix 6.1).

Per channel c, a cumulative f_c(x) = sigmoid(logits_c(x)), logits_c a small monotone MLP
(filters (1, 3, 3, 3, 3, 1)): for each layer i
    h <- softplus(H_i) @ h + b_i;   h <- h + tanh(a_i) * tanh(h)   (all but the last layer).
The probability of a unit interval is p(x) = f(x + 1/2) - f(x - 1/2): the density convolved with
U(-1/2, 1/2), which is the likelihood of noisy values in training and of rounded values in eval.

Parameters use CompressAI's `EntropyBottleneck` names and layouts (`matrices_i` [C, f_{i+1}, f_i],
`biases_i` [C, f_{i+1}, 1], `factors_i` [C, f_{i+1}, 1]) so its weights load as they are.

Tails and medians: CompressAI trains a `quantiles` parameter with a separate auxiliary optimizer.
jaxcomp instead finds them after (or during) training by bisection on the monotone logits,
`fit_quantiles` (as tensorflow-compression's `estimate_tails`, or CompressAI's
`update(update_quantiles=True)`): the lower tail, median and upper tail solve
logits(x) = -t, 0, +t with t = log(2 / tail_mass - 1). They live in the `quantiles` variable
collection, [C, 3], used for rounding (round(z - median) + median) and for the coding tables.
Imported CompressAI models keep their trained quantiles.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.codec import bounds

FILTERS = (3, 3, 3, 3)
INIT_SCALE = 10.0
TAIL_MASS = 1e-9
LIKELIHOOD_BOUND = 1e-9


def logits_cumulative(params, x):
  """logits of the cumulative for every channel.

  Args:
    params: dict with matrices_i, biases_i, factors_i (see module docstring).
    x: [C, 1, N] values, one row per channel.

  Returns:
    [C, 1, N] logits.
  """
  n_layers = len([k for k in params if k.startswith("matrices_")])
  logits = x
  for i in range(n_layers):
    logits = jnp.matmul(jax.nn.softplus(params[f"matrices_{i}"]), logits) + params[f"biases_{i}"]
    if i < n_layers - 1:
      logits = logits + jnp.tanh(params[f"factors_{i}"]) * jnp.tanh(logits)
  return logits


def interval_likelihood(params, x):
  """p(x) = f(x + 1/2) - f(x - 1/2), computed where the sigmoids are not saturated.

  Args:
    params: density parameters.
    x: [C, 1, N].

  Returns:
    [C, 1, N] likelihood in [0, 1] (not lower-bounded).
  """
  lower = logits_cumulative(params, x - 0.5)
  upper = logits_cumulative(params, x + 0.5)
  # Mirror to the left tail where both logits are positive: 1 - s(u) - (1 - s(l)) = s(-l) - s(-u).
  sign = jax.lax.stop_gradient(-jnp.sign(lower + upper))
  sign = jnp.where(sign == 0, 1.0, sign)
  return jnp.abs(jax.nn.sigmoid(sign * upper) - jax.nn.sigmoid(sign * lower))


def fit_quantiles(params, tail_mass=TAIL_MASS, iterations=64):
  """Lower tail, median and upper tail of every channel's density, by bisection.

  Solves logits(x) = (-t, 0, t), t = log(2 / tail_mass - 1). The logits are monotone in x, so
  bracketing by doubling and then bisecting converges; 64 halvings reach float precision.

  Args:
    params: density parameters for C channels.
    tail_mass: probability mass outside [lower, upper].
    iterations: bisection steps.

  Returns:
    [C, 3] float32 (lower, median, upper).
  """
  channels = params["matrices_0"].shape[0]
  t = float(np.log(2.0 / tail_mass - 1.0))
  target = jnp.broadcast_to(jnp.array([-t, 0.0, t], jnp.float32), (channels, 1, 3))

  def f(x):
    return logits_cumulative(params, x) - target

  def expand(carry):
    lo, hi = carry
    return jnp.where(f(lo) > 0, 2 * lo, lo), jnp.where(f(hi) < 0, 2 * hi, hi)

  def not_bracketed(carry):
    lo, hi = carry
    return jnp.any(f(lo) > 0) | jnp.any(f(hi) < 0)

  lo = jnp.full((channels, 1, 3), -1.0)
  hi = jnp.full((channels, 1, 3), 1.0)
  lo, hi = jax.lax.while_loop(
      lambda c: not_bracketed(c) & (jnp.max(jnp.abs(c[0])) < 1e30), expand, (lo, hi))

  def bisect(_, carry):
    lo, hi = carry
    mid = 0.5 * (lo + hi)
    below = f(mid) < 0
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iterations, bisect, (lo, hi))
  return (0.5 * (lo + hi))[:, 0, :]


def quantize(z, medians):
  """Rounds around the per-channel median: round(z - m) + m. z [..., C], medians [C]."""
  return jnp.round(z - medians) + medians


def _uniform(low, high):
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, low, high)


class EntropyBottleneck(nn.Module):
  """Likelihood of the hyper-latent z under the factorized density.

  Call: (z [B, h, w, C], training, noise key via the 'noise' rng) -> (z_hat, likelihood), both
  [B, h, w, C]. Training adds U(-1/2, 1/2) noise (or the given `noise` [B, h, w, C], so that a
  test can feed the same noise to CompressAI); evaluation rounds around the medians held in
  the `quantiles` collection ([C, 3]; see `fit_quantiles`), which `init` creates when called
  with training=False.
  """

  filters: tuple = FILTERS
  init_scale: float = INIT_SCALE

  def density_params(self, channels):
    filters = (1,) + tuple(self.filters) + (1,)
    scale = self.init_scale ** (1.0 / (len(self.filters) + 1))
    params = {}
    for i in range(len(self.filters) + 1):
      init = float(np.log(np.expm1(1.0 / scale / filters[i + 1])))
      params[f"matrices_{i}"] = self.param(
          f"matrices_{i}", nn.initializers.constant(init), (channels, filters[i + 1], filters[i]))
      params[f"biases_{i}"] = self.param(
          f"biases_{i}", _uniform(-0.5, 0.5), (channels, filters[i + 1], 1))
      if i < len(self.filters):
        params[f"factors_{i}"] = self.param(
            f"factors_{i}", nn.initializers.zeros, (channels, filters[i + 1], 1))
    return params

  @nn.compact
  def __call__(self, z, training, noise=None):
    channels = z.shape[-1]
    params = self.density_params(channels)
    if training:
      if noise is None:
        noise = jax.random.uniform(self.make_rng("noise"), z.shape, z.dtype, -0.5, 0.5)
      z_hat = z + noise
    else:
      quantiles = self.variable("quantiles", "z", lambda: fit_quantiles(params))
      z_hat = quantize(z, quantiles.value[:, 1].astype(z.dtype))
    values = jnp.moveaxis(z_hat, -1, 0).reshape(channels, 1, -1)
    lik = interval_likelihood(params, values.astype(jnp.float32))
    lik = bounds.lower_bound(lik, jnp.asarray(LIKELIHOOD_BOUND, lik.dtype))
    lik = jnp.moveaxis(lik.reshape((channels,) + z.shape[:-1]), 0, -1)
    return z_hat, lik
