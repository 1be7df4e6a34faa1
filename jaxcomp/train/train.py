"""The codec trainer: pmap data parallelism on the loop kit (jaxcomp.loop).

`train_and_evaluate(config, workdir)` runs (or resumes) one training run. Order of
initialization: an existing checkpoint in `workdir` (resume), else `config.init_from` (a training
workdir or an exported model: fine-tuning), else from scratch with `config.seed`.

Every local device gets an equal share of each host's slice of the global batch; gradients are
averaged over all devices of all hosts with `pmean` (`step.make_pmap_step`). Checkpoints,
TensorBoard scalars, progress lines, the NaN/Inf stop and preemption are the loop kit's
(`jaxcomp.loop`).
"""

import functools
import os

from absl import logging
from flax import jax_utils
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcomp import saliency as saliency_lib
from jaxcomp import zoo
from jaxcomp.codec import export
from jaxcomp.codec import models
from jaxcomp.errors import UserError
from jaxcomp.loop import driver, writers
from jaxcomp.loop.driver import DivergedError  # pylint: disable=unused-import  (this module's API)
from jaxcomp.metrics import registry
from jaxcomp.train import checkpoint, input_pipeline, step
from jaxcomp.train import distortion as distortion_lib

INIT_IMAGE_SIZE = (64, 64)  # the model is fully convolutional: any size gives the same params


# The train state's tree structure holds the model's `apply` and the optimizer, so runs in one
# process (tests, sweeps) reuse the compiled step only if these are the same objects: cached.
build_model = functools.lru_cache(maxsize=None)(models.build)


@functools.lru_cache(maxsize=None)
def _optimizer(learning_rate, boundaries, grad_clip_norm):
  schedule = optax.piecewise_constant_schedule(learning_rate, dict(boundaries))
  tx = optax.adam(schedule)
  if grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip_norm), tx)
  return tx, schedule


def create_optimizer(config):
  """(optax transform, learning-rate schedule): Adam, lr x 0.1 at each `lr_drop_fractions`."""
  boundaries = tuple((int(f * config.num_train_steps), 0.1) for f in config.lr_drop_fractions)
  return _optimizer(config.learning_rate, boundaries, config.grad_clip_norm)


@functools.lru_cache(maxsize=None)
def create_distortion(name):
  """(distortion(params, x, x_hat) -> [B], its params) for a config's `distortion` name.

  'mse' is 255^2 MSE (CompressAI's lambdas); any other name is a loss of the metric registry.
  UserError if the name is not registered (yet) or its weights are missing (not cached).
  Memoized: every run of one process with the same distortion gets the same function object, so
  the compiled step (`step.make_pmap_step`, cached per distortion object) is compiled once, e.g.
  for all of `jaxcomp calibrate`'s probes of one metric (lambda is a runtime argument).
  """
  if name == "mse":
    return step.mse_distortion, None

  metric = registry.loss(name)
  return metric.loss_fn, metric.params


def saliency_settings(config):
  """(model spec, alpha, input, hyper_input) of a config (defaults for configs without them)."""
  sal = config.get("saliency") or {}
  return (sal.get("model", "sdsp"), float(sal.get("alpha", 0.0)), bool(sal.get("input", False)),
          bool(sal.get("hyper_input", False)))


def create_objective(config, model):
  """(distortion, distortion_params, saliency, saliency_params) for a config and its model.

  A plain single distortion (no '+', no '@saliency') and a model without saliency input give
  `create_distortion`'s pair and no saliency, as before. Otherwise the distortion is a
  `distortion.Distortion` over the config's terms, and `saliency` is the saliency model's pure
  `apply` (its weights in `saliency_params`) whenever a term or the encoder needs the map.
  """

  spec, alpha, _, _ = saliency_settings(config)
  terms = distortion_lib.parse(config.distortion)
  plain = len(terms) == 1 and terms[0].weight == 1.0 and not terms[0].salient
  if plain and not model.needs_saliency:
    return (*create_distortion(terms[0].name), None, None)
  dist, dist_params = distortion_lib.create(config.distortion, alpha)
  if not (dist.needs_saliency or model.needs_saliency):
    return dist, dist_params, None, None
  saliency_model = saliency_lib.load(spec)
  return dist, dist_params, saliency_model.apply, saliency_model.params


