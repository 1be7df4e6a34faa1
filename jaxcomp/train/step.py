"""Rate-distortion training step: L = R + lambda * D, with R in bits per pixel.

D is 255^2 * MSE on [0, 1] images by default (CompressAI's convention: the same as
tensorflow-compression's R + lambda * MSE on [0, 255]), so CompressAI's lambdas apply as they are.
Any other distortion is a function (x, x_hat) -> [B] passed as `distortion`.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from jaxcomp.codec import models


def mse_distortion(x, x_hat):
  """255^2 * mean squared error per image: [B, H, W, C] x2 -> [B]."""
  return 255.0**2 * jnp.mean((x - x_hat) ** 2, axis=(1, 2, 3))


def create_state(model, key, learning_rate=1e-4, image_size=(64, 64), optimizer=None):
  """TrainState over the model's 'params' (the z quantiles are refit, not trained)."""
  variables = models.init(model, key, image_size)
  tx = optimizer or optax.adam(learning_rate)
  return train_state.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx)


def loss_fn(params, apply_fn, x, key, lmbda, distortion=mse_distortion):
  """Mean over the batch of bpp + lambda * D, and its parts.

  Args:
    params: model parameters.
    apply_fn: the model's `apply`.
    x: [B, H, W, 3] images in [0, 1].
    key: PRNG key for the quantization noise.
    lmbda: rate-distortion trade-off.
    distortion: (x, x_hat) -> [B].

  Returns:
    (loss, {'loss', 'bpp', 'distortion', 'mse'}) scalars.
  """
  out = apply_fn({"params": params}, x, training=True, rngs={"noise": key})
  pixels = x.shape[1] * x.shape[2]
  bpp = models.rate_bits(out["likelihoods"]) / pixels
  dist = distortion(x, out["x_hat"])
  loss = jnp.mean(bpp + lmbda * dist)
  metrics = {"loss": loss, "bpp": jnp.mean(bpp), "distortion": jnp.mean(dist),
             "mse": jnp.mean((x - out["x_hat"]) ** 2)}
  return loss, metrics


@functools.partial(jax.jit, static_argnames=("distortion",), donate_argnums=(0,))
def train_step(state, x, key, lmbda, distortion=mse_distortion):
  """One optimizer step on one batch. Returns (new state, metrics)."""
  grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, state.apply_fn, x, key, lmbda,
                                                   distortion)
  return state.apply_gradients(grads=grads), metrics
