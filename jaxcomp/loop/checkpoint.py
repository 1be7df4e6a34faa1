"""Training checkpoints with orbax, the workdir lock and the run's config record.

    workdir/config.json                 the run's config (checked when a run resumes)
    workdir/checkpoints/<step>/state    a dict of parts, e.g. {'params', 'opt_state', 'step'}
    workdir/checkpoints/<step>/data     JSON: the trainer's data-iterator state and the digests

Saves are asynchronous (training continues while the previous step is written) and keep the
newest `keep` checkpoints; a checkpoint directory appears only once complete, so a run killed
mid-save resumes from the previous one.

Integrity: every save records, in its `data` item, a sha256 of each saved part (names, dtypes,
shapes and bytes of the arrays, `tree_digests`). A restore checks that the arrays restore at all,
have the target's shapes, are finite, and match those digests; a checkpoint that fails is skipped
with a warning naming it (and moved to workdir/corrupt_checkpoints) and the newest intact one is
used; when none is intact the run stops with one line. `load_tree` reads parts the same way
(exports, fine-tuning).
"""

import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import time

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxcomp.errors import UserError

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
LOCK_FILE = ".lock"
DIGESTS = "sha256"  # key of the digests in a checkpoint's data item
ITEMS = ("state", "data")


class _DropOrbaxInfo:
  """Log filter: orbax's INFO lines (several per save) would bury the progress lines, and its
  error records carry a traceback each (four for one failed save); they keep one line each, and
  the failure itself ends the run as one `error: ...` line (`checkpoint.finish`)."""

  def filter(self, record):
    if "/orbax/" not in record.pathname:
      return True
    record.exc_info, record.exc_text = None, None
    return record.levelno > logging.converter.STANDARD_INFO


def quiet_library_logs():
  """Keeps orbax's warnings and errors in absl's log, drops its INFO chatter."""
  logging.get_absl_handler().addFilter(_DropOrbaxInfo())


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
      item_names=ITEMS)


