"""Training LPIPS-style heads on 2AFC judgments with LPIPS's recipe (lpips/trainer.py, train.py).

The heads (see heads.py) and the ranking network `Dist2Logit` are fitted with binary
cross-entropy between the network's probability that p1 is closer and the judge (the share of
humans preferring p1). Optionally (`train_backbone`, LPIPS's --train_trunk) the VGG16 backbone
is fine-tuned with them. Recipe: Adam (lr 1e-4, b1 0.5 by default), batch 50, the learning rate
constant and then decayed linearly towards 0 over the last `decay_steps` steps (LPIPS: nepoch = 5
epochs at lr, nepoch_decay = 5 decaying, so half the steps by default; `lr_schedule`); after every
step the heads are clamped to >= 0.

Frozen backbone: the distance is linear in the heads, so each triplet's per-channel statistics
are computed once (`split_stats`) and a step costs only the heads and the ranking network.
Fine-tuned backbone: the statistics depend on the trained VGG16, so they are computed per batch
from the patches (forward and backward through VGG16).

Batches: step s (0-based) takes the triplets at positions s*B ... s*B + B - 1 of a sequence of
seeded permutations of the split (one per epoch), so a batch depends only on (seed, s): a run
resumed from a checkpoint sees the same batches as one that was never stopped.

Devices: each step's batch is split across the local devices (pmap; padded with zero-weight
triplets when B is not a multiple of the device count) and the gradients summed with `psum`
over the per-device partial means, which equals the whole-batch mean gradient. One device runs
the same code. Single host.

With a `workdir`: orbax checkpoints (params, Adam state, step) every `checkpoint_every` steps,
at the end and on a preemption signal, resumed from the newest intact one when run again in the
same workdir; TensorBoard scalars (train/loss, train/2afc, train/lr, train/steps_per_s,
eval/2afc); the run's settings in workdir/config.json (a rerun must agree on those that the
checkpoints depend on). The loop (progress lines, writers, checkpoints with their integrity
checks, NaN/Inf stop, preemption) is the loop kit's (`jaxcomp.loop`).

    python -m jaxcomp.train --config=configs/dpl_heads.py --workdir=DIR \
        --config.data.dir=SPLIT [--config.val.dir=SPLIT] [--config.field=value ...]
    jaxcomp perceptual train --data SPLIT --out HEADS_DIR ...   (the same, by flags)
"""

import dataclasses
import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import jax_utils

from jaxcomp.errors import UserError
from jaxcomp.loop import checkpoint
from jaxcomp.loop import driver
from jaxcomp.loop import writers
from jaxcomp.loop.batches import batch_indices  # pylint: disable=unused-import  (this module's API)
from jaxcomp.metrics import lpips
from jaxcomp.metrics import dpl_heads as heads_lib
from jaxcomp.nets import vgg16
from jaxcomp.perceptual import twoafc

STATS_BATCH = 8
AXIS = "batch"  # pmap axis over the local devices
DECAY_FRACTION = 0.5  # LPIPS: nepoch_decay / (nepoch + nepoch_decay) = 5 / 10
KEEP_CHECKPOINTS = 3
HEADS_DIR = "heads"  # the heads folder in the workdir when config.out is empty
# Settings a workdir's checkpoints depend on: a rerun must agree on them to resume.
RESUME_FIELDS = ("data", "triplets", "init", "train_backbone", "batch", "seed")


def split_stats(vgg, split, batch=STATS_BATCH):
  """(stats0, stats1): lists of 5 arrays [N, C_k] of `channel_stats` for (p0, ref), (p1, ref)."""
  _check_size(split)
  n = len(split)
  out0, out1 = [], []
  for start in range(0, n, batch):
    index = np.minimum(np.arange(start, start + batch), n - 1)
    keep = min(batch, n - start)
    stats0, stats1 = _triplet_stats(vgg, *(a[index] for a in (split.ref, split.p0, split.p1)))
    out0.append([np.asarray(g)[:keep] for g in stats0])
    out1.append([np.asarray(g)[:keep] for g in stats1])
  join = lambda parts: [np.concatenate(g) for g in zip(*parts)]
  return join(out0), join(out1)


@jax.jit
def _triplet_stats(vgg, ref, p0, p1):
  """heads.triplet_stats of uint8 patches [B, H, W, 3]."""
  return heads_lib.triplet_stats(vgg, *(x.astype(jnp.float32) / 255.0 for x in (ref, p0, p1)))


