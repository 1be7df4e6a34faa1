"""Training checkpoints with orbax: train state, data-iterator state and the run's config.

    workdir/config.json                 the config of the run (arch, N, M, ... for export)
    workdir/checkpoints/<step>/state    {'params', 'opt_state', 'step'} (orbax StandardSave)
    workdir/checkpoints/<step>/data     {'next_example': int, 'seed': int} (JSON)

Saves are asynchronous (training continues while the previous step is written) and keep the
newest `keep` checkpoints; a checkpoint directory appears only once complete, so a run killed
mid-save resumes from the previous one.
"""

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxcomp.errors import UserError

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
# Config fields a checkpoint's arrays depend on: a workdir is resumable only if they agree.
MODEL_FIELDS = ("arch", "N", "M")


def create_manager(workdir, keep):
  """orbax CheckpointManager for workdir/checkpoints (async, newest `keep` kept)."""
  if not hasattr(ocp, "args"):
    raise UserError(f"training checkpoints need orbax-checkpoint >= 0.5 (this environment has "
                    f"{getattr(ocp, '__version__', 'an older one')}): "
                    "pip install -U orbax-checkpoint")
  return ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), CHECKPOINTS),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=True),
      item_names=("state", "data"))


def state_tree(state):
  """The saved part of a flax TrainState, as host numpy arrays."""
  return jax.device_get({"params": state.params, "opt_state": state.opt_state, "step": state.step})


def save(manager, state, data_state):
  """Starts an asynchronous save of (unreplicated) `state` and the data state at state.step."""
  tree = state_tree(state)
  manager.save(int(tree["step"]), args=ocp.args.Composite(
      state=ocp.args.StandardSave(tree), data=ocp.args.JsonSave(data_state)), force=True)


def restore(manager, state):
  """(state, data_state) from the newest checkpoint, or None if there is none.

  Args:
    manager: from `create_manager`.
    state: a TrainState of the configured model: the structure and shapes to restore into.

  Raises:
    UserError: the checkpoint does not fit the model (another arch or size).
  """
  step = manager.latest_step()
  if step is None:
    return None
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_tree(state))
  try:
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    raise UserError(f"checkpoint {step} in {manager.directory} does not fit this config's model "
                    f"({str(e).splitlines()[0][:200]})") from None
  tree = restored["state"]
  state = state.replace(params=tree["params"], opt_state=tree["opt_state"],
                        step=np.asarray(tree["step"]))
  return state, restored["data"]


def write_config(workdir, config):
  """Writes workdir/config.json; UserError if a previous run there used another model."""
  path = os.path.join(workdir, CONFIG_FILE)
  previous = read_config(workdir) if os.path.exists(path) else None
  if previous is not None:
    changed = [k for k in MODEL_FIELDS if previous.get(k) != config[k]]
    if changed:
      before = ", ".join(f"{k}={previous.get(k)!r}" for k in changed)
      now = ", ".join(f"{k}={config[k]!r}" for k in changed)
      raise UserError(f"{workdir} holds a run of another model ({before} vs {now}); use a new "
                      "--workdir")
  os.makedirs(workdir, exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, path)


def read_config(workdir):
  """The config dict a run wrote to workdir/config.json."""
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise UserError(f"{workdir} is not a training workdir (no {CONFIG_FILE})") from None
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path}: {e}") from None


def load_params(workdir, step=None):
  """(params as numpy, step) of a workdir's checkpoint (default: the newest); UserError if none."""
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINTS)
  if not os.path.isdir(directory):
    raise UserError(f"no checkpoint in {workdir}")
  with ocp.CheckpointManager(directory, item_names=("state", "data")) as manager:
    steps = manager.all_steps()
    if not steps:
      raise UserError(f"no checkpoint in {workdir}")
    if step is None:
      step = max(steps)
    elif step not in steps:
      raise UserError(f"no checkpoint of step {step} in {workdir} (have {sorted(steps)})")
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
  return restored["state"]["params"], step


def export_model(workdir, out, step=None):
  """Writes the exported model of a workdir's checkpoint (z quantiles refit). Returns the step."""
  from jaxcomp.codec import export, models  # pylint: disable=g-import-not-at-top

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
              adaptive_step=model.adaptive_step)
  return step