def tree_digest(tree):
  """Hex sha256 of a pytree of arrays: every leaf's path, dtype, shape and bytes, in tree order."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    a = np.asarray(leaf)
    if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
      a = a.astype(np.int64)  # counters restore as int32 or int64 depending on the target
    a = a.astype(a.dtype.newbyteorder("<"))
    h.update(json.dumps([jax.tree_util.keystr(path), a.dtype.str, list(a.shape)]).encode())
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def tree_digests(tree):
  """{part: tree_digest} of the saved parts of a {part: pytree} dict."""
  return {part: tree_digest(tree[part]) for part in sorted(tree)}


def save(manager, step, tree, data_state=None):
  """Starts an asynchronous save of `tree` ({part: pytree of host arrays}) at `step`.

  The data item holds `data_state` (a JSON-able dict) and the digests of the saved parts
  (`tree_digests`). A failure of an earlier asynchronous save surfaces here (or in `finish`) as
  a one-line UserError.
  """
  data = dict(data_state or {}, **{DIGESTS: tree_digests(tree)})
  try:
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(tree), data=ocp.args.JsonSave(data)), force=True)
  except Exception as e:  # pylint: disable=broad-except  (orbax raises many types)
    raise UserError(f"cannot write checkpoints in {manager.directory} (a save failed by step "
                    f"{step}): {_write_reason(e)}") from None


def finish(manager):
  """Waits for pending saves and closes the manager; UserError (one line) if a save failed."""
  try:
    manager.wait_until_finished()
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"cannot write checkpoints in {manager.directory}: {_write_reason(e)}"
                    ) from None
  finally:
    try:
      manager.close()
    except Exception:  # pylint: disable=broad-except  (already reported above)
      pass


def _first_line(e):
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  return (lines[-1] if lines else type(e).__name__)[:300]


def _write_reason(e):
  """The operating-system reason of a failed orbax/tensorstore write (e.g. 'File too large'),
  else the error's last line: never tensorstore's internal temporary paths."""
  if isinstance(e, OSError) and e.errno:
    return os.strerror(e.errno)
  code = re.search(r"os_error_code='(\d+)'", str(e))
  if code:
    return os.strerror(int(code.group(1)))
  return _first_line(e)


def _drop_closed_loop_noise(unraisable):
  """sys.unraisablehook that drops 'Event loop is closed' from orbax's writer threads.

  After a failed asynchronous save (or a failed restore of a corrupt checkpoint), tensorstore's
  callbacks report into an asyncio loop orbax has already closed; each becomes an 'Exception
  ignored' traceback (about 150 for one failed save). The real error is reported once, as a
  one-line UserError; these are noise. Every other unraisable exception goes to the previous hook.
  """
  if (isinstance(unraisable.exc_value, RuntimeError)
      and str(unraisable.exc_value) == "Event loop is closed"):
    return
  _previous_unraisablehook(unraisable)


_previous_unraisablehook = sys.unraisablehook
sys.unraisablehook = _drop_closed_loop_noise


def check_tree(tree, digests, parts, target=None):
  """None if `tree`'s `parts` are finite, shaped like `target` and match `digests`, else why not.

  Args:
    tree: a restored {part: pytree} (numpy or jax arrays).
    digests: the data item's digests, or None for a checkpoint written before they were recorded.
    parts: the parts to check, e.g. ('params',).
    target: optional {part: tree of ShapeDtypeStructs} the parts must match.
  """
  for part in parts:
    if part not in tree:
      return f"no {part}"
    leaves = jax.tree_util.tree_flatten_with_path(tree[part])[0]
    if target is not None:
      want = [tuple(np.shape(x)) for x in jax.tree.leaves(target[part])]
      if [tuple(np.shape(v)) for _, v in leaves] != want:
        return f"{part} shapes differ from the model's"
    for path, leaf in leaves:
      a = np.asarray(leaf)
      if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        return f"non-finite values in {part}{jax.tree_util.keystr(path)}"
    if digests is not None and digests.get(part) != tree_digest(tree[part]):
      return f"{part} do not match the checksum written at save"
  return None


def _intact(manager, steps, restore_one, parts, target=None):
  """(step, restored) of the newest intact checkpoint among `steps`; warns about the bad ones.

  restore_one(step) -> {'state': tree, 'data': dict or None}. UserError if none is intact.
  """
  bad = []
  for step in sorted(steps, reverse=True):
    try:
      restored = restore_one(step)
      data = restored.get("data")
      digests = data.get(DIGESTS) if isinstance(data, dict) else None
      reason = check_tree(restored["state"], digests, parts, target)
    except Exception as e:  # pylint: disable=broad-except  (corrupt files raise many types)
      reason = f"unreadable ({_first_line(e)[:200]})"
    if reason is None:
      if bad:
        _warn(f"using checkpoint {step}, the newest intact one in {manager.directory}")
      return step, restored
    where = os.path.join(str(manager.directory), str(step))
    _warn(f"checkpoint {where} is corrupt ({reason}); skipping it")
    bad.append(f"{step} ({reason})")
  raise UserError(f"no intact checkpoint in {manager.directory}: {'; '.join(bad)}")


def _warn(message):
  """One `warning: ...` line on stderr (also in the absl log at INFO level, for log files)."""
  logging.info("warning: %s", message)
  sys.stderr.write(f"warning: {message}\n")


def _set_aside(manager, steps):
  """Moves corrupt step directories out of the manager's way (to <workdir>/corrupt_checkpoints)."""
  directory = str(manager.directory)
  aside = os.path.join(os.path.dirname(directory), "corrupt_checkpoints")
  for step in steps:
    source = os.path.join(directory, str(step))
    if os.path.isdir(source):
      os.makedirs(aside, exist_ok=True)
      os.replace(source, os.path.join(aside, f"{step}-{int(time.time())}"))
  if steps and hasattr(manager, "reload"):
    manager.reload()


def restore(manager, tree):
  """(tree, data_state) from the newest intact checkpoint, or None if there is none.

  A corrupt newer checkpoint (unreadable, wrong shapes, non-finite, checksum mismatch) is moved to
  <workdir>/corrupt_checkpoints with a warning naming it, and the next older one is tried.

  Args:
    manager: from `create_manager`.
    tree: {part: pytree} of the configured run (e.g. freshly initialised): the structure, shapes
      and dtypes to restore into.

  Returns:
    None, or ({part: pytree of host arrays}, the data state saved with it, without digests).

  Raises:
    UserError: checkpoints exist but none is intact (or none fits this run's shapes).
  """
  steps = manager.all_steps()
  if not steps:
    return None
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(tree))

  def restore_one(step):
    return manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))

  step, restored = _intact(manager, steps, restore_one, tuple(sorted(target)), target)
  _set_aside(manager, [s for s in steps if s > step])
  data = {k: v for k, v in (restored["data"] or {}).items() if k != DIGESTS}
  return restored["state"], data


