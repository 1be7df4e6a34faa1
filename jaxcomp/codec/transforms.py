"""Analysis, synthesis and hyper transforms with CompressAI's exact layer lists.

Shapes (NHWC): x [B, H, W, 3] -> g_a -> y [B, H/16, W/16, M] -> h_a -> z [B, H/64, W/64, N];
h_s(z_hat) -> [B, H/16, W/16, M] scales (hyperprior) or [B, H/16, W/16, 2M] scales+means
(mean-scale); g_s(y_hat) -> x_hat [B, H, W, 3]. Sub-module names follow CompressAI's
`nn.Sequential` indexes (`layer_0`, `layer_2`, ...), so a state_dict key `g_a.2.weight` is
`g_a/layer_2/kernel` here.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomp.codec.conv import Conv, UpConv
from jaxcomp.codec.gdn import GDN

# Adaptive quantization steps lie in [1/8, 8]: exp(LOG_STEP_RANGE * tanh(t / LOG_STEP_RANGE)).
LOG_STEP_RANGE = 2.0794415416798357  # log 8


def _leaky_relu(x):
  return jax.nn.leaky_relu(x, 0.01)


class AnalysisTransform(nn.Module):
  """g_a: conv(3,N), GDN, conv(N,N), GDN, conv(N,N), GDN, conv(N,M); 5x5 stride 2."""

  N: int
  M: int

  @nn.compact
  def __call__(self, x):
    for i in range(3):
      x = Conv(self.N, name=f"layer_{2 * i}")(x)
      x = GDN(name=f"layer_{2 * i + 1}")(x)
    return Conv(self.M, name="layer_6")(x)


class SynthesisTransform(nn.Module):
  """g_s: deconv(M,N), IGDN, deconv(N,N), IGDN, deconv(N,N), IGDN, deconv(N,3); 5x5 stride 2."""

  N: int
  M: int

  @nn.compact
  def __call__(self, y):
    for i in range(3):
      y = UpConv(self.N, name=f"layer_{2 * i}")(y)
      y = GDN(inverse=True, name=f"layer_{2 * i + 1}")(y)
    return UpConv(3, name="layer_6")(y)


class HyperAnalysis(nn.Module):
  """h_a. Hyperprior: |y| -> conv3x3 s1, ReLU, conv, ReLU, conv.
  Mean-scale: y -> the same with LeakyReLU(0.01).

  `extra` ([B, H/16, W/16, k], e.g. a down-sampled saliency map) is appended to the input
  channels of the first convolution (after |.| for the hyperprior)."""

  N: int
  mean_scale: bool = False

  @nn.compact
  def __call__(self, y, extra=None):
    act = _leaky_relu if self.mean_scale else jax.nn.relu
    x = y if self.mean_scale else abs(y)
    if extra is not None:
      x = jnp.concatenate([x, extra.astype(x.dtype)], axis=-1)
    x = act(Conv(self.N, kernel_size=3, stride=1, name="layer_0")(x))
    x = act(Conv(self.N, name="layer_2")(x))
    return Conv(self.N, name="layer_4")(x)


class HyperSynthesis(nn.Module):
  """h_s. Hyperprior: deconv(N,N), ReLU, deconv(N,N), ReLU, conv3x3(N,M), ReLU -> scales [.., M].
  Mean-scale: deconv(N,M), LReLU, deconv(M,3M/2), LReLU, conv3x3(3M/2,2M) -> [.., 2M]
  (scales = first M channels, means = last M, as CompressAI's `chunk(2, 1)`)."""

  N: int
  M: int
  mean_scale: bool = False

  @nn.compact
  def __call__(self, z_hat):
    if self.mean_scale:
      x = _leaky_relu(UpConv(self.M, name="layer_0")(z_hat))
      x = _leaky_relu(UpConv(self.M * 3 // 2, name="layer_2")(x))
      return Conv(self.M * 2, kernel_size=3, stride=1, name="layer_4")(x)
    x = jax.nn.relu(UpConv(self.N, name="layer_0")(z_hat))
    x = jax.nn.relu(UpConv(self.N, name="layer_2")(x))
    return jax.nn.relu(Conv(self.M, kernel_size=3, stride=1, name="layer_4")(x))


class StepSynthesis(nn.Module):
  """h_q: z_hat -> a quantization step per latent location, [B, 4h, 4w, 1] in [1/8, 8].

  deconv(N,N), ReLU, deconv(N,N), ReLU, conv3x3(N,1) -> t, step = exp(r tanh(t / r)) with
  r = log 8. The last convolution starts at zero, so a new branch starts at step 1 everywhere
  (the model it is added to is unchanged until training moves it).
  """

  N: int

  @nn.compact
  def __call__(self, z_hat):
    x = jax.nn.relu(UpConv(self.N, name="layer_0")(z_hat))
    x = jax.nn.relu(UpConv(self.N, name="layer_2")(x))
    t = Conv(1, kernel_size=3, stride=1, zero_init=True, name="layer_4")(x)
    return jnp.exp(LOG_STEP_RANGE * jnp.tanh(t.astype(jnp.float32) / LOG_STEP_RANGE))
