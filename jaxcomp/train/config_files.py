"""Finding the file of `--config=FILE[:arg]` from any directory.

    --config=configs/finetune.py:lpips     relative to the current directory, as given
    --config=/abs/path/my_config.py:q3     any existing file
    --config=finetune.py:lpips             else a shipped config by its file name ...
    --config=finetune:lpips                ... or by its name without '.py'
    --config=configs/hyperprior.py:q3      ... or the README's relative path from elsewhere

The shipped configs are the `configs/` folder beside the `jaxcomp` package (a source checkout or
an editable install). A name that is neither an existing file nor a shipped config is a one-line
`UserError` listing the shipped names.
"""

import os

from jaxcomp.errors import UserError

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")


def shipped():
  """Names (without '.py') of the shipped config files, sorted; [] if the folder is absent."""
  if not os.path.isdir(SHIPPED_DIR):
    return []
  return sorted(f[:-3] for f in os.listdir(SHIPPED_DIR)
                if f.endswith(".py") and not f.startswith("_"))


def resolve(spec):
  """'FILE[:arg]' -> the same with FILE replaced by an existing config file's path.

  Args:
    spec: the value of --config.

  Returns:
    spec unchanged if FILE exists (relative to the current directory or absolute), else
    '<shipped configs>/<name>.py[:arg]'.

  Raises:
    UserError: no such file and no shipped config of that name.
  """
  path, colon, arg = spec.partition(":")
  if os.path.isfile(path):
    return spec
  name = os.path.basename(path)
  name = name[:-3] if name.endswith(".py") else name
  candidate = os.path.join(SHIPPED_DIR, f"{name}.py")
  if name in shipped() and os.path.isfile(candidate):
    return f"{candidate}{colon}{arg}"
  names = ", ".join(shipped()) or "none found"
  raise UserError(f"--config: no config file '{path}' (looked in {os.getcwd()} and among the "
                  f"shipped configs: {names})")


def resolve_argv(argv):
  """argv with the value of its --config flag resolved (`resolve`); other arguments unchanged.

  Handles '--config=VALUE' and '--config VALUE' (absl accepts both); '--config.<field>=v'
  overrides are left alone.
  """
  out, i = list(argv), 1
  while i < len(out):
    arg = out[i]
    if arg.startswith("--config="):
      out[i] = "--config=" + resolve(arg[len("--config="):])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = resolve(out[i + 1])
      i += 1
    i += 1
  return out
