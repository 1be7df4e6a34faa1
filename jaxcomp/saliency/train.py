"""Training the learned saliency network (learned.py) on a folder-pair saliency dataset.

Loss: losses.combined, w_kl KL(g || p) - w_cc CC(p, g) - w_nss NSS(p, f) with p the predicted
fixation density at S x S, g the ground-truth map, f the fixation map (NSS only for datasets with
fixations); default weights kl=1, cc=1, nss=0.1. Adam (optax) with a constant learning rate.

Batches: each epoch visits the training images in a fresh random order (numpy Generator seeded
with `seed`); the decoder is initialised from jax.random.PRNGKey(seed). No augmentation: saliency
is not flip-invariant in general (text, faces, the horizon), and with a frozen backbone the VGG16
taps of every image are computed once and kept in memory when they fit in `feature_cache_mb`
(else they are recomputed every step), which makes CPU training cheap.

With `train_backbone` the VGG16 weights are trained as well (same optimiser; taps recomputed every
step) and saved in the weights folder (backbone "included").

Progress lines every `log_every` steps (loss and its parts, steps/s, ETA); with `logdir`, the same
scalars go to TensorBoard (tensorboardX).
"""

import functools
import json
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcomp import progress
from jaxcomp.errors import UserError
from jaxcomp.saliency import learned
from jaxcomp.saliency import losses

FEATURE_BATCH = 8


def feature_bytes(config):
  """Bytes of the float32 taps of one image at the config's input size."""
  return sum(4 * int(np.prod(shape[1:])) for shape in learned._tap_shapes(config))  # pylint: disable=protected-access


def precompute_taps(backbone, images, config):
  """Taps of all images [N, S, S, 3] uint8 -> list of [N, h_k, w_k, C_k] float32 (device)."""
  config_json = json.dumps(config, sort_keys=True)
  fn = lambda b, x: _taps_u8(b, x, config_json=config_json)
  n = images.shape[0]
  parts = []
  for start in range(0, n, FEATURE_BATCH):
    index = np.minimum(np.arange(start, start + FEATURE_BATCH), n - 1)  # one compiled shape
    keep = min(FEATURE_BATCH, n - start)
    parts.append([t[:keep] for t in fn(backbone, jnp.asarray(images[index]))])
  return [jnp.concatenate(t) for t in zip(*parts)]


@functools.partial(jax.jit, static_argnames=("config_json",))
def _taps_u8(backbone, images, *, config_json):
  return learned.taps(backbone, images.astype(jnp.float32) / 255.0, json.loads(config_json))


def _batches(n, batch, rng):
  while True:
    order = rng.permutation(n)
    for start in range(0, n - batch + 1, batch):
      yield order[start:start + batch]


# inject_hyperparams: the learning rate lives in the optimiser state, so one compiled step serves
# every learning rate.
_OPTIMIZER = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)


def _loss(trainable, index, arrays, config, weights, cached, train_backbone):
  """(loss, parts) of one batch; `arrays` holds taps or images, maps, fixations, backbone."""
  s = config["input_size"]
  if cached:
    taps = [t[index] for t in arrays["source"]]
  else:
    backbone = trainable["backbone"] if train_backbone else arrays["backbone"]
    taps = learned.taps(backbone, arrays["source"][index].astype(jnp.float32) / 255.0, config)
    if not train_backbone:
      taps = [jax.lax.stop_gradient(t) for t in taps]
  log_p = learned.log_density(learned.logits_from_taps(trainable["decoder"], taps, config), s, s)
  fixations = arrays["fixations"]
  return losses.combined(log_p, arrays["maps"][index],
                         None if fixations is None else fixations[index], weights)


@functools.partial(jax.jit, static_argnames=("config_json", "weights_items", "cached",
                                             "train_backbone"))
def _step(trainable, opt_state, index, arrays, *, config_json, weights_items, cached,
          train_backbone):
  """One Adam step on the batch `index` -> (trainable, opt_state, loss, parts)."""
  config, weights = json.loads(config_json), dict(weights_items)
  (loss, parts), grads = jax.value_and_grad(_loss, has_aux=True)(
      trainable, index, arrays, config, weights, cached, train_backbone)
  updates, opt_state = _OPTIMIZER.update(grads, opt_state, trainable)
  return optax.apply_updates(trainable, updates), opt_state, loss, parts


