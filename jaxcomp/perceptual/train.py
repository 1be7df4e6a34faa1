"""Training LPIPS-style heads on 2AFC judgments with LPIPS's recipe (lpips/trainer.py).

Frozen VGG16 backbone; the heads (see heads.py) and the ranking network `Dist2Logit` are fitted
with binary cross-entropy between the network's probability that p1 is closer and the judge.
Adam (lr 1e-4, b1 0.5 by default); after every step the heads are clamped to >= 0. Because the
distance is linear in the heads, each triplet's per-channel statistics are computed once.
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcomp.errors import UserError
from jaxcomp.metrics import lpips
from jaxcomp.perceptual import heads as heads_lib
from jaxcomp.perceptual import twoafc

STATS_BATCH = 8


def split_stats(vgg, split, batch=STATS_BATCH):
  """(stats0, stats1): lists of 5 arrays [N, C_k] of `channel_stats` for (p0, ref), (p1, ref)."""
  if min(split.ref.shape[1:3]) < lpips.MIN_SIZE:
    raise UserError(f"patches are {split.ref.shape[2]}x{split.ref.shape[1]}; the VGG16 taps need "
                    f"at least {lpips.MIN_SIZE}x{lpips.MIN_SIZE}")
  n = len(split)
  out0, out1 = [], []
  for start in range(0, n, batch):
    index = np.minimum(np.arange(start, start + batch), n - 1)
    y = split.ref[index].astype(np.float32) / 255.0
    keep = min(batch, n - start)
    for p, out in ((split.p0, out0), (split.p1, out1)):
      stats = heads_lib.channel_stats(vgg, p[index].astype(np.float32) / 255.0, y)
      out.append([np.asarray(g)[:keep] for g in stats])
  join = lambda parts: [jnp.asarray(np.concatenate(g)) for g in zip(*parts)]
  return join(out0), join(out1)


def score_heads(heads, stats0, stats1, judge):
  """2AFC score of `heads` on precomputed split statistics (see `split_stats`)."""
  d0 = heads_lib.distance_from_stats(stats0, heads)
  d1 = heads_lib.distance_from_stats(stats1, heads)
  return twoafc.score_2afc(np.asarray(d0), np.asarray(d1), judge)


def _loss(params, stats0, stats1, judge):
  d0 = heads_lib.distance_from_stats(stats0, params["heads"])
  d1 = heads_lib.distance_from_stats(stats1, params["heads"])
  logit = heads_lib.Dist2Logit().apply(params["rank"], d0, d1)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logit, judge))


def train(vgg, split, init_heads, *, steps, batch=50, lr=1e-4, b1=0.5, seed=0, log=print,
          log_every=50):
  """Fits heads to `split`'s judgments; returns (heads: 5 arrays [C_k], final mean loss).

  Args:
    vgg: frozen VGG16 variables.
    split: a twoafc.Split (training triplets).
    init_heads: 5 arrays [C_k] to start from (heads.uniform_heads() or heads.lpips_heads()).
    steps: optimisation steps; each draws `batch` triplets (without replacement within a step).
    lr, b1: Adam learning rate and beta1.
    seed: PRNG seed for the ranking network's initialisation and the batches.
    log: callable taking a progress line.
    log_every: steps between progress lines.
  """
  stats0, stats1 = split_stats(vgg, split)
  judge = jnp.asarray(split.judge)
  n = len(split)
  batch = min(batch, n)
  key_init, key_batches = jax.random.split(jax.random.PRNGKey(seed))
  rank = heads_lib.Dist2Logit().init(key_init, jnp.zeros((1,)), jnp.zeros((1,)))
  params = {"heads": [jnp.asarray(w, jnp.float32) for w in init_heads], "rank": rank}
  optimizer = optax.adam(lr, b1=b1)
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, key):
    index = jax.random.permutation(key, n)[:batch]
    pick = lambda stats: [g[index] for g in stats]
    loss, grads = jax.value_and_grad(_loss)(params, pick(stats0), pick(stats1), judge[index])
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    params["heads"] = [jnp.maximum(w, 0.0) for w in params["heads"]]
    return params, opt_state, loss

  since, since_step, losses = time.perf_counter(), 0, []
  for i, key in enumerate(jax.random.split(key_batches, steps)):
    params, opt_state, loss = step(params, opt_state, key)
    losses.append(loss)
    if (i + 1) % log_every == 0 or i + 1 == steps:
      recent = float(jnp.mean(jnp.stack(losses[-log_every:])))
      now = time.perf_counter()
      rate = (i + 1 - since_step) / (now - since)
      since, since_step = now, i + 1
      log(f"step {i + 1}/{steps}  loss {recent:.4f}  {rate:.1f} steps/s")
  final = float(jnp.mean(jnp.stack(losses[-log_every:]))) if losses else float("nan")
  return [np.asarray(w) for w in params["heads"]], final
