"""Output files that appear whole or not at all."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

  Works for files and directories (whatever the block creates at the temporary path). On any
  exception the temporary is removed and `path` is left untouched.
  """
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".jaxcomp-", dir=parent)
  target = os.path.join(tmp, os.path.basename(path))
  try:
    yield target
    if os.path.isdir(path) and os.path.isdir(target):
      shutil.rmtree(path)
    os.replace(target, path)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
