"""Rate-distortion training step: L = R + lambda * D, with R in bits per pixel.

D is 255^2 * MSE on [0, 1] images by default (CompressAI's convention: the same as
tensorflow-compression's R + lambda * MSE on [0, 255]), so CompressAI's lambdas apply as they are.
Any other distortion is a function (distortion_params, x, x_hat) -> [B] (the signature of
`jaxcomp.metrics.registry.Metric.loss_fn`); its weights travel as `distortion_params`, an
argument, so that jit and pmap do not embed them as constants.

Saliency (`saliency`, a pure function (saliency_params, x [B, H, W, 3]) -> S [B, H, W] in [0, 1],
e.g. `jaxcomp.saliency.load('sdsp').apply`): when given, S is computed from the batch (no
gradient flows into it), handed to the model (used by its encoder if it `needs_saliency`) and to
the distortion as `distortion(distortion_params, x, x_hat, saliency=S)` (a
`jaxcomp.train.distortion.Distortion` accepts it and weights its saliency-weighted terms).
Images with five channels carry S already (`input_pipeline.SaliencySource`: channel 4 is the
crop of the whole image's map, channel 5 that image's mean saliency everywhere); then `saliency`
is not called, and the weights are normalised by the whole image's mean
(`distortion.saliency_weights`).

Noise is drawn per example: image b of a batch whose first image has global index i0 uses
fold_in(fold_in(key, step), i0 + b). A batch split over devices (or hosts) therefore draws the
same noise as the whole batch on one device, and with gradients averaged by `pmean` N-device
training equals 1-device training with the same global batch.
"""

import functools

import jax
import jax.numpy as jnp
import optax
from flax import jax_utils
from flax.training import train_state

from jaxcomp.codec import models

AXIS = "batch"  # pmap axis name over data-parallel devices (all devices of all hosts).


def mse_distortion(params, x, x_hat):
  """255^2 * mean squared error per image: [B, H, W, C] x2 -> [B]; `params` is unused."""
  del params
  return 255.0**2 * jnp.mean((x - x_hat) ** 2, axis=(1, 2, 3))


@functools.lru_cache(maxsize=8)
def _init_fn(model, image_size):
  """Jitted `models.init` for one model and size, compiled once per process."""
  return jax.jit(lambda key: models.init(model, key, image_size))


def create_state(model, key, learning_rate=1e-4, image_size=(64, 64), optimizer=None):
  """TrainState over the model's 'params' (the z quantiles are refit, not trained)."""
  variables = _init_fn(model, tuple(image_size))(key)
  tx = optimizer or optax.adam(learning_rate)
  return train_state.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx)


def example_keys(key, first_index, batch):
  """[batch] per-example keys fold_in(key, first_index + b), b = 0..batch-1."""
  return jax.vmap(lambda i: jax.random.fold_in(key, i))(first_index + jnp.arange(batch))


