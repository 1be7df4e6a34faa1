"""Finding the file of `--config=FILE[:arg]` from any directory.

    --config=configs/finetune.py:lpips     relative to the current directory, as given
    --config=/abs/path/my_config.py:q3     any existing file
    --config=finetune.py:lpips             else a shipped config by its file name ...
    --config=finetune:lpips                ... or by its name without '.py'
    --config=configs/hyperprior.py:q3      ... or the README's relative path from elsewhere

The shipped configs are the top-level `configs/` folder, reached as `jaxcomp/_configs` (a
symbolic link to ../configs in a checkout; a copy made by setup.cfg's package_data in a wheel, so
a non-editable `pip install .` has them too). A name that is neither an existing file nor a
shipped config is a one-line `UserError` listing the shipped names.
"""

import importlib.util
import os

from jaxcomp.errors import UserError

SHIPPED_DIR = os.path.realpath(os.path.join(  # a checkout: <repo>/configs itself
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_configs"))


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


def load(spec):
  """The ConfigDict of 'FILE[:arg]' (FILE resolved as --config's is): get_config(arg), or
  get_config() without ':' (as ml_collections' config flags call it)."""
  path, colon, arg = resolve(spec).partition(":")
  module_spec = importlib.util.spec_from_file_location(
      f"jaxcomp_config_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if colon else module.get_config()
