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

With a `workdir`: orbax checkpoints (params, Adam state, step) every `checkpoint_every` steps and
at the end, resumed from the newest when run again in the same workdir; TensorBoard scalars
(train/loss, train/2afc, train/lr, train/steps_per_s, eval/2afc); the run's settings in
workdir/perceptual_train.json (a rerun must agree on those that the checkpoints depend on).
"""

import contextlib
import dataclasses
import functools
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import jax_utils

from jaxcomp import progress
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.metrics import lpips
from jaxcomp.metrics import dpl_heads as heads_lib
from jaxcomp.perceptual import twoafc

STATS_BATCH = 8
AXIS = "batch"  # pmap axis over the local devices
DECAY_FRACTION = 0.5  # LPIPS: nepoch_decay / (nepoch + nepoch_decay) = 5 / 10
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 3
RUN_FILE = "perceptual_train.json"
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


@functools.lru_cache(maxsize=4)
def _epoch_permutation(n, seed, epoch):
  return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(n, batch, seed, step):
  """[batch] triplet indices of step `step` (0-based): consecutive slices of per-epoch
  permutations (seeded by (seed, epoch)), so no triplet repeats within an epoch."""
  positions = np.arange(step * batch, (step + 1) * batch)
  epochs = positions // n
  index = np.empty(batch, np.int64)
  for epoch in np.unique(epochs):
    at = epochs == epoch
    index[at] = _epoch_permutation(n, seed, int(epoch))[positions[at] % n]
  return index


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


def _create_manager(workdir):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), CHECKPOINTS),
      options=ocp.CheckpointManagerOptions(max_to_keep=KEEP_CHECKPOINTS, create=True,
                                           enable_async_checkpointing=True),
      item_names=("state",))


def _restore(manager, state):
  """The newest checkpoint restored into `state`'s structure, or None if there is none."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  step = manager.latest_step()
  if step is None:
    return None
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(state))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"checkpoint {step} in {manager.directory} does not fit this run "
                    f"({str(e).splitlines()[0][:200]}); use a new --workdir") from None
  return restored["state"]


def _save(manager, state):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  tree = jax.device_get(state)
  manager.save(int(tree["step"]), args=ocp.args.Composite(state=ocp.args.StandardSave(tree)),
               force=True)


