"""Training the learned saliency network (learned.py) on a folder-pair saliency dataset.

    python -m jaxcomp.train --config=configs/saliency_net.py --workdir=DIR \
        --config.data.images=IMAGES --config.data.maps=MAPS [--config.field=value ...]
    jaxcomp saliency train --images IMAGES --maps MAPS --out WEIGHTS_DIR ...   (same, by flags)

`train_and_evaluate(config, workdir)` reads the data, fits (`fit`, resumable from the orbax
checkpoints in `workdir`), scores the held-out set if any and saves a weights folder usable as
`learned:DIR`. The loop (progress lines, TensorBoard scalars, checkpoints, NaN/Inf stop,
preemption) is the loop kit's (`jaxcomp.loop`).

Loss: losses.combined, w_kl KL(g || p) - w_cc CC(p, g) - w_nss NSS(p, f) with p the predicted
fixation density at S x S, g the ground-truth map, f the fixation map (NSS only for datasets with
fixations); default weights kl=1, cc=1, nss=0.1. Adam (optax) with a constant learning rate.

Batches: each epoch visits the training images in a fresh random order seeded by (seed, epoch),
so a resumed run sees the batches of an uninterrupted one (`loop.batches`); the decoder is
initialised from jax.random.PRNGKey(seed). No augmentation: saliency
is not flip-invariant in general (text, faces, the horizon), and with a frozen backbone the VGG16
taps of every image are computed once and kept in memory when they fit in `feature_cache_mb`
(else they are recomputed every step), which makes CPU training cheap.

With `train_backbone` the VGG16 weights are trained as well (same optimiser; taps recomputed every
step) and saved in the weights folder (backbone "included").

Progress lines every `log_every` steps (loss and its parts, steps/s, ETA); the same scalars go
to TensorBoard in `logdir` (default: the workdir).
"""

import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcomp import saliency as saliency_lib
from jaxcomp.errors import UserError
from jaxcomp.loop import batches as batches_lib
from jaxcomp.loop import checkpoint
from jaxcomp.loop import driver
from jaxcomp.loop import writers
from jaxcomp.nets import weights as weights_lib
from jaxcomp.saliency import data
from jaxcomp.saliency import evaluation
from jaxcomp.saliency import learned
from jaxcomp.saliency import losses

FEATURE_BATCH = 8
WEIGHTS_DIR = "weights"  # the weights folder in the workdir when config.out is empty
# Settings a workdir's checkpoints depend on: a rerun must agree on them to resume.
RESUME_FIELDS = ("images", "maps", "fixations", "model", "train_backbone", "batch", "seed",
                 "loss_weights")


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


