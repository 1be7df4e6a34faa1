"""`python -m jaxcomp.train --config=configs/<file>.py:<arg> --workdir=DIR [--config.x=v ...]`.

Kept short on purpose (the flax examples' main.py): flags in, a trainer's
`train_and_evaluate(config, workdir)` out. The config's `trainer` field picks it (`TRAINERS`):
'codec' (the default: configs/hyperprior.py, finetune.py, ...), 'saliency_net'
(configs/saliency_net.py) or 'dpl_heads' (configs/dpl_heads.py).
Multi-host runs (--distributed, as launch/tpu_vm.sh passes; by default a TPU pod slice or
JAX_COORDINATOR_ADDRESS set) call `jax.distributed.initialize()` first. User errors (data,
config, workdir) end with one line `error: ...` on stderr and exit status 2.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxcomp.errors import UserError
from jaxcomp.train import config_files

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Training config file, e.g. "
                                "configs/hyperprior.py:q3 (the part after ':' is get_config's arg)",
                                lock_config=True)
flags.DEFINE_bool("distributed", None, "Call jax.distributed.initialize() (multi-host: every "
                  "host runs the same command). Default: when TPU_WORKER_HOSTNAMES lists several "
                  "workers or JAX_COORDINATOR_ADDRESS is set.")
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events, config.json; "
                    "an existing checkpoint there is resumed.")
flags.DEFINE_bool("allow_config_change", False, "Resume a workdir although the config differs "
                  "from its config.json in a training field (batch size, learning rate, seed, "
                  "data, ...); the previous config.json is kept as config.<time>.json.")


def _error(message):
  sys.stderr.write(f"error: {message}\n")
  sys.exit(2)


def _one_line(e):
  """The first line and, if it carries a traceback, the final exception line of an error."""
  lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
  return lines[0] if len(lines) == 1 else f"{lines[0].rstrip(':')}: {lines[-1]}"


def parse_flags(argv):
  """absl flag parsing with one-line errors (bad config file, arg or --config.<field>)."""
  if any(arg in ("-h", "--help", "--helpshort") for arg in argv[1:]):
    print(f"usage: {os.path.basename(argv[0])} --config=configs/<file>.py:<arg> --workdir=DIR "
          f"[--config.<field>=value ...]\n")
    print(FLAGS.module_help(__name__))
    sys.exit(0)
  try:
    argv = config_files.resolve_argv(argv)  # --config=finetune.py:lpips from any directory
  except UserError as e:
    _error(str(e))
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    _error(_one_line(e))
  except (AttributeError, KeyError, TypeError, ValueError) as e:  # --config.<unknown field>=...
    _error(f"bad --config override: unknown field or value {_one_line(e)}")
  if FLAGS.config is None or not FLAGS.workdir:
    _error("--config and --workdir are required (e.g. --config=configs/hyperprior.py:tiny "
           "--workdir=/tmp/run)")
  try:
    FLAGS.config.to_dict()  # a config file that failed to load raises here
  except (OSError, AttributeError) as e:
    _error(f"--config: {_one_line(e)}")
  if len(rest) > 1:
    _error(f"unexpected arguments: {' '.join(rest[1:])}")
  return rest


def is_multihost():
  """True on a TPU pod slice (several worker hostnames) or with an explicit JAX coordinator."""
  return ("," in os.environ.get("TPU_WORKER_HOSTNAMES", "")
          or bool(os.environ.get("JAX_COORDINATOR_ADDRESS")))


TRAINERS = ("codec", "saliency_net", "dpl_heads")


def train_and_evaluate(config, workdir, allow_config_change=False):
  """Runs `config`'s trainer (its `trainer` field, default 'codec') in `workdir`.

  The trainers are imported here, not at the top: see `main`. UserError for an unknown trainer
  (and whatever the trainer raises).
  """
  # pylint: disable=g-import-not-at-top
  name = config.get("trainer", "codec")
  if name == "saliency_net":
    from jaxcomp.saliency import train as saliency_train
    return saliency_train.train_and_evaluate(config, workdir, log=logging.info)
  if name == "dpl_heads":
    from jaxcomp.perceptual import train as perceptual_train
    return perceptual_train.train_and_evaluate(config, workdir, log=logging.info)
  if name == "codec":
    from jaxcomp.train import train
    return train.train_and_evaluate(config, workdir, allow_config_change=allow_config_change)
  raise UserError(f"config.trainer must be one of {', '.join(TRAINERS)}, not {name!r}")


def main(argv):
  """Runs the config's trainer. jax and the trainers are imported here, not at the top:
  `jax.distributed.initialize()` must run before anything initialises a JAX backend (a trainer
  module may at import), and `--help` stays fast."""
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  from jaxcomp.loop import checkpoint  # pylint: disable=g-import-not-at-top

  if FLAGS.distributed or (FLAGS.distributed is None and is_multihost()):
    jax.distributed.initialize()
  checkpoint.quiet_library_logs()
  logging.info("config:\n%s", FLAGS.config)
  try:
    train_and_evaluate(FLAGS.config, os.path.expanduser(FLAGS.workdir),
                       allow_config_change=FLAGS.allow_config_change)
  except UserError as e:
    _error(str(e))


def run(argv=None):
  """Entry point: absl's app.run over `argv` (default sys.argv)."""
  app.run(main, argv=argv, flags_parser=parse_flags)