def _check_size(split):
  if min(split.ref.shape[1:3]) < lpips.MIN_SIZE:
    raise UserError(f"patches are {split.ref.shape[2]}x{split.ref.shape[1]}; the VGG16 taps need "
                    f"at least {lpips.MIN_SIZE}x{lpips.MIN_SIZE}")


_distances = jax.jit(lambda stats0, stats1, heads: (heads_lib.distance_from_stats(stats0, heads),
                                                     heads_lib.distance_from_stats(stats1, heads)))


def score_heads(heads, stats0, stats1, judge):
  """2AFC score of `heads` on precomputed split statistics (see `split_stats`)."""
  d0, d1 = _distances(list(stats0), list(stats1), list(heads))
  return twoafc.score_2afc(np.asarray(d0), np.asarray(d1), judge)


def default_decay_steps(steps):
  """LPIPS's proportion: the last half of the steps decay (nepoch = nepoch_decay = 5)."""
  return int(steps * DECAY_FRACTION)


def lr_schedule(lr, steps, decay_steps):
  """optax schedule: `lr` for steps 0 ... steps - decay_steps - 1, then linear towards 0.

  Step t >= steps - decay_steps gets lr * (1 - (t - steps + decay_steps) / decay_steps), so the
  last step (t = steps - 1) runs at lr / decay_steps, as LPIPS's last epoch runs at
  lr / nepoch_decay. decay_steps = 0: constant.
  """
  if not 0 <= decay_steps <= steps:
    raise UserError(f"--decay-steps must be between 0 and --steps ({steps}), got {decay_steps}")
  return optax.linear_schedule(lr, 0.0, transition_steps=decay_steps,
                               transition_begin=steps - decay_steps)


def _agreement(d0, d1, judge):
  """Per-triplet 2AFC agreement (twoafc.score_2afc before the mean), [B]."""
  return ((d0 < d1) * (1.0 - judge) + (d1 < d0) * judge + (d0 == d1) * 0.5)


def _batch_loss(params, inputs, judge, weight, train_backbone):
  """(sum_i weight_i CE_i, sum_i weight_i agreement_i) of one device's share of a batch.

  Args:
    params: {'heads': 5 arrays [C_k], 'rank': Dist2Logit variables[, 'vgg': VGG16 variables]}.
    inputs: frozen backbone: (stats0, stats1), lists of 5 arrays [b, C_k];
      train_backbone: (ref, p0, p1) uint8 [b, H, W, 3].
    judge: [b] share of humans preferring p1.
    weight: [b] 1 / B for real triplets, 0 for padding (B = the whole batch).
    train_backbone: which form `inputs` has.
  """
  if train_backbone:
    ref, p0, p1 = (x.astype(jnp.float32) / 255.0 for x in inputs)
    stats0, stats1 = heads_lib.triplet_stats(params["vgg"], ref, p0, p1)
  else:
    stats0, stats1 = inputs
  d0 = heads_lib.distance_from_stats(stats0, params["heads"])
  d1 = heads_lib.distance_from_stats(stats1, params["heads"])
  logit = heads_lib.Dist2Logit().apply(params["rank"], d0, d1)
  loss = jnp.sum(weight * optax.sigmoid_binary_cross_entropy(logit, judge))
  return loss, jnp.sum(weight * _agreement(d0, d1, judge))


def _update(state, inputs, judge, weight, lr, *, b1, train_backbone):
  """One Adam step on one device's share; gradients and metrics summed over the devices."""
  grad_fn = jax.value_and_grad(_batch_loss, has_aux=True)
  (loss, agree), grads = grad_fn(state["params"], inputs, judge, weight, train_backbone)
  grads, loss, agree = jax.lax.psum((grads, loss, agree), AXIS)
  updates, opt_state = optax.scale_by_adam(b1=b1).update(grads, state["opt_state"])
  params = jax.tree.map(lambda p, u: p - lr * u, state["params"], updates)
  params["heads"] = [jnp.maximum(w, 0.0) for w in params["heads"]]
  new = {"params": params, "opt_state": opt_state, "step": state["step"] + 1}
  return new, {"loss": loss, "2afc": agree}


@functools.lru_cache(maxsize=8)
def _pmap_step(b1, train_backbone, devices):
  """`_update` pmapped over `devices` (a tuple); cached so reruns in a process share it.

  Takes (replicated state, inputs [D, b, ...], judge [D, b], weight [D, b], lr) and returns
  (replicated state, metrics [D] (equal on all devices)).
  """
  fn = functools.partial(_update, b1=b1, train_backbone=train_backbone)
  return jax.pmap(fn, axis_name=AXIS, in_axes=(0, 0, 0, 0, None), donate_argnums=(0,),
                  devices=devices)