def loss_fn(params, apply_fn, x, key, lmbda, distortion=mse_distortion, distortion_params=None,
            first_index=0, saliency=None, saliency_params=None):
  """Mean over the batch of bpp + lambda * D, and its parts.

  Args:
    params: model parameters.
    apply_fn: the model's `apply`.
    x: [B, H, W, 3] images in [0, 1], or [B, H, W, 5] with saliency channels (module docstring).
    key: PRNG key for the quantization noise of this step.
    lmbda: rate-distortion trade-off.
    distortion: (distortion_params, x, x_hat) -> [B].
    distortion_params: weights of the distortion (None for classical ones).
    first_index: global index of x[0]; image b draws its noise from fold_in(key, first_index + b).
    saliency: None, or (saliency_params, x) -> [B, H, W] (see the module docstring).
    saliency_params: the saliency model's weights (None for SDSP).

  Returns:
    (loss, {'loss', 'bpp', 'distortion', 'mse'}) scalars (means over the batch).
  """

  s = s_mean = None
  if x.shape[-1] == 5:
    x, s, s_mean = x[..., :3], x[..., 3], jnp.mean(x[..., 4], axis=(1, 2))
  elif saliency is not None:
    s = jax.lax.stop_gradient(saliency(saliency_params, x))

  def forward(xi, ki, si):
    extra = {} if si is None else {"saliency": si[None]}
    out = apply_fn({"params": params}, xi[None], training=True, rngs={"noise": ki}, **extra)
    return out["x_hat"][0], models.rate_bits(out["likelihoods"])[0]

  x_hat, bits = jax.vmap(forward)(x, example_keys(key, first_index, x.shape[0]), s)
  bpp = bits / (x.shape[1] * x.shape[2])
  if s is None:
    dist = distortion(distortion_params, x, x_hat)
  else:
    extra = {} if s_mean is None else {"saliency_mean": s_mean}
    dist = distortion(distortion_params, x, x_hat, saliency=s, **extra)
  loss = jnp.mean(bpp + lmbda * dist)
  metrics = {"loss": loss, "bpp": jnp.mean(bpp), "distortion": jnp.mean(dist),
             "mse": jnp.mean((x - x_hat) ** 2)}
  return loss, metrics


def update(state, x, key, lmbda, distortion=mse_distortion, distortion_params=None,
           first_index=0, axis_name=None, saliency=None, saliency_params=None):
  """One optimizer step (pure). Returns (new state, metrics incl. 'grad_norm').

  Args:
    state: TrainState.
    x: [B, H, W, 3] images in [0, 1] (the local part of the global batch under pmap).
    key: base noise key; folded with `state.step` here.
    lmbda, distortion, distortion_params, first_index, saliency, saliency_params: as in
      `loss_fn`.
    axis_name: pmap axis to average gradients and metrics over (None on one device). Each
      device's loss is a mean over its equal share, so the average is the global-batch mean.
  """
  step_key = jax.random.fold_in(key, state.step)
  grads, metrics = jax.grad(loss_fn, has_aux=True)(
      state.params, state.apply_fn, x, step_key, lmbda, distortion, distortion_params, first_index,
      saliency, saliency_params)
  if axis_name is not None:
    grads, metrics = jax.lax.pmean((grads, metrics), axis_name)
  metrics["grad_norm"] = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in jax.tree.leaves(grads)))
  return state.apply_gradients(grads=grads), metrics


# One device: jitted, the state donated.
train_step = functools.partial(
    jax.jit, static_argnames=("distortion", "axis_name", "saliency"), donate_argnums=(0,))(update)


@functools.lru_cache(maxsize=8)
def make_pmap_step(distortion=mse_distortion, devices=None, saliency=None):
  """`update` pmapped over `devices` (a tuple; default: all local devices), gradients `pmean`-ed.

  Cached, so that runs in one process (tests, sweeps) share the compiled step.

  The returned function takes (replicated state, x [D, B/D, H, W, 3], key, lmbda,
  replicated distortion_params, first_index [D], replicated saliency_params) and returns
  (replicated state, metrics [D]); `saliency` as in `loss_fn` (the last argument is ignored
  when it is None).
  """
  fn = functools.partial(update, distortion=distortion, axis_name=AXIS, saliency=saliency)
  return jax.pmap(
      lambda s, x, k, l, p, i, sp: fn(s, x, k, l, distortion_params=p, first_index=i,
                                      saliency_params=sp),
      axis_name=AXIS, in_axes=(0, 0, None, None, 0, 0, 0), donate_argnums=(0,), devices=devices)


def replicate(tree, devices):
  """A copy of `tree` on each of `devices`, laid out as `make_pmap_step`'s outputs are.

  (Another layout, e.g. jax_utils.replicate's default axis name, makes the second step compile
  again.)
  """
  return jax_utils.replicate(jax.device_get(tree), devices, axis_name=AXIS)