def check_patch_size(distortion, distortion_params, patch_size):
  """UserError (one line, naming the minimum) if the distortion cannot take the training crops.

  Traces the distortion on [1, patch_size, patch_size, 3] shapes only (`jax.eval_shape`: no
  compute), so e.g. MS-SSIM on 64-pixel crops (it needs 161) stops the run at start instead of
  failing inside the first training step.
  """
  x = jax.ShapeDtypeStruct((1, patch_size, patch_size, 3), jnp.float32)
  extra = {}
  if getattr(distortion, "needs_saliency", False):
    extra["saliency"] = jax.ShapeDtypeStruct((1, patch_size, patch_size), jnp.float32)
  try:
    jax.eval_shape(lambda a, **s: distortion(distortion_params, a, a, **s), x, **extra)
  except ValueError as e:
    raise UserError(f"config.patch_size={patch_size} is too small for the distortion: {e}; "
                    "set --config.patch_size to at least that (a multiple of 64)") from None


def _widen_inputs(loaded, wanted, name):
  """A conv kernel [kh, kw, c_in, c_out] with fewer input channels than wanted, zero-extended.

  Fine-tuning a model with saliency inputs from one without: the new input channels start with
  zero weights, so the fine-tune starts exactly at the loaded model. None if not that case.
  """
  have, want = np.shape(loaded), tuple(wanted)
  if (len(have) == 4 and len(want) == 4 and have[:2] == want[:2] and have[3] == want[3]
      and have[2] < want[2] and name.endswith("['kernel']")):
    extra = np.zeros(have[:2] + (want[2] - have[2], have[3]), np.asarray(loaded).dtype)
    return np.concatenate([np.asarray(loaded), extra], axis=2)
  return None


def load_init_params(path, params):
  """Params from a training workdir or an exported model, checked against `params`' shapes.

  Kernels of the first g_a / h_a convolutions may have fewer input channels than `params` (an
  MSE model fine-tuned with saliency inputs): they are zero-extended (`_widen_inputs`). A
  quantization-step branch h_q the loaded model lacks keeps its initialization (which starts at
  step 1, i.e. at the loaded model).
  """

  path = zoo.resolve(path)
  if os.path.isfile(os.path.join(path, export.CONFIG_FILE)):
    loaded = export.load(path)[1]["params"]
  elif os.path.isdir(path):
    loaded = checkpoint.load_params(path)[0]
  else:
    raise UserError(f"init_from: {path} is neither a training workdir nor an exported model")
  have = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_flatten_with_path(loaded)[0]}
  leaves = []
  for key_path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
    name = jax.tree_util.keystr(key_path)
    loaded = have.get(name)
    if loaded is not None and np.shape(loaded) != np.shape(value):
      loaded = _widen_inputs(loaded, np.shape(value), name)
      if loaded is not None:
        logging.info("init_from: %s zero-extended to %s input channels", name,
                     np.shape(value)[2])
    if loaded is None and name not in have and name.startswith("['h_q']"):
      loaded = value  # a new adaptive-step branch: its own (neutral) initialization
    if loaded is None:
      raise UserError(f"init_from: {path} does not fit this config's model (at {name})")
    leaves.append(jnp.asarray(loaded))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves)