def _shard(tree, index, devices_used):
  """Host arrays gathered at `index` [D * b] and reshaped to [D, b, ...]."""
  return jax.tree.map(lambda a: a[index].reshape((devices_used, -1) + a.shape[1:]), tree)


def _unreplicate(tree):
  """The first device's copy of a replicated tree, as host numpy arrays (any device count)."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data).reshape(x.shape[1:]),
                      tree)


@jax.jit
def _init_rank(key):
  return heads_lib.Dist2Logit().init(key, jnp.zeros((1,)), jnp.zeros((1,)))


@functools.partial(jax.jit, static_argnums=(1,))
def _init_adam(params, b1):
  return optax.scale_by_adam(b1=b1).init(params)


@dataclasses.dataclass
class Result:
  """What `fit` returns.

  Attributes:
    heads: 5 numpy arrays [C_k], non-negative.
    backbone: the fine-tuned VGG16 variables (numpy) with train_backbone, else None.
    rank: the ranking network's variables.
    loss: mean training loss over the last logging window (NaN if no step ran in this call).
    step: steps done in all (including those restored from a checkpoint).
    val_2afc: the held-out 2AFC score at the end, or None without `val`.
    val_2afc_init: the held-out 2AFC score of `init_heads` on the pretrained VGG16 (None without
      `val`).
  """

  heads: list
  backbone: object
  rank: object
  loss: float
  step: int
  val_2afc: object = None
  val_2afc_init: object = None


def _loop(state, split, val, vgg, init_heads, lrs, *, batch, seed, b1, train_backbone, devices,
          manager, writer, checkpoint_every, eval_every, log_every, log):
  """`fit`'s training loop from `state` (fresh or restored) to step len(lrs); a `Result`."""
  host_inputs = (split.ref, split.p0, split.p1) if train_backbone else split_stats(vgg, split)
  val_stats = split_stats(vgg, val) if val is not None else None
  val_init = None
  if val is not None:
    val_init = score_heads(init_heads, *val_stats, val.judge)
    log(f"held-out 2AFC of the initial heads: {val_init:.4f}")
    if int(state["step"]) == 0:
      writer.write_scalars(0, {"eval/2afc": val_init})

  p_step = _pmap_step(b1, bool(train_backbone), devices)
  r_state = jax_utils.replicate(jax.device_get(state), devices, axis_name=AXIS)
  per_device = -(-batch // len(devices))
  weight = np.zeros(per_device * len(devices), np.float32)
  weight[:batch] = 1.0 / batch
  weight = weight.reshape(len(devices), per_device)
  steps = len(lrs)
  scores = {}  # step -> held-out 2AFC

  def train_step(step_count):
    nonlocal r_state
    index = np.full(per_device * len(devices), 0, np.int64)
    index[:batch] = batch_indices(len(split), batch, seed, step_count - 1)
    r_state, metrics = p_step(r_state, _shard(host_inputs, index, len(devices)),
                              _shard(split.judge, index, len(devices)), weight,
                              lrs[step_count - 1])
    return {k: v[0] for k, v in metrics.items()}

  def report(means, step_count, speed):
    lr = float(lrs[step_count - 1])
    line = (f"step {step_count}/{steps}  loss {means['loss']:.4f}  2AFC {means['2afc']:.4f}  "
            f"lr {lr:.3g}  {speed}")
    return line, dict(means, lr=lr)

  def save(step_count):
    del step_count
    tree = _unreplicate(r_state)
    checkpoint.save(manager, int(tree["step"]), tree)

  def evaluate(step_count):
    params_now = jax.device_get(_unreplicate(r_state)["params"])
    stats0, stats1 = (split_stats(params_now["vgg"], val) if train_backbone else val_stats)
    scores[step_count] = score_heads(params_now["heads"], stats0, stats1, val.judge)
    log(f"step {step_count}: held-out 2AFC {scores[step_count]:.4f}")
    return {"2afc": scores[step_count]}

  first = int(state["step"])
  loop = driver.Loop(first, steps, report, log=log, writer=writer, log_every=log_every,
                     checkpoint_every=checkpoint_every, eval_every=eval_every,
                     save=save if manager else None,
                     evaluate=evaluate if val is not None else None,
                     last_saved=first if first else None,
                     hint="; lower the learning rate (--lr, config.learning_rate)",
                     clock_from_start=True)
  loop.run(train_step)
  final = _unreplicate(r_state)
  if val is not None and loop.step not in scores:  # no step ran (a finished workdir)
    evaluate(loop.step)
  params = final["params"]
  return Result(heads=[np.asarray(w) for w in params["heads"]],
                backbone=params.get("vgg"), rank=params["rank"],
                loss=loop.last_means["loss"] if loop.last_means else math.nan,
                step=int(final["step"]), val_2afc=scores.get(loop.step),
                val_2afc_init=val_init)


def fit(vgg, split, init_heads, *, steps, batch=50, lr=1e-4, b1=0.5, decay_steps=None, seed=0,
        train_backbone=False, val=None, workdir=None, checkpoint_every=1000, eval_every=0,
        log_every=50, log=print, devices=None, run_info=None):
  """Fits heads (and optionally the backbone) to `split`'s judgments, or resumes a workdir.

  Args:
    vgg: pretrained VGG16 variables (frozen, or the starting point with train_backbone).
    split: a twoafc.Split (training triplets; H, W >= 16).
    init_heads: 5 arrays [C_k] to start from (heads.uniform_heads() or heads.lpips_heads()).
    steps: total optimisation steps (a resumed run continues up to it).
    batch: triplets per step (at most len(split)), split across `devices`.
    lr, b1: Adam learning rate and beta1; decay_steps: the last steps over which the learning
      rate decays linearly towards 0 (`lr_schedule`; 0 keeps it constant; None: half of `steps`
      as LPIPS, `default_decay_steps`).
    seed: PRNG seed for the ranking network's initialisation and the batches.
    train_backbone: fine-tune the VGG16 parameters with the heads (features per batch).
    val: a held-out twoafc.Split scored at `eval_every` steps and at the end, or None.
    workdir: folder for checkpoints, TensorBoard events and the run's settings (config.json), or
      None; locked for the run (`loop.checkpoint.lock_workdir`).
    checkpoint_every: steps between checkpoints (with workdir; one is also saved at the end and
      on a preemption signal).
    eval_every: steps between held-out scores (0: at the end only).
    log_every: steps between progress lines.
    log: callable taking a progress line.
    devices: the devices to split each batch over (default: all local devices).
    run_info: extra JSON-able settings stored in the workdir (e.g. the data folder).

  Returns:
    a `Result`.
  """
  for part in (split,) if val is None else (split, val):
    _check_size(part)
  n = len(split)
  batch = min(batch, n)
  devices = tuple(devices or jax.local_devices())[:batch]
  if decay_steps is None:
    decay_steps = default_decay_steps(steps)
  lrs = np.broadcast_to(  # a constant schedule returns a scalar
      np.asarray(jax.jit(lr_schedule(lr, steps, decay_steps))(np.arange(steps)), np.float32),
      (steps,))

  params = {"heads": [np.asarray(w, np.float32) for w in init_heads],
            "rank": _init_rank(jax.random.PRNGKey(seed))}
  if train_backbone:
    params["vgg"] = jax.tree.map(lambda a: np.asarray(a, np.float32), vgg)
  state = {"params": params, "opt_state": _init_adam(params, b1), "step": np.int32(0)}

  manager = lock = None
  writer = writers.create(workdir)
  try:
    if workdir:
      lock = checkpoint.lock_workdir(workdir)
      run = {"data": None, "init": None, **(run_info or {}), "triplets": n,
             "train_backbone": bool(train_backbone), "batch": batch, "seed": seed,
             "steps": steps, "lr": lr, "b1": b1, "decay_steps": decay_steps}
      checkpoint.write_config(workdir, run, fixed=RESUME_FIELDS)
      manager = checkpoint.create_manager(workdir, KEEP_CHECKPOINTS)
      restored = checkpoint.restore(manager, state)
      if restored is not None:
        state = restored[0]
        log(f"resuming from step {int(state['step'])} in {workdir}")
    result = _loop(state, split, val, vgg, init_heads, lrs, batch=batch, seed=seed, b1=b1,
                   train_backbone=train_backbone, devices=devices, manager=manager,
                   writer=writer, checkpoint_every=checkpoint_every, eval_every=eval_every,
                   log_every=log_every, log=log)
  finally:
    try:
      if manager:
        checkpoint.finish(manager)
    finally:
      writer.close()
      if lock:
        lock.close()
  return result


def train(vgg, split, init_heads, *, steps, batch=50, lr=1e-4, b1=0.5, seed=0, log=print,
          log_every=50, **kwargs):
  """`fit` with a frozen-backbone-style answer: (heads: 5 arrays [C_k], final mean loss).

  Keyword arguments other than those named are `fit`'s (decay_steps, workdir, devices, ...).
  """
  result = fit(vgg, split, init_heads, steps=steps, batch=batch, lr=lr, b1=b1, seed=seed,
               log=log, log_every=log_every, **kwargs)
  return result.heads, result.loss


def check_config(config, names=None):
  """The decay steps of a dpl_heads config; UserError (one line) for values no run can use.

  `names` maps config fields to the flags they came from, so that errors name what the user
  typed (`jaxcomp perceptual train --lr 0` -> '--lr must be positive').
  """
  name = driver.flag_or_field(names or {})
  for field in ("num_train_steps", "batch_size", "log_every_steps", "checkpoint_every_steps"):
    if config[field] < 1:
      raise UserError(f"{name(field)} must be at least 1, got {config[field]}")
  if config.eval_every_steps < 0:
    raise UserError(f"{name('eval_every_steps')} must be at least 0, got "
                    f"{config.eval_every_steps}")
  if not config.learning_rate > 0:
    raise UserError(f"{name('learning_rate')} must be positive, got {config.learning_rate}")
  if config.init not in ("lpips", "uniform"):
    raise UserError(f"{name('init')} must be lpips or uniform, got {config.init!r}")
  if not config.data.dir:
    raise UserError(f"{name('data.dir')} is required (the training split)")
  steps = config.num_train_steps
  decay_steps = default_decay_steps(steps) if config.decay_steps is None else config.decay_steps
  if not 0 <= decay_steps <= steps:
    raise UserError(f"{name('decay_steps')} must be between 0 and {name('num_train_steps')} "
                    f"({steps}), got {decay_steps}")
  return decay_steps


def train_and_evaluate(config, workdir, names=None, log=print):
  """Trains (or resumes) a dpl_heads run in `workdir`; returns (Result, meta).

  Args:
    config: configs/dpl_heads.py's ConfigDict.
    workdir: run folder (checkpoints, TensorBoard, config.json), or None: nothing kept but the
      heads (config.out, then required).
    names: config field -> the flag it came from, for error messages (`check_config`).
    log: callable taking a line.

  Returns:
    (Result, meta): what `fit` returns and the meta dict saved with the heads in config.out
    (default workdir/heads), the folder of the metric `dpl:<folder>`; meta is None when a
    preemption signal stopped the run (nothing saved but the checkpoint).
  """
  decay_steps = check_config(config, names)
  name = driver.flag_or_field(names or {})
  out = config.out or (os.path.join(workdir, HEADS_DIR) if workdir else None)
  if not out:
    raise UserError(f"{name('out')} is required without a workdir (the heads folder)")
  init = heads_lib.lpips_heads() if config.init == "lpips" else heads_lib.uniform_heads()
  vgg = vgg16.load_params()
  split = twoafc.load_split(config.data.dir)
  val = twoafc.load_split(config.val.dir) if config.val.dir else None
  result = fit(
      vgg, split, init, steps=config.num_train_steps, batch=config.batch_size,
      lr=config.learning_rate, b1=config.b1, decay_steps=decay_steps, seed=config.seed,
      train_backbone=config.train_backbone, val=val, workdir=workdir,
      checkpoint_every=config.checkpoint_every_steps, eval_every=config.eval_every_steps,
      log_every=config.log_every_steps, log=log,
      run_info={"data": os.path.abspath(config.data.dir), "init": config.init})
  if result.step < config.num_train_steps:  # stopped by a preemption signal
    log(f"stopped at step {result.step} of {config.num_train_steps}: run again with the same "
        "workdir to resume (the heads are saved at the end)")
    return result, None
  meta = {"init": config.init, "steps": result.step, "batch": config.batch_size,
          "lr": config.learning_rate, "decay_steps": decay_steps, "seed": config.seed,
          "data": config.data.dir, "triplets": len(split),
          "train_backbone": config.train_backbone,
          "final_loss": result.loss if math.isfinite(result.loss) else None}  # NaN: no step
  if val is not None:
    before, after = result.val_2afc_init, result.val_2afc
    ceiling = twoafc.human_ceiling(val.judge)
    trained = "trained heads + backbone" if config.train_backbone else "trained"
    log(f"held-out 2AFC ({len(val)} triplets): {config.init} heads {before:.4f} -> {trained} "
        f"{after:.4f} (human ceiling {ceiling:.4f})")
    meta.update(val=config.val.dir, val_2afc_init=before, val_2afc_trained=after)
  heads_lib.save(out, result.heads, meta, backbone=result.backbone)
  log(f"heads saved to {out} (use as the metric dpl:{out})")
  return result, meta