def fit(dataset, config, *, steps, batch=8, lr=1e-3, seed=0, weights=None, train_backbone=False,
        feature_cache_mb=2048, log=print, log_every=50, workdir=None, logdir=None,
        checkpoint_every=500, keep_checkpoints=3, run_info=None):
  """Fits a learned saliency model to `dataset`, or resumes a workdir; returns (params, record).

  Args:
    dataset: data.Dataset at config["input_size"] (images, maps, optional fixations).
    config: learned.default_config(...) (the backbone is built from it).
    steps: optimisation steps in all (a resumed run continues up to it).
    batch: images per step (capped at the dataset size).
    lr: Adam learning rate.
    seed: seed of the decoder initialisation and the batch order.
    weights: {"kl": w, "cc": w, "nss": w} (default losses.DEFAULT_WEIGHTS).
    train_backbone: also train VGG16 (the saved config's backbone becomes "included").
    feature_cache_mb: memory allowed for precomputed taps (frozen backbone only).
    log: callable taking a progress line.
    log_every: steps between progress lines.
    workdir: folder for config.json, orbax checkpoints and TensorBoard events (resumed when it
      holds checkpoints of the same run), or None (nothing written).
    logdir: TensorBoard folder instead of the workdir, or None.
    checkpoint_every, keep_checkpoints: with a workdir, steps between checkpoints (one is also
      saved at the end and on a preemption signal) and how many are kept.
    run_info: extra JSON-able settings recorded in workdir/config.json (e.g. the data folders).

  Returns:
    (params {'backbone', 'decoder'}, record dict: first and final loss and parts of this call's
    logging windows, steps/s, feature cache, steps done in all).
  """
  if steps < 1 or batch < 1:
    raise UserError(f"steps and batch must be at least 1, got {steps} and {batch}")
  s = config["input_size"]
  if dataset.images.shape[1:3] != (s, s):
    raise ValueError(f"dataset is {dataset.images.shape[1:3]}, config input_size is {s}")
  weights = dict(weights or losses.DEFAULT_WEIGHTS)
  n = len(dataset)
  batch = min(batch, n)
  params = learned.init(jax.random.PRNGKey(seed), config)
  has_fix = dataset.fixations is not None
  cached = not train_backbone and feature_bytes(config) * n <= feature_cache_mb * 2**20
  trainable = ({"decoder": params["decoder"], "backbone": params["backbone"]} if train_backbone
               else {"decoder": params["decoder"]})
  state = {"trainable": trainable, "opt_state": _OPTIMIZER.init(trainable),
           "step": np.int32(0)}
  manager = lock = None
  writer = writers.create(logdir or workdir)
  try:
    if workdir:
      lock = checkpoint.lock_workdir(workdir)
      run = {**(run_info or {}), "model": config, "train_backbone": bool(train_backbone),
             "batch": batch, "seed": seed, "loss_weights": weights, "steps": steps, "lr": lr}
      checkpoint.write_config(workdir, {"images": None, "maps": None, "fixations": None, **run},
                              fixed=RESUME_FIELDS)
      manager = checkpoint.create_manager(workdir, keep_checkpoints)
      restored = checkpoint.restore(manager, state)
      if restored is not None:
        state = restored[0]
        log(f"resuming from step {int(state['step'])} in {workdir}")
    state["opt_state"].hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
    features = None
    if cached:
      t0 = time.perf_counter()
      features = precompute_taps(params["backbone"], dataset.images, config)
      log(f"VGG16 taps of {n} images computed in {time.perf_counter() - t0:.1f}s "
          f"({feature_bytes(config) * n / 2**20:.0f} MiB, kept for training)")
    arrays = {"source": features if cached else jnp.asarray(dataset.images),
              "maps": jnp.asarray(dataset.maps),
              "fixations": jnp.asarray(dataset.fixations, jnp.float32) if has_fix else None,
              "backbone": None if train_backbone else params["backbone"]}
    static = {"config_json": json.dumps(config, sort_keys=True),
              "weights_items": tuple(sorted(weights.items())), "cached": cached,
              "train_backbone": train_backbone}
    windows = []  # the means of each progress line

    def train_step(step_count):
      index = jnp.asarray(batches_lib.batch_indices(n, batch, seed, step_count - 1))
      state["trainable"], state["opt_state"], loss, parts = _step(
          state["trainable"], state["opt_state"], index, arrays, **static)
      return {"loss": loss, **parts}

    def report(means, step_count, speed):
      windows.append(means)
      nss_part = f" nss {means['nss']:.3f}" if has_fix else ""
      line = (f"step {step_count}/{steps}  loss {means['loss']:.4f} (kl {means['kl']:.4f} "
              f"cc {means['cc']:.3f}{nss_part})  {speed}")
      return line, {k: v for k, v in means.items() if k != "nss" or has_fix}

    def save(step_count):
      checkpoint.save(manager, step_count, dict(jax.device_get(state), step=np.int32(step_count)))

    first = int(state["step"])
    loop = driver.Loop(first, steps, report, log=log, writer=writer, log_every=log_every,
                       checkpoint_every=checkpoint_every, save=save if manager else None,
                       last_saved=first if first else None,
                       hint="; lower the learning rate (--lr, config.learning_rate)")
    state["step"] = np.int32(loop.run(train_step))
  finally:
    if manager:
      checkpoint.finish(manager)
    writer.close()
    if lock:
      lock.close()
  trainable = state["trainable"]
  params = {"backbone": trainable["backbone"] if train_backbone else params["backbone"],
            "decoder": trainable["decoder"]}
  record = {"first_loss": windows[0]["loss"] if windows else None,
            "final_loss": windows[-1]["loss"] if windows else None,
            "final_parts": ({k: v for k, v in windows[-1].items() if k != "loss"}
                            if windows else None),
            "steps_per_s": loop.last_rate, "feature_cache": cached,
            "steps": int(state["step"])}
  return params, record


