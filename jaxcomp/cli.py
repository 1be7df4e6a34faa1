"""`jaxcomp <command>`: the command-line entry point.

Each command lives beside the code it drives, in a module with two functions:
`register(subparsers)` adds its parser (cheap: no heavy imports) and sets `func=run`;
`run(args) -> int` does the work. A `UserError` (or an unreadable file) becomes a one-line
`error: ...` on stderr and exit status 2; no traceback is shown for user errors.
"""

import argparse
import importlib
import sys

from jaxcomp import __version__
from jaxcomp.errors import UserError

# Modules that define commands, in the order `jaxcomp --help` lists them.
COMMAND_MODULES = (
    "jaxcomp.codec.cli",
    "jaxcomp.coding.cli",
    "jaxcomp.bench.cli",
    "jaxcomp.metrics.cli",
    "jaxcomp.evaluate.cli",
    "jaxcomp.evaluate.plot_cli",
    "jaxcomp.train.cli",
    "jaxcomp.train.calibrate_cli",
    "jaxcomp.study.cli",
    "jaxcomp.perceptual.cli",
    "jaxcomp.saliency.cli",
    "jaxcomp.zoo.cli",
)


class ArgumentParser(argparse.ArgumentParser):
  """argparse with a one-line `error: ...` instead of the usage dump."""

  def error(self, message):
    sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
    sys.exit(2)


def build_parser():
  parser = ArgumentParser(
      prog="jaxcomp",
      description="Perceptually optimized learned image compression in JAX/Flax.")
  parser.add_argument("--version", action="version", version=f"jaxcomp {__version__}")
  subparsers = parser.add_subparsers(dest="command", metavar="<command>", parser_class=ArgumentParser)
  subparsers.required = True
  for name in COMMAND_MODULES:
    importlib.import_module(name).register(subparsers)
  return parser


def main(argv=None):
  parser = build_parser()
  args, extra = parser.parse_known_args(argv)
  if extra:  # only commands that set accepts_config_overrides take `--config.<field>=value`
    if not getattr(args, "accepts_config_overrides", False):
      parser.parse_args(argv)  # the usual one-line error for the unrecognized arguments
    args.extra = extra
  try:
    return int(args.func(args) or 0)
  except UserError as e:
    sys.stderr.write(f"error: {e}\n")
  except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
    sys.stderr.write(f"error: {e.strerror}: {e.filename}\n")
  except OSError as e:  # disk full, file size limit, a file where a folder is needed, ...
    where = f": {e.filename}" if e.filename else ""
    sys.stderr.write(f"error: {e.strerror or e}{where}\n")
  except KeyboardInterrupt:
    sys.stderr.write("error: interrupted\n")
    return 130
  except (MemoryError, RuntimeError) as e:  # XlaRuntimeError is a RuntimeError
    if not isinstance(e, MemoryError) and "RESOURCE_EXHAUSTED" not in str(e):
      raise
    sys.stderr.write("error: out of memory (a smaller image, or a lower --max-pixels / "
                     "$JAXCOMP_MAX_PIXELS, bounds it)\n")
  return 2


if __name__ == "__main__":
  sys.exit(main())