def load_tree(workdir, parts, step=None):
  """({part: pytree of numpy arrays} for `parts`, step) of a workdir's checkpoint.

  The checkpoint of `step`, default the newest intact one; restored without a target (the saved
  structure). UserError if there is none, or the one asked for (or every one) is corrupt.
  """
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINTS)
  if not os.path.isdir(directory):
    raise UserError(f"no checkpoint in {workdir}")
  with ocp.CheckpointManager(directory, item_names=ITEMS) as manager:
    steps = manager.all_steps()
    if not steps:
      raise UserError(f"no checkpoint in {workdir}")
    if step is not None and step not in steps:
      raise UserError(f"no checkpoint of step {step} in {workdir} (have {sorted(steps)})")

    def restore_one(s):
      return manager.restore(s, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(), data=ocp.args.JsonRestore()))

    step, restored = _intact(manager, [step] if step is not None else steps, restore_one,
                             tuple(parts))
  return {p: jax.tree.map(np.asarray, restored["state"][p]) for p in parts}, step


def lock_workdir(workdir):
  """Takes the workdir's exclusive lock for this process's lifetime (released at exit).

  Returns the open lock file (keep a reference; close it to release). UserError if another
  training holds it, or the workdir is a file or cannot be created. The lock is `fcntl.flock` on
  workdir/.lock, which holds the owner's pid and host for the message.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file, not a directory")
  path = os.path.join(workdir, LOCK_FILE)
  try:
    os.makedirs(workdir, exist_ok=True)
    f = open(path, "a+")
  except OSError as e:
    raise UserError(f"cannot use --workdir {workdir}: {e.strerror or e}") from None
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    f.seek(0)
    owner = f.read().strip() or "another process"
    f.close()
    raise UserError(f"{workdir} is in use by another training ({owner}); wait for it to end or "
                    "use another --workdir") from None
  f.seek(0)
  f.truncate()
  f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
  f.flush()
  return f


def _flat(d, prefix=""):
  """{'a.b': value} of a nested config dict."""
  out = {}
  for key, value in d.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _as_dict(config):
  """A ConfigDict (or a plain dict) as the JSON dict config.json holds."""
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config))


def config_changes(previous, config, resumable=()):
  """Fields that differ between two config dicts (as config.json holds them), as
  ['name: old -> new'], leaving out fields whose first name part is in `resumable`."""
  before, now = _flat(previous), _flat(config)
  changed = []
  for key in sorted(set(before) | set(now)):
    if key.split(".")[0] in resumable:
      continue
    old, new = before.get(key), now.get(key)
    if isinstance(old, list):
      old = tuple(old)
    if isinstance(new, list):
      new = tuple(new)
    if old != new:
      changed.append(f"{key}: {old!r} -> {new!r}")
  return changed


def write_config(workdir, config, *, fixed, resumable=None, allow_changes=False,
                 fixed_label="another training run"):
  """Writes workdir/config.json, checking it against a previous run's there.

  Args:
    workdir: the run's folder (created).
    config: a ConfigDict or a JSON-able dict.
    fixed: fields the checkpoints depend on (e.g. the model's sizes): a previous run with other
      values is refused ('{workdir} holds {fixed_label} (...); use a new --workdir').
    resumable: fields (first name parts) a resume may change freely; any other changed field is
      refused unless `allow_changes` (then logged, the previous file kept as
      config.<unix time>.json). None: every field but `fixed` may change.
    allow_changes: see `resumable`.
    fixed_label: how the refusal names the previous run.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f"--workdir {workdir} is a file, not a directory")
  now = _as_dict(config)
  path = os.path.join(workdir, CONFIG_FILE)
  previous = read_config(workdir) if os.path.exists(path) else None
  if previous is not None:
    changed = [k for k in fixed if previous.get(k) != now.get(k)]
    if changed:
      before = ", ".join(f"{k}={previous.get(k)!r}" for k in changed)
      after = ", ".join(f"{k}={now.get(k)!r}" for k in changed)
      raise UserError(f"{workdir} holds {fixed_label} ({before} vs {after}); use a new "
                      "--workdir")
    changes = [] if resumable is None else config_changes(previous, now, resumable)
    if changes and not allow_changes:
      raise UserError(f"{workdir} holds a run with another config ({'; '.join(changes[:4])}"
                      f"{'; ...' if len(changes) > 4 else ''}); resume with the same config, "
                      "pass --allow_config_change to resume with these changes, or use a new "
                      "--workdir")
    if changes:
      logging.warning("resuming %s with config changes: %s", workdir, "; ".join(changes))
      os.replace(path, os.path.join(workdir, f"config.{int(time.time())}.json"))
  try:
    os.makedirs(workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(now, f, indent=2)
    os.replace(tmp, path)
  except OSError as e:
    raise UserError(f"cannot write {path}: {e.strerror or e}") from None


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
