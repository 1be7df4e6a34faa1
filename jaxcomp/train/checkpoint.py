"""The codec trainer's checkpoints: its TrainState in the loop kit's orbax layout, export.

    workdir/config.json                 the config of the run (arch, N, M, ... for export)
    workdir/checkpoints/<step>/state    {'params', 'opt_state', 'step'} (orbax StandardSave)
    workdir/checkpoints/<step>/data     {'next_example': int, 'seed': int, 'sha256': digests}

Saving, the integrity checks (sha256 per part, corrupt checkpoints skipped with a warning), the
workdir lock and the config record are the loop kit's (`jaxcomp.loop.checkpoint`); this module
adds what is the codec's: which fields a resume must keep, the TrainState's saved parts, reading
params back (`load_params`, for `export` and `init_from`) and the exported model.
"""

import os

import jax
import numpy as np

from jaxcomp.codec import export, models
from jaxcomp.loop import checkpoint as kit
from jaxcomp.loop.checkpoint import (  # pylint: disable=unused-import  (this module's API too)
    CHECKPOINTS, CONFIG_FILE, DIGESTS, check_tree, create_manager, finish, lock_workdir,
    read_config, tree_digest, tree_digests)

# Config fields a checkpoint's arrays depend on: a workdir is resumable only if they agree.
MODEL_FIELDS = ("arch", "N", "M")
# Fields a resume may change without --allow_config_change (logging, saving, evaluation, length).
RESUMABLE_CHANGES = ("num_train_steps", "log_every_steps", "checkpoint_every_steps",
                     "keep_checkpoints", "eval", "init_from")


def state_tree(state):
  """The saved part of a flax TrainState, as host numpy arrays."""
  return jax.device_get({"params": state.params, "opt_state": state.opt_state, "step": state.step})


def save(manager, state, data_state):
  """Starts an asynchronous save of (unreplicated) `state` and the data state at state.step.

  The data item also records the digests of the saved arrays (`kit.tree_digests`). A failure of
  an earlier asynchronous save surfaces here (or in `finish`) as a one-line UserError.
  """
  tree = state_tree(state)
  kit.save(manager, int(tree["step"]), tree, data_state)


def restore(manager, state):
  """(state, data_state) from the newest intact checkpoint, or None if there is none.

  Args:
    manager: from `create_manager`.
    state: a TrainState of the configured model: the structure and shapes to restore into.

  Raises:
    UserError: checkpoints exist but none is intact (or none fits this config's model).
  """
  restored = kit.restore(manager, state_tree(state))
  if restored is None:
    return None
  tree, data = restored
  state = state.replace(params=tree["params"], opt_state=tree["opt_state"],
                        step=np.asarray(tree["step"]))
  return state, data


def write_config(workdir, config, allow_changes=False):
  """Writes workdir/config.json, checking it against a previous run's there.

  A workdir whose run used another model (arch, N, M) is refused. Any other change of a training
  field (batch size, learning rate, seed, data, loss, ...; not RESUMABLE_CHANGES) is refused too
  unless `allow_changes`; then it is logged and the previous file is kept as
  config.<unix time>.json.
  """
  kit.write_config(workdir, config, fixed=MODEL_FIELDS, resumable=RESUMABLE_CHANGES,
                   allow_changes=allow_changes, fixed_label="a run of another model")


def load_params(workdir, step=None):
  """(params as numpy, step) of a workdir's checkpoint (default: the newest intact one).

  UserError if there is none, or the one asked for (or every one) is corrupt.
  """
  tree, step = kit.load_tree(workdir, ("params",), step)
  return tree["params"], step


def export_model(workdir, out, step=None):
  """Writes the exported model of a workdir's checkpoint (z quantiles refit). Returns the step."""

  config = read_config(workdir)
  params, step = load_params(workdir, step)
  saliency = config.get("saliency") or {}
  model = models.build(config["arch"], config["N"], config["M"],
                       saliency_input=bool(saliency.get("input")),
                       saliency_hyper=bool(saliency.get("hyper_input")),
                       adaptive_step=bool(config.get("adaptive_step", False)))
  variables = models.refit_quantiles({"params": jax.tree.map(np.asarray, params)})
  export.check_shapes(model, variables, workdir)
  export.save(out, config["arch"], config["N"], config["M"], jax.device_get(variables),
              source=f"{os.path.abspath(workdir)} step {step}",
              saliency=saliency if model.needs_saliency else None,
              adaptive_step=model.adaptive_step, training=training_record(config, step))
  return step


def training_record(config, step):
  """model.json's "training" entry: distortion, lambda, quality, parent model and steps.

  Args:
    config: a run's config dict (workdir/config.json).
    step: the exported checkpoint's step.

  Returns:
    {'distortion', 'lambda', 'quality', 'init_from', 'init_fingerprint', 'steps',
     'num_train_steps'}: init_from made absolute when it is a path that exists, with the parent
    exported model's fingerprint when it has one (None otherwise).
  """

  parent, fingerprint = config.get("init_from") or None, None
  if parent and os.path.exists(parent):
    parent = os.path.abspath(parent)
    path = os.path.join(parent, export.FINGERPRINT_FILE)
    if os.path.isfile(path):
      with open(path) as f:
        fingerprint = f.read().strip() or None
  return {"distortion": config.get("distortion", "mse"), "lambda": config.get("lmbda"),
          "quality": config.get("quality"), "init_from": parent,
          "init_fingerprint": fingerprint, "steps": int(step),
          "num_train_steps": config.get("num_train_steps")}