class Evaluator:
  """bpp and metrics of the model in coding mode (rounding, refit quantiles) on a fixed batch.

  The batch: `eval.batch_size` crops of `eval.patch_size` drawn with seed + 1 (no flips) from
  `eval.dir`, or from the training source when it is empty (its images smaller than the crop
  are skipped). Metrics named by `eval.metrics` ('all': every registered
  metric except prefix families); one that cannot load (e.g. weights not fetched) is skipped with
  a warning.
  """

  def __init__(self, config, model, train_source, saliency=None, saliency_params=None):
    size = config.eval.patch_size
    source = (input_pipeline.ImageFolder(config.eval.dir, size) if config.eval.dir
              else train_source)
    if isinstance(train_source, input_pipeline.SaliencySource) and config.eval.dir:
      source = input_pipeline.SaliencySource(source, saliency_lib.load(config.saliency.model))
    stream = input_pipeline.CropStream(source, size, config.seed + 1, flip=False)
    self.images = stream.batch(0, config.eval.batch_size)
    self.metrics = self._load_metrics(config.eval.metrics)
    self.saliency = None
    if self.images.shape[-1] == 5:  # crops of the whole images' saliency maps
      self.images, maps = self.images[..., :3], self.images[..., 3]
      self.saliency = maps if model.needs_saliency else None
    elif model.needs_saliency:
      self.saliency = jax.jit(saliency)(saliency_params, self.images)

    def code(params, x, s):
      variables = models.refit_quantiles({"params": params})
      out = model.apply(variables, x, training=False, saliency=s)
      bpp = models.rate_bits(out["likelihoods"]) / (x.shape[1] * x.shape[2])
      return jnp.mean(bpp), jnp.clip(out["x_hat"], 0.0, 1.0)

    self._code = jax.jit(code)

  @staticmethod
  def _load_metrics(names):
    if names == "all":
      names = [n for n in registry.names() if ":" not in n]
    else:
      names = [n for n in names.split(",") if n]
    metrics = {}
    for name in names:
      try:
        metric = registry.get(name)
      except UserError as e:
        logging.warning("validation metric %s skipped: %s", name, e)
        continue
      metrics[name] = (jax.jit(metric.compute), metric.params)
    return metrics

  def __call__(self, params):
    """{'bpp': float, metric name: float} on the validation batch."""
    bpp, x_hat = self._code(params, self.images, self.saliency)
    results = {"bpp": float(bpp)}
    for name, (compute, metric_params) in list(self.metrics.items()):
      try:
        results[name] = float(jnp.mean(compute(metric_params, self.images, x_hat)))
      except ValueError as e:  # e.g. crops smaller than the metric's minimum size
        logging.warning("validation metric %s dropped: %s", name, e)
        del self.metrics[name]
    return results


def validate_config(config):
  """UserError (one line) for config values no run can use."""
  positive = ("batch_size", "num_train_steps", "patch_size", "keep_checkpoints")
  for name in positive:
    value = config.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise UserError(f"config.{name} must be a whole number >= 1, got {value!r}")
  for name in ("log_every_steps", "checkpoint_every_steps"):
    value = config.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise UserError(f"config.{name} must be a whole number >= 0, got {value!r}")


def train_and_evaluate(config, workdir, allow_config_change=False):
  """Trains (or resumes) a run in `workdir`. Returns the final unreplicated TrainState.

  The workdir is locked for the run (`checkpoint.lock_workdir`); resuming with a config that
  differs in a training field is refused unless `allow_config_change`
  (`checkpoint.write_config`).
  """
  validate_config(config)
  lock = checkpoint.lock_workdir(workdir) if jax.process_index() == 0 else None
  try:
    return _run(config, workdir, allow_config_change)
  finally:
    if lock is not None:
      lock.close()


