"""Differentiable saliency losses (JAX): KL divergence, CC and NSS on predicted log-densities.

The network predicts per-image logits; `log_p = log_softmax over pixels` is a fixation density
(sum exp(log_p) = 1). With g the ground-truth saliency map as a density (g / sum g) and f a binary
fixation map:

  kl(log_p, g)   sum g log(eps + g / (p + eps)), eps = 2.2204e-16: the MIT benchmark's KLD
                 (evaluation.kld), lower is better; exact gradients through p.
  cc(log_p, g)   Pearson correlation of p and g (higher is better; the loss uses -cc).
  nss(log_p, f)  mean over fixated pixels of (p - mean p) / std p (higher is better; -nss).

All take [B, H, W] arrays and return [B] values; images without fixations (an all-zero f) get
NSS 0 and are left out of the NSS term by `combined`. These are the losses of most deep saliency
models (ML-Net, SAM, MSI-Net, TranSalNet: KL + CC + NSS with weights).
"""

import jax.numpy as jnp

KLD_EPS = 2.2204e-16
STD_EPS = 1e-12
LOSS_NAMES = ("kl", "cc", "nss")
DEFAULT_WEIGHTS = {"kl": 1.0, "cc": 1.0, "nss": 0.1}


def as_density(maps):
  """[B, H, W] non-negative maps -> densities summing to 1 per image (uniform if all zero)."""
  maps = jnp.asarray(maps, jnp.float32)
  total = jnp.sum(maps, axis=(1, 2), keepdims=True)
  uniform = jnp.full_like(maps, 1.0 / (maps.shape[1] * maps.shape[2]))
  return jnp.where(total > 0, maps / jnp.where(total > 0, total, 1.0), uniform)


def kl(log_p, target):
  """MIT KL divergence KL(g || p) per image: log_p [B, H, W] log-density, target [B, H, W] >= 0."""
  g = as_density(target)
  p = jnp.exp(log_p)
  return jnp.sum(g * jnp.log(KLD_EPS + g / (p + KLD_EPS)), axis=(1, 2))


def _standardise(x):
  x = x - jnp.mean(x, axis=(1, 2), keepdims=True)
  return x / jnp.sqrt(jnp.mean(x * x, axis=(1, 2), keepdims=True) + STD_EPS)


def cc(log_p, target):
  """Pearson correlation per image of exp(log_p) and target ([B, H, W] each) -> [B]."""
  return jnp.mean(_standardise(jnp.exp(log_p)) * _standardise(jnp.asarray(target, jnp.float32)),
                  axis=(1, 2))


def nss(log_p, fixations):
  """NSS per image: fixations [B, H, W] binary (1 = fixated) -> [B] (0 without fixations)."""
  f = jnp.asarray(fixations, jnp.float32)
  count = jnp.sum(f, axis=(1, 2))
  total = jnp.sum(_standardise(jnp.exp(log_p)) * f, axis=(1, 2))
  return jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0)


def combined(log_p, target, fixations, weights):
  """Scalar training loss w_kl KL - w_cc CC - w_nss NSS (batch means) and its parts.

  Args:
    log_p: [B, H, W] predicted log-densities.
    target: [B, H, W] ground-truth saliency maps in [0, 1].
    fixations: [B, H, W] binary fixation maps, or None (then the NSS term is 0).
    weights: {"kl": w, "cc": w, "nss": w} (missing names weigh 0).

  Returns:
    (loss scalar, {"kl": mean KL, "cc": mean CC, "nss": mean NSS over images with fixations}).
  """
  parts = {"kl": jnp.mean(kl(log_p, target)), "cc": jnp.mean(cc(log_p, target))}
  if fixations is not None:
    has = (jnp.sum(fixations, axis=(1, 2)) > 0).astype(jnp.float32)
    parts["nss"] = jnp.sum(nss(log_p, fixations) * has) / jnp.maximum(jnp.sum(has), 1.0)
  else:
    parts["nss"] = jnp.zeros(())
  loss = (weights.get("kl", 0.0) * parts["kl"] - weights.get("cc", 0.0) * parts["cc"]
          - weights.get("nss", 0.0) * parts["nss"])
  return loss, parts


def parse_weights(spec):
  """'kl=1,cc=1,nss=0.1' (or 'kl+cc', a bare name weighing 1) -> {name: weight}; ValueError."""
  out = {}
  for item in spec.replace("+", ",").split(","):
    item = item.strip()
    if not item:
      continue
    name, _, value = item.partition("=")
    name = name.strip().lower()
    if name not in LOSS_NAMES:
      raise ValueError(f"unknown saliency loss {name!r} (choose from {', '.join(LOSS_NAMES)})")
    try:
      weight = float(value) if value.strip() else 1.0
    except ValueError as e:
      raise ValueError(f"loss weight for {name} is not a number: {value!r}") from e
    if not weight >= 0 or weight == float("inf"):
      raise ValueError(f"loss weight for {name} must be finite and >= 0, got {value}")
    out[name] = weight
  if not any(out.values()):
    raise ValueError(f"give at least one loss with a positive weight, got {spec!r}")
  return out