def _write_run(workdir, run):
  """Writes workdir/perceptual_train.json; UserError if a previous run there differs."""
  path = os.path.join(workdir, RUN_FILE)
  if os.path.exists(path):
    try:
      with open(path) as f:
        previous = json.load(f)
    except (OSError, ValueError) as e:
      raise UserError(f"cannot read {path}: {e}") from None
    changed = [k for k in RESUME_FIELDS if previous.get(k) != run[k]]
    if changed:
      diff = ", ".join(f"{k} {previous.get(k)!r} vs {run[k]!r}" for k in changed)
      raise UserError(f"{workdir} holds another training run ({diff}); use a new --workdir")
  os.makedirs(workdir, exist_ok=True)
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(run, f, indent=1)


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
    if writer and int(state["step"]) == 0:
      writer.add_scalar("eval/2afc", val_init, 0)

  def evaluate(state_now):
    params_now = jax.device_get(state_now["params"])
    if train_backbone:
      stats0, stats1 = split_stats(params_now["vgg"], val)
    else:
      stats0, stats1 = val_stats
    return score_heads(params_now["heads"], stats0, stats1, val.judge)

  p_step = _pmap_step(b1, bool(train_backbone), devices)
  r_state = jax_utils.replicate(jax.device_get(state), devices, axis_name=AXIS)
  first = int(state["step"])
  per_device = -(-batch // len(devices))
  weight = np.zeros(per_device * len(devices), np.float32)
  weight[:batch] = 1.0 / batch
  weight = weight.reshape(len(devices), per_device)
  history, last_loss, val_score = [], math.nan, None
  since_step, since = first, time.perf_counter()
  steps = len(lrs)
  for s in range(first, steps):
    index = np.full(per_device * len(devices), 0, np.int64)
    index[:batch] = batch_indices(len(split), batch, seed, s)
    step_lr = lrs[s]
    r_state, metrics = p_step(r_state, _shard(host_inputs, index, len(devices)),
                              _shard(split.judge, index, len(devices)), weight,
                              step_lr)
    history.append(metrics)
    done = s + 1
    if done % log_every == 0 or done == steps:
      means = {k: float(np.mean([m[k][0] for m in jax.device_get(history)]))
               for k in history[-1]}
      history = []
      last_loss = means["loss"]
      if not math.isfinite(last_loss):
        raise UserError(f"the loss became NaN/Inf at step {done}; lower --lr")
      now = time.perf_counter()
      rate = (done - since_step) / max(now - since, 1e-9)
      since_step, since = done, now
      log(f"step {done}/{steps}  loss {means['loss']:.4f}  2AFC {means['2afc']:.4f}  "
          f"lr {step_lr:.3g}  {rate:.2f} steps/s  ETA {progress.format_duration((steps - done) / rate)}")
      if writer:
        for k, v in means.items():
          writer.add_scalar(f"train/{k}", v, done)
        writer.add_scalar("train/lr", step_lr, done)
        writer.add_scalar("train/steps_per_s", rate, done)
        writer.flush()
    if manager and (done % checkpoint_every == 0 or done == steps):
      _save(manager, _unreplicate(r_state))
    if val is not None and eval_every and done % eval_every == 0 and done != steps:
      val_score = evaluate(_unreplicate(r_state))
      log(f"step {done}: held-out 2AFC {val_score:.4f}")
      if writer:
        writer.add_scalar("eval/2afc", val_score, done)
        writer.flush()
  final = _unreplicate(r_state)
  if val is not None:
    val_score = evaluate(final)
    if writer:
      writer.add_scalar("eval/2afc", val_score, int(final["step"]))
      writer.flush()
  params = final["params"]
  return Result(heads=[np.asarray(w) for w in params["heads"]],
                backbone=params.get("vgg"), rank=params["rank"], loss=last_loss,
                step=int(final["step"]), val_2afc=val_score, val_2afc_init=val_init)


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
    workdir: folder for checkpoints, TensorBoard events and the run's settings, or None.
    checkpoint_every: steps between checkpoints (with workdir; one is also saved at the end).
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

  with contextlib.ExitStack() as stack:
    manager = writer = None
    if workdir:
      run = {"data": None, "init": None, **(run_info or {}), "triplets": n,
             "train_backbone": bool(train_backbone), "batch": batch, "seed": seed,
             "steps": steps, "lr": lr, "b1": b1, "decay_steps": decay_steps}
      _write_run(workdir, run)
      manager = _create_manager(workdir)
      stack.callback(manager.close)
      stack.callback(manager.wait_until_finished)  # callbacks run last-in first-out
      restored = _restore(manager, state)
      if restored is not None:
        state = restored
        log(f"resuming from step {int(state['step'])} in {workdir}")
      import tensorboardX  # pylint: disable=g-import-not-at-top

      writer = tensorboardX.SummaryWriter(workdir)
      stack.callback(writer.close)
    return _loop(state, split, val, vgg, init_heads, lrs, batch=batch, seed=seed, b1=b1,
                 train_backbone=train_backbone, devices=devices, manager=manager, writer=writer,
                 checkpoint_every=checkpoint_every, eval_every=eval_every, log_every=log_every,
                 log=log)


def train(vgg, split, init_heads, *, steps, batch=50, lr=1e-4, b1=0.5, seed=0, log=print,
          log_every=50, **kwargs):
  """`fit` with a frozen-backbone-style answer: (heads: 5 arrays [C_k], final mean loss).

  Keyword arguments other than those named are `fit`'s (decay_steps, workdir, devices, ...).
  """
  result = fit(vgg, split, init_heads, steps=steps, batch=batch, lr=lr, b1=b1, seed=seed,
               log=log, log_every=log_every, **kwargs)
  return result.heads, result.loss
