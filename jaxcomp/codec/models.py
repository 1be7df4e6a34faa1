"""Hyperprior codecs: bmshj2018-hyperprior (scale) and mbt2018-mean (mean-scale).

Ballé, Minnen, Singh, Hwang, Johnston, "Variational image compression with a scale hyperprior",
ICLR 2018; Minnen, Ballé, Toderici, "Joint autoregressive and hierarchical priors for learned
image compression", NeurIPS 2018 (its mean-scale hyperprior without the context model).

Images are NHWC float in [0, 1]. Any size is accepted: the model pads to a multiple of 64
(`padding.pad`) and crops x_hat back; likelihoods cover the padded latents.

    variables = model.init({'params': k1, 'noise': k2}, x, training=False)
    out = model.apply(variables, x, training=True, rngs={'noise': key})
    out['x_hat'] [B,H,W,3]; out['likelihoods']['y'] [B,H'/16,W'/16,M]; ['z'] [B,H'/64,W'/64,N]

Learned bit allocation (the saliency-driven codec of Patel et al., WACV 2021): with
`saliency_input` the analysis transform g_a sees a saliency map S [B, H, W] in [0, 1] as a fourth
input channel, and with `saliency_hyper` the hyper-analysis h_a sees S average-pooled to the
latent grid (16x16 blocks) as one more channel, so the encoder can learn where to spend bits.
Only the encoder uses S: the hyper-synthesis, the synthesis and hence the bitstream and the
decoder are unchanged, and `apply(..., saliency=S)` is required only when `needs_saliency`.

Adaptive quantization (`adaptive_step`): a fixed decoder can spend more bits on a region only by
coding more of its latents as non-zero; it cannot make the quantization finer there. With
`adaptive_step` a third hyper-synthesis branch h_q predicts a quantization step per latent
location from z_hat, step [B, H/16, W/16, 1] in [1/8, 8], and y is coded as

    y_int = round((y - mu) / step),   y_hat = y_int * step + mu,   scale of y_int = sigma / step,

(training: y + step * U(-1/2, 1/2)). The decoder computes the steps from z_hat as it computes the
scales, so it needs no saliency map, and the bitstream layout is unchanged; an encoder that sees S
(`saliency_hyper`) can put finer steps where S is high by what it writes into z. h_q's last
convolution starts at zero (step 1), so adding the branch to a trained model leaves it unchanged.

`variables` has two collections: 'params' (trained) and 'quantiles' ([N, 3] per-channel
lower tail / median / upper tail of the z density, used for rounding; `refit_quantiles`).

Mixed precision: `dtype=jnp.bfloat16` runs the transforms (their convolutions and GDNs) in
bfloat16 on float32 parameters, each transform's input cast down and its output cast back to
float32; the noise, rounding, entropy bottleneck and Gaussian conditional stay float32, so the
likelihoods (the rate) are float32 functions of bfloat16-computed latents. Exported models code in
float32 (the entropy coder's determinism depends on it).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxcomp.codec import entropy_bottleneck, gaussian_conditional, padding
from jaxcomp.codec.transforms import (AnalysisTransform, HyperAnalysis, HyperSynthesis,
                                      StepSynthesis, SynthesisTransform)
from jaxcomp.registry import Registry

DOWNSAMPLING = 64


def ste_round(x):
  """round(x) forward, identity backward."""
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


class Hyperprior(nn.Module):
  """Scale hyperprior (mean_scale=False) or mean-scale hyperprior (mean_scale=True).

  Attributes:
    N: channels of the hidden layers and of z.
    M: channels of y.
    mean_scale: predict means as well as scales (mbt2018-mean).
    ste: in training, feed g_s straight-through-rounded y (round(y - mu) + mu) instead of the
      noisy y; the rate always uses the noisy y.
    dtype: compute dtype of the transforms g_a, h_a, h_s, (h_q,) g_s (float32 or bfloat16); their
      outputs, and everything else, are float32.
    saliency_input: g_a takes [x, S] (4 channels) instead of x.
    saliency_hyper: h_a takes S average-pooled over 16x16 blocks as an extra channel.
    adaptive_step: a quantization step per latent location, predicted from z_hat (h_q).
  """

  N: int = 128
  M: int = 192
  mean_scale: bool = False
  ste: bool = False
  dtype: Any = jnp.float32
  saliency_input: bool = False
  saliency_hyper: bool = False
  adaptive_step: bool = False

  @property
  def needs_saliency(self):
    """Whether the encoder (analysis) needs a saliency map."""
    return self.saliency_input or self.saliency_hyper

  def setup(self):
    self.g_a = AnalysisTransform(self.N, self.M)
    self.g_s = SynthesisTransform(self.N, self.M)
    self.h_a = HyperAnalysis(self.N, self.mean_scale)
    self.h_s = HyperSynthesis(self.N, self.M, self.mean_scale)
    self.entropy_bottleneck = entropy_bottleneck.EntropyBottleneck()
    if self.adaptive_step:
      self.h_q = StepSynthesis(self.N)

  def analysis(self, x, saliency=None):
    """x [B, H, W, 3] (multiples of 64) -> (y [B, H/16, W/16, M], z [B, H/64, W/64, N]).

    saliency: [B, H, W] in [0, 1] (padded like x), required iff `needs_saliency`.
    """
    s = self._check_saliency(x, saliency)
    g_in = x if not self.saliency_input else jnp.concatenate([x, s], axis=-1)
    y = self._float32(self.g_a(g_in.astype(self.dtype)))
    extra = None
    if self.saliency_hyper:
      factor = x.shape[1] // y.shape[1]
      extra = nn.avg_pool(s, (factor, factor), strides=(factor, factor)).astype(self.dtype)
    return y, self._float32(self.h_a(y.astype(self.dtype), extra))

  def _check_saliency(self, x, saliency):
    """[B, H, W] saliency -> [B, H, W, 1] float32, or None when the model takes none."""
    if not self.needs_saliency:
      return None
    if saliency is None:
      raise ValueError("this model's encoder takes a saliency map: pass saliency=[B, H, W]")
    if saliency.shape != x.shape[:3]:
      raise ValueError(f"saliency map {saliency.shape} does not match the images {x.shape[:3]}")
    return saliency.astype(jnp.float32)[..., None]

  def hyper_synthesis(self, z_hat):
    """z_hat [B, h, w, N] -> (scales [B, 4h, 4w, M], means or None, steps or None).

    scales and means are those of y; steps [B, 4h, 4w, 1] (`adaptive_step` only) is y's
    quantization step, so y_int = round((y - means) / steps) has scale scales / steps.
    """
    params = self._float32(self.h_s(z_hat.astype(self.dtype)))
    steps = self._float32(self.h_q(z_hat.astype(self.dtype))) if self.adaptive_step else None
    if self.mean_scale:
      return params[..., :self.M], params[..., self.M:], steps
    return params, None, steps

  def synthesis(self, y_hat):
    """y_hat [B, h, w, M] -> x_hat [B, 16h, 16w, 3] (not clipped)."""
    return self._float32(self.g_s(y_hat.astype(self.dtype)))

  @staticmethod
  def _float32(x):
    return x.astype(jnp.float32)

  def __call__(self, x, training, saliency=None, noise=None):
    """x [B, H, W, 3] in [0, 1]; saliency [B, H, W] in [0, 1] iff `needs_saliency`.

    noise: training only, optional {'y': [B, H'/16, W'/16, M], 'z': [B, H'/64, W'/64, N]} in
      [-1/2, 1/2] (H', W' padded to 64) used instead of drawing the quantization noise from the
      'noise' rng (`jaxcomp.train.parity` feeds CompressAI's model the same noise).
    """
    x_padded, pads = padding.pad(x, DOWNSAMPLING)
    if self.needs_saliency:
      self._check_saliency(x, saliency)
      saliency = padding.pad(saliency[..., None], DOWNSAMPLING)[0][..., 0]
    y, z = self.analysis(x_padded, saliency)
    z_hat, z_lik = self.entropy_bottleneck(z, training, None if noise is None else noise["z"])
    scales, means, steps = self.hyper_synthesis(z_hat)
    offset = 0.0 if means is None else means
    # Without adaptive steps, step 1.0: every expression below is then exactly the plain one.
    step = 1.0 if steps is None else steps
    if training:
      y_noise = (jax.random.uniform(self.make_rng("noise"), y.shape, y.dtype, -0.5, 0.5)
                 if noise is None else noise["y"])
      y_noisy = y + y_noise * step
      y_hat = ste_round((y - offset) / step) * step + offset if self.ste else y_noisy
      y_lik = gaussian_conditional.likelihood((y_noisy - offset) / step, scales / step)
    else:
      y_hat = jnp.round((y - offset) / step) * step + offset
      y_lik = gaussian_conditional.likelihood((y_hat - offset) / step, scales / step)
    x_hat = padding.crop(self.synthesis(y_hat), pads)
    return {"x_hat": x_hat, "y_hat": y_hat, "z_hat": z_hat, "likelihoods": {"y": y_lik, "z": z_lik}}


@dataclasses.dataclass(frozen=True)
class Arch:
  """A named architecture and CompressAI's (N, M) per quality 1..8."""

  name: str
  mean_scale: bool
  channels: dict  # quality -> (N, M)


ARCHS = Registry("architecture")  # name -> Arch
for _arch in (
    Arch("bmshj2018-hyperprior", False,
         {q: (128, 192) if q <= 5 else (192, 320) for q in range(1, 9)}),
    Arch("mbt2018-mean", True, {q: (128, 192) if q <= 4 else (192, 320) for q in range(1, 9)}),
):
  ARCHS.register(_arch.name, _arch)

# CompressAI's lambdas for L = R + lambda * 255^2 * MSE, quality 1..8.
MSE_LAMBDAS = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932,
               8: 0.1800}


