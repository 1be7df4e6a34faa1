"""Training parity with CompressAI: jaxcomp's loss and gradients for a CompressAI state_dict.

    out = loss_and_grads("bmshj2018-hyperprior", state_dict, x, noise, lmbda=0.01)
    out["loss"], out["bpp"], out["mse"]     floats
    out["grads"]["g_a.0.weight"]            [N, 3, 5, 5], CompressAI's layout

The model is jaxcomp's own (`jaxcomp.codec.models`, the weights imported by
`jaxcomp.codec.compressai_import`, as `jaxcomp convert compressai` does), run in training mode with
the given quantization noise instead of drawn noise, and the loss is the one jaxcomp's trainer
minimises (`jaxcomp.train.step`, 255^2 MSE):

    bpp  = mean over images of  sum_{y,z} -log2 p / (H W)
    loss = bpp + lmbda * 255^2 * mean((x - x_hat)^2)

which is CompressAI's `RateDistortionLoss` (sum log p / (-ln 2 * B H W) over y and z, plus
lmbda * 255^2 * MSELoss). The likelihoods are lower-bounded at 1e-9 and the Gaussian scales at
0.11 with CompressAI's `LowerBound` gradient (`jaxcomp.codec.bounds`), GDN's beta/gamma are the
stored (reparametrized) tensors, so each gradient is the gradient w.r.t. the tensor CompressAI
stores. `tests/test_train_parity.py` checks all of it against CompressAI 1.2.8.

One documented difference: CompressAI 1.2.8 computes the factorized density's interval
probability as sigmoid(upper) - sigmoid(lower), which underflows to 0 (then 1e-9) in float32
where both logits exceed ~17 (z far in the upper tail); jaxcomp mirrors to the lower side there
and keeps the probability accurate. Elsewhere the two agree to float rounding.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.codec import compressai_import, models
from jaxcomp.errors import UserError
from jaxcomp.train import step

DOWNSAMPLING = models.DOWNSAMPLING  # H, W multiples of 64: y at 1/16, z at 1/64.


def _check_images(x):
  """[B, H, W, 3] float in [0, 1], H and W positive multiples of 64 -> float32 numpy."""
  x = np.asarray(x)
  if x.ndim != 4 or x.shape[-1] != 3 or min(x.shape) == 0:
    raise UserError(f"x must be [B, H, W, 3] images, got shape {x.shape}")
  if x.shape[1] % DOWNSAMPLING or x.shape[2] % DOWNSAMPLING:
    raise UserError(f"x's height and width must be multiples of {DOWNSAMPLING}, got "
                    f"{x.shape[1]}x{x.shape[2]}")
  x = x.astype(np.float32)
  if not np.all(np.isfinite(x)) or x.min() < 0.0 or x.max() > 1.0:
    raise UserError("x must hold finite values in [0, 1]")
  return x


def _check_noise(noise, x, N, M):
  """{'y': [B, H/16, W/16, M], 'z': [B, H/64, W/64, N]} in [-1/2, 1/2] -> float32 numpy."""
  b, h, w, _ = x.shape
  want = {"y": (b, h // 16, w // 16, M), "z": (b, h // 64, w // 64, N)}
  if not isinstance(noise, dict) or set(noise) != set(want):
    raise UserError("noise must be a dict with exactly the keys 'y' and 'z'")
  out = {}
  for key, shape in want.items():
    value = np.asarray(noise[key], np.float32)
    if value.shape != shape:
      raise UserError(f"noise['{key}'] must have shape {list(shape)} for x {list(x.shape)} "
                      f"(N={N}, M={M}), got {list(value.shape)}")
    if not np.all(np.isfinite(value)) or np.abs(value).max() > 0.5:
      raise UserError(f"noise['{key}'] must hold finite values in [-0.5, 0.5]")
    out[key] = value
  return out


def _params(arch, state_dict):
  """(jaxcomp params, N, M) from a CompressAI state_dict; UserError on a bad one.

  The quantiles and CompressAI's buffers do not enter the training loss: they are not required,
  and ignored when present.
  """
  if arch not in models.ARCHS:
    raise UserError(f"unknown architecture {arch!r}; choose from {', '.join(models.ARCHS)}")
  if not hasattr(state_dict, "items"):
    raise UserError(f"state_dict must map CompressAI names to arrays, got {type(state_dict).__name__}")
  trained = {k: v for k, v in state_dict.items() if not k.endswith("entropy_bottleneck.quantiles")}
  try:
    N, M = compressai_import.infer_channels(trained)
    trained["entropy_bottleneck.quantiles"] = np.zeros((N, 1, 3), np.float32)
    variables, N, M = compressai_import.convert(arch, trained)
  except (AttributeError, TypeError, ValueError, IndexError) as e:
    raise UserError(f"state_dict: cannot read its tensors as float arrays ({e})") from None
  return variables["params"], N, M


@functools.lru_cache(maxsize=8)
def _value_and_grad(arch, N, M):
  """Jitted (params, x, noise, lmbda) -> ((loss, (bpp, mse)), grads) for one architecture."""
  model = models.build(arch, N, M)

  def loss_fn(params, x, noise, lmbda):
    out = model.apply({"params": params}, x, training=True, noise=noise)
    bpp = models.rate_bits(out["likelihoods"]) / (x.shape[1] * x.shape[2])  # [B]
    loss = jnp.mean(bpp + lmbda * step.mse_distortion(None, x, out["x_hat"]))
    return loss, (jnp.mean(bpp), jnp.mean((x - out["x_hat"]) ** 2))

  return jax.jit(jax.value_and_grad(loss_fn, has_aux=True))


def loss_and_grads(arch, state_dict, x, noise, lmbda):
  """jaxcomp's rate-distortion loss and its gradients, for CompressAI weights and given noise.

  Args:
    arch: 'bmshj2018-hyperprior' or 'mbt2018-mean'.
    state_dict: {CompressAI state_dict name: array} in CompressAI's layouts (any N, M); buffers
      and quantiles may be present and are ignored.
    x: [B, H, W, 3] float32 images in [0, 1], H and W multiples of 64.
    noise: {'y': [B, H/16, W/16, M], 'z': [B, H/64, W/64, N]} uniform noise in [-1/2, 1/2]
      added to y and z instead of drawn (NHWC; CompressAI's [B, C, h, w] permuted).
    lmbda: the rate-distortion trade-off (loss = bpp + lmbda * 255^2 * MSE).

  Returns:
    {'loss', 'bpp', 'mse': float, 'grads': {name: float32 array}} where `grads` holds every
    trained CompressAI parameter (conv/deconv weights and biases, GDN beta/gamma, the entropy
    bottleneck's matrices/biases/factors) in CompressAI's layout; `mse` is on [0, 1] pixels.

  Raises:
    UserError: unknown architecture, missing/unexpected/mis-shaped tensors, images or noise of
      the wrong shape or range.
  """
  params, N, M = _params(arch, state_dict)
  x = _check_images(x)
  noise = _check_noise(noise, x, N, M)
  lmbda = float(lmbda)
  if not np.isfinite(lmbda) or lmbda < 0:
    raise UserError(f"lmbda must be a finite number >= 0, got {lmbda}")
  (loss, (bpp, mse)), grads = _value_and_grad(arch, N, M)(params, x, noise, lmbda)
  grads = {k: np.asarray(v, np.float32) for k, v in compressai_import.to_state_dict(grads).items()}
  return {"loss": float(loss), "bpp": float(bpp), "mse": float(mse), "grads": grads}
