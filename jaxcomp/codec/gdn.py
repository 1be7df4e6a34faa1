"""Generalized divisive normalization (Ballé et al. 2016) with CompressAI's parametrization."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomp.codec import bounds

BETA_MIN = 1e-6
GAMMA_INIT = 0.1


class GDN(nn.Module):
  """GDN, or inverse GDN (IGDN) when `inverse=True`, over the last (channel) axis.

    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)     (GDN)
    y_i = x_i * sqrt(beta_i + sum_j gamma_ij x_j^2)     (IGDN)

  beta and gamma are stored reparametrized (value = lower_bound(p, b)^2 - 2^-36) so that
  beta >= 1e-6 and gamma >= 0; init beta = 1, gamma = 0.1 I. Parameter names and layouts equal
  CompressAI's `GDN` (`beta` [C], `gamma` [C_out, C_in]) so its weights load as they are.

  Input/output: [..., C] float.
  """

  inverse: bool = False

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    beta_p = self.param("beta", lambda _, shape: bounds.nonneg_init(jnp.ones(shape)), (channels,))
    gamma_p = self.param(
        "gamma", lambda _, c: bounds.nonneg_init(GAMMA_INIT * jnp.eye(c)), channels)
    beta = bounds.nonneg_value(beta_p, BETA_MIN)
    gamma = bounds.nonneg_value(gamma_p, 0.0)
    norm = jnp.einsum("...j,ij->...i", x * x, gamma.astype(x.dtype)) + beta.astype(x.dtype)
    return x * jnp.sqrt(norm) if self.inverse else x * jax.lax.rsqrt(norm)