def train(dataset, config, *, steps, batch=8, lr=1e-3, seed=0, weights=None,
          train_backbone=False, feature_cache_mb=2048, log=print, log_every=50, logdir=None):
  """Fits a learned saliency model to `dataset`; returns (params, record).

  Args:
    dataset: data.Dataset at config["input_size"] (images, maps, optional fixations).
    config: learned.default_config(...) (the backbone is built from it).
    steps: optimisation steps.
    batch: images per step (capped at the dataset size).
    lr: Adam learning rate.
    seed: seed of the decoder initialisation and the batch order.
    weights: {"kl": w, "cc": w, "nss": w} (default losses.DEFAULT_WEIGHTS).
    train_backbone: also train VGG16 (the saved config's backbone becomes "included").
    feature_cache_mb: memory allowed for precomputed taps (frozen backbone only).
    log: callable taking a progress line.
    log_every: steps between progress lines.
    logdir: TensorBoard folder, or None.

  Returns:
    (params {'backbone', 'decoder'}, record dict: final loss and parts, steps/s, feature cache).
  """
  if steps < 1 or batch < 1:
    raise UserError(f"steps and batch must be at least 1, got {steps} and {batch}")
  s = config["input_size"]
  if dataset.images.shape[1:3] != (s, s):
    raise ValueError(f"dataset is {dataset.images.shape[1:3]}, config input_size is {s}")
  weights = dict(weights or losses.DEFAULT_WEIGHTS)
  n = len(dataset)
  batch = min(batch, n)
  init_key = jax.random.PRNGKey(seed)
  params = learned.init(init_key, config)
  has_fix = dataset.fixations is not None
  maps = jnp.asarray(dataset.maps)
  fixations = jnp.asarray(dataset.fixations, jnp.float32) if has_fix else None
  cached = (not train_backbone
            and feature_bytes(config) * n <= feature_cache_mb * 2**20)
  features = None
  if cached:
    t0 = time.perf_counter()
    features = precompute_taps(params["backbone"], dataset.images, config)
    log(f"VGG16 taps of {n} images computed in {time.perf_counter() - t0:.1f}s "
        f"({feature_bytes(config) * n / 2**20:.0f} MiB, kept for training)")
  trainable = ({"decoder": params["decoder"], "backbone": params["backbone"]} if train_backbone
               else {"decoder": params["decoder"]})
  frozen_backbone = params["backbone"]
  opt_state = _OPTIMIZER.init(trainable)
  opt_state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
  arrays = {"source": features if cached else jnp.asarray(dataset.images), "maps": maps,
            "fixations": fixations, "backbone": None if train_backbone else frozen_backbone}
  static = {"config_json": json.dumps(config, sort_keys=True),
            "weights_items": tuple(sorted(weights.items())), "cached": cached,
            "train_backbone": train_backbone}

  writer = None
  if logdir:
    import tensorboardX  # pylint: disable=g-import-not-at-top
    writer = tensorboardX.SummaryWriter(logdir)
  rng = np.random.default_rng(seed)
  batches = _batches(n, batch, rng)
  history, first_loss, rate = [], None, math.nan
  since, since_step = None, 0
  try:
    for i in range(steps):
      trainable, opt_state, loss, parts = _step(trainable, opt_state, jnp.asarray(next(batches)),
                                                arrays, **static)
      history.append((loss, parts))
      if (i + 1) % log_every == 0 or i + 1 == steps:
        recent = jax.device_get(history[-log_every:])
        mean_loss = float(np.mean([l for l, _ in recent]))
        mean_parts = {k: float(np.mean([p[k] for _, p in recent])) for k in recent[-1][1]}
        if not math.isfinite(mean_loss):
          raise UserError(f"saliency training diverged (loss {mean_loss} by step {i + 1}); "
                          "lower --lr")
        if first_loss is None:
          first_loss = mean_loss
        now = time.perf_counter()
        if since is not None:
          rate = (i + 1 - since_step) / (now - since)
        since, since_step = now, i + 1
        speed = ("compiling" if math.isnan(rate)
                 else f"{rate:.1f} steps/s, ETA {progress.format_duration((steps - i - 1) / rate)}")
        nss_part = f" nss {mean_parts['nss']:.3f}" if has_fix else ""
        log(f"step {i + 1}/{steps}  loss {mean_loss:.4f} (kl {mean_parts['kl']:.4f} "
            f"cc {mean_parts['cc']:.3f}{nss_part})  {speed}")
        if writer:
          writer.add_scalar("train/loss", mean_loss, i + 1)
          for name, value in mean_parts.items():
            if name != "nss" or has_fix:
              writer.add_scalar(f"train/{name}", value, i + 1)
          if not math.isnan(rate):
            writer.add_scalar("train/steps_per_s", rate, i + 1)
          writer.flush()
  finally:
    if writer:
      writer.close()
  params = {"backbone": trainable["backbone"] if train_backbone else frozen_backbone,
            "decoder": trainable["decoder"]}
  record = {"first_loss": first_loss, "final_loss": mean_loss, "final_parts": mean_parts,
            "steps_per_s": None if math.isnan(rate) else rate, "feature_cache": cached}
  return params, record