def build(arch, N=None, M=None, quality=None, ste=False, dtype=jnp.float32,
          saliency_input=False, saliency_hyper=False, adaptive_step=False):
  """Hyperprior module for an architecture name, from (N, M) or a CompressAI quality.

  `dtype` is the transforms' compute dtype (`Hyperprior.dtype`); `saliency_input` and
  `saliency_hyper` give the encoder a saliency map (learned bit allocation); `adaptive_step`
  adds the quantization-step branch h_q.
  """
  spec, _ = ARCHS.lookup(arch)  # UserError for an unknown name
  if N is None or M is None:
    N, M = spec.channels[quality or 1]
  return Hyperprior(N=N, M=M, mean_scale=spec.mean_scale, ste=ste, dtype=dtype,
                    saliency_input=saliency_input, saliency_hyper=saliency_hyper,
                    adaptive_step=adaptive_step)


def init(model, key, image_size=(64, 64)):
  """Variables ('params' and 'quantiles') of a model, from one PRNG key."""
  params_key, noise_key = jax.random.split(key)
  x = jnp.zeros((1,) + tuple(image_size) + (3,), jnp.float32)
  saliency = jnp.zeros(x.shape[:3], jnp.float32) if model.needs_saliency else None
  init_fn = jax.jit(lambda rngs: model.init(rngs, x, training=False, saliency=saliency))
  return init_fn({"params": params_key, "noise": noise_key})


def refit_quantiles(variables):
  """Recomputes the z tails/medians from the trained density (bisection; no aux optimizer)."""
  eb = variables["params"]["entropy_bottleneck"]
  return {**variables, "quantiles": {"entropy_bottleneck": {"z": entropy_bottleneck.fit_quantiles(eb)}}}


def rate_bits(likelihoods):
  """Total bits per image, -sum log2 p over y and z. likelihoods: dict of [B, ...] -> [B]."""
  return sum(jnp.sum(-jnp.log2(l), axis=tuple(range(1, l.ndim))) for l in likelihoods.values())
