"""Conditional Gaussian model of the latent y given the hyper-synthesis scales (and means).

    p(y | sigma, mu) = Phi((1/2 - |y - mu|) / sigma) - Phi((-1/2 - |y - mu|) / sigma),

the N(mu, sigma^2) density convolved with U(-1/2, 1/2), evaluated on the mirrored side |y - mu|
where both terms are small, with Phi(t) = erfc(-t / sqrt 2) / 2 (accurate in the tails).
sigma is lower-bounded at 0.11 and the likelihood at 1e-9 (both with CompressAI's LowerBound
gradient). For coding, scales map to one of 64 table entries exp(linspace(log 0.11, log 256, 64)).
"""

import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from jaxcomp.codec import bounds

SCALE_MIN = 0.11
SCALE_MAX = 256.0
NUM_SCALES = 64
SCALE_BOUND = 0.11
LIKELIHOOD_BOUND = 1e-9


def scale_table(scale_min=SCALE_MIN, scale_max=SCALE_MAX, num_scales=NUM_SCALES):
  """[num_scales] float64 numpy array of log-spaced scales (CompressAI's `get_scale_table`)."""
  return np.exp(np.linspace(np.log(scale_min), np.log(scale_max), num_scales))


def _standard_cdf(t):
  return 0.5 * jax.scipy.special.erfc(-t * (2.0**-0.5))


def likelihood(y_hat, scales, means=None):
  """Likelihood of (noisy or rounded) y_hat under N(means, scales^2) * U(-1/2, 1/2).

  Args:
    y_hat: [...] values.
    scales: [...] positive-ish scales (lower-bounded here at 0.11).
    means: optional [...] means; zero when None.

  Returns:
    [...] likelihood in [1e-9, 1].
  """
  values = y_hat if means is None else y_hat - means
  scales = bounds.lower_bound(scales, jnp.asarray(SCALE_BOUND, scales.dtype))
  values = jnp.abs(values)
  lik = _standard_cdf((0.5 - values) / scales) - _standard_cdf((-0.5 - values) / scales)
  return bounds.lower_bound(lik, jnp.asarray(LIKELIHOOD_BOUND, lik.dtype))
