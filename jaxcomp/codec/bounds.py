"""Lower bound with CompressAI's gradient rule, and the non-negative reparametrization built on it."""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def lower_bound(x, bound):
  """max(x, bound) whose gradient still flows where it would push x up past the bound.

  CompressAI's `LowerBound`: the incoming gradient passes where `x >= bound` or where the gradient
  is negative (a descent step then increases x); elsewhere it is zero.

  Args:
    x: any array.
    bound: scalar (or broadcastable array), same dtype as x.

  Returns:
    array like x.
  """
  return jnp.maximum(x, bound)


def _lower_bound_fwd(x, bound):
  return jnp.maximum(x, bound), (x, bound)


def _lower_bound_bwd(res, g):
  x, bound = res
  pass_through = (x >= bound) | (g < 0)
  return jnp.where(pass_through, g, jnp.zeros_like(g)), jnp.zeros_like(bound)


lower_bound.defvjp(_lower_bound_fwd, _lower_bound_bwd)

REPARAM_OFFSET = 2.0**-18
PEDESTAL = REPARAM_OFFSET**2


def nonneg_init(value):
  """Stored parameter for a non-negative `value`: sqrt(max(value + pedestal, pedestal))."""
  return jnp.sqrt(jnp.maximum(value + PEDESTAL, PEDESTAL))


def nonneg_value(param, minimum=0.0):
  """Value of a non-negative reparametrized parameter: lower_bound(param, b)^2 - pedestal.

  The bound b = sqrt(minimum + pedestal) keeps the value >= minimum (CompressAI's
  `NonNegativeParametrizer`, reparam offset 2^-18).
  """
  bound = jnp.asarray((minimum + PEDESTAL) ** 0.5, param.dtype)
  return lower_bound(param, bound) ** 2 - jnp.asarray(PEDESTAL, param.dtype)