def check_config(config, names=None):
  """(loss weights) of a saliency_net config; UserError (one line) for values no run can use.

  `names` maps config fields to the flags they came from, so that errors name what the user
  typed (`jaxcomp saliency train --steps 0` -> '--steps must be at least 1').
  """
  name = driver.flag_or_field(names or {})
  for field in ("num_train_steps", "batch_size", "width", "log_every_steps",
                "checkpoint_every_steps", "keep_checkpoints"):
    if config[field] < 1:
      raise UserError(f"{name(field)} must be at least 1, got {config[field]}")
  if config.input_size < learned.MIN_INPUT_SIZE:
    raise UserError(f"{name('input_size')} must be at least {learned.MIN_INPUT_SIZE}, got "
                    f"{config.input_size}")
  if not config.learning_rate > 0:
    raise UserError(f"{name('learning_rate')} must be positive, got {config.learning_rate}")
  if config.backbone not in ("vgg16", "random"):
    raise UserError(f"{name('backbone')} must be vgg16 or random, got {config.backbone!r}")
  if not config.data.images or not config.data.maps:
    raise UserError(f"{name('data.images')} and {name('data.maps')} are required (the training "
                    "images and their saliency maps)")
  if bool(config.val.images) != bool(config.val.maps):
    raise UserError(f"{name('val.images')} and {name('val.maps')} go together")
  if config.val.fixations and not config.val.images:
    raise UserError(f"{name('val.fixations')} needs {name('val.images')} and {name('val.maps')}")
  try:
    weights = losses.parse_weights(config.loss)
  except ValueError as e:
    raise UserError(f"{name('loss')}: {e}") from e
  if weights.get("nss") and not config.data.fixations:
    weights.pop("nss")
    if not any(weights.values()):
      raise UserError(f"{name('loss')}: the NSS loss needs {name('data.fixations')}")
  return weights


def train_and_evaluate(config, workdir, names=None, log=print):
  """Trains (or resumes) a saliency_net run in `workdir`; returns (params, meta).

  Args:
    config: configs/saliency_net.py's ConfigDict (data, model, optimisation, logging fields).
    workdir: run folder (checkpoints, TensorBoard, config.json), or None: nothing kept but the
      weights (config.out, then required).
    names: config field -> the flag it came from, for error messages (`check_config`).
    log: callable taking a line.

  Returns:
    (params, meta): the trained params and the meta dict saved with them in the weights folder
    (config.out, default workdir/weights); meta is None when a preemption signal stopped the
    run (nothing saved but the checkpoint).
  """
  weights = check_config(config, names)
  name = driver.flag_or_field(names or {})
  out = config.out or (os.path.join(workdir, WEIGHTS_DIR) if workdir else None)
  if not out:
    raise UserError(f"{name('out')} is required without a workdir (the weights folder)")
  if "nss" not in weights and losses.parse_weights(config.loss).get("nss"):
    log(f"note: no {name('data.fixations')}, so the NSS loss term is off")
  backbone = "vgg16" if config.backbone == "vgg16" else f"random:{config.seed}"
  model_config = learned.default_config(input_size=config.input_size, backbone=backbone,
                                        width=config.width)
  fixations = config.data.fixations or None
  samples = data.pair_files(config.data.images, config.data.maps, fixations)
  val_samples = (data.pair_files(config.val.images, config.val.maps, config.val.fixations or None)
                 if config.val.images else None)
  if config.backbone == "vgg16":
    weights_lib.load("vgg16")  # fail before reading the data if the weights are missing
  dataset = data.load_resized(samples, config.input_size, log=log)
  log(f"training on {len(dataset)} images at {config.input_size}x{config.input_size}"
      f"{' with fixations' if dataset.fixations is not None else ''}; loss "
      + " ".join(f"{k}={v:g}" for k, v in weights.items()))
  folders = {"images": config.data.images, "maps": config.data.maps, "fixations": fixations}
  params, record = fit(
      dataset, model_config, steps=config.num_train_steps, batch=config.batch_size,
      lr=config.learning_rate, seed=config.seed, weights=weights,
      train_backbone=config.train_backbone, feature_cache_mb=config.feature_cache_mb, log=log,
      log_every=config.log_every_steps, workdir=workdir, logdir=config.logdir or None,
      checkpoint_every=config.checkpoint_every_steps, keep_checkpoints=config.keep_checkpoints,
      run_info={k: os.path.abspath(v) if v else None for k, v in folders.items()})
  if record["steps"] < config.num_train_steps:  # stopped by a preemption signal
    log(f"stopped at step {record['steps']} of {config.num_train_steps}: run again with the "
        f"same workdir to resume (the weights are saved at the end)")
    return params, None
  if config.train_backbone:
    model_config = dict(model_config, backbone="included")
  meta = {**folders, "n_train": len(dataset), "steps": record.pop("steps"),
          "batch": config.batch_size, "lr": config.learning_rate, "seed": config.seed,
          "loss_weights": weights, **record}
  if val_samples is not None:
    model = saliency_lib.SaliencyModel("trained", params, learned.make_apply(model_config))
    results = evaluation.evaluate_models([model], val_samples)
    for line in evaluation.format_table(results, len(val_samples), bool(config.val.fixations)):
      log("held-out " + line if line.startswith("model") else "         " + line)
    meta.update(val_images=config.val.images, val_maps=config.val.maps, n_val=len(val_samples),
                val_metrics=results["trained"])
  learned.save(out, params, model_config, meta)
  log(f"saliency weights saved to {out} (use as the saliency model learned:{out})")
  return params, meta