def _run(config, workdir, allow_config_change):
  """The body of `train_and_evaluate`, with the workdir locked."""
  devices = jax.local_devices()
  process_index, process_count = jax.process_index(), jax.process_count()
  logging.info("process %d of %d, %d local devices (%s), global batch %d", process_index,
               process_count, len(devices), devices[0].platform, config.batch_size)
  if config.batch_size % (process_count * len(devices)):
    raise UserError(f"batch_size {config.batch_size} is not divisible by {process_count} hosts x "
                    f"{len(devices)} local devices")
  source = input_pipeline.create_source(config.data, config.patch_size)
  logging.info("training data: %d images in %s", len(source), source.name)

  if config.dtype not in ("float32", "bfloat16"):
    raise UserError(f"dtype must be float32 or bfloat16, not {config.dtype!r}")
  _, _, saliency_input, saliency_hyper = saliency_settings(config)
  model = build_model(config.arch, config.N, config.M, ste=config.ste,
                      dtype=jnp.dtype(config.dtype), saliency_input=saliency_input,
                      saliency_hyper=saliency_hyper,
                      adaptive_step=bool(config.get("adaptive_step", False)))
  tx, schedule = create_optimizer(config)
  init_key, noise_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = step.create_state(model, init_key, image_size=INIT_IMAGE_SIZE, optimizer=tx)
  distortion, distortion_params, saliency, saliency_params = create_objective(config, model)
  check_patch_size(distortion, distortion_params, config.patch_size)
  if saliency is not None and config.saliency.get("scope", "image") == "image":
    source = input_pipeline.SaliencySource(source, saliency_lib.load(config.saliency.model))
  elif saliency is not None and config.saliency.scope != "crop":
    raise UserError(f"saliency.scope must be 'image' or 'crop', not {config.saliency.scope!r}")

  if process_index == 0:
    checkpoint.write_config(workdir, config, allow_config_change)
  manager = checkpoint.create_manager(workdir, config.keep_checkpoints)
  restored = checkpoint.restore(manager, state)
  if restored is not None:
    state, data_state = restored
    logging.info("resuming from step %d in %s", int(state.step), workdir)
  else:
    data_state = {"next_example": 0, "seed": config.seed}
    if config.get("init_required") and not config.init_from:
      raise UserError("this config fine-tunes a trained model: set --config.init_from to its "
                      "training workdir or exported model")
    if config.init_from:
      state = state.replace(params=load_init_params(config.init_from, state.params))
      logging.info("initialized from %s", config.init_from)
  first_step = int(state.step)

  stream = input_pipeline.CropStream(source, config.patch_size, data_state["seed"],
                                     config.data.flip)
  batches = input_pipeline.host_batches(stream, config.batch_size, data_state["next_example"],
                                        process_index, process_count, len(devices))
  evaluator = (Evaluator(config, model, source, saliency, saliency_params)
               if config.eval.every_steps and process_index == 0 else None)
  writer = writers.create(workdir if process_index == 0 else None)
  p_step = step.make_pmap_step(distortion, tuple(devices), saliency)
  r_state = step.replicate(state, devices)
  r_distortion_params = step.replicate(distortion_params, devices)
  r_saliency_params = step.replicate(saliency_params, devices)

  def train_step(step_count):
    nonlocal r_state
    del step_count
    firsts, images = next(batches)
    r_state, metrics = p_step(r_state, images, noise_key, config.lmbda, r_distortion_params,
                              firsts, r_saliency_params)
    data_state["next_example"] += config.batch_size
    return jax_utils.unreplicate(metrics)

  def report(means, step_count, speed):
    means = dict(means, psnr=float(10 * np.log10(1.0 / max(means["mse"], 1e-12))))
    lr = float(schedule(step_count - 1))
    line = (f"step {step_count}/{config.num_train_steps}: loss {means['loss']:.4f} bpp "
            f"{means['bpp']:.4f} {config.distortion} {means['distortion']:.4g} psnr "
            f"{means['psnr']:.2f} dB lr {lr:.2g} | {speed}")
    return line, dict(means, lr=lr)

  def save(step_count):
    del step_count
    checkpoint.save(manager, jax_utils.unreplicate(r_state), dict(data_state))

  def evaluate(step_count):
    results = evaluator(jax_utils.unreplicate(r_state).params)
    logging.info("step %d validation: %s", step_count,
                 " ".join(f"{k} {v:.4g}" for k, v in results.items()))
    return results

  loop = driver.Loop(first_step, config.num_train_steps, report, log=logging.info, writer=writer,
                     log_every=config.log_every_steps,
                     checkpoint_every=config.checkpoint_every_steps,
                     eval_every=config.eval.every_steps, save=save,
                     evaluate=evaluate if evaluator else None, finite=("loss", "grad_norm"),
                     last_saved=first_step if restored is not None else None)
  try:
    loop.run(train_step)
  finally:
    try:
      checkpoint.finish(manager)
    finally:
      batches.close()
      writer.close()
  return jax_utils.unreplicate(r_state)
