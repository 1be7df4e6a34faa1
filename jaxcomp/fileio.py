"""Output files that appear whole or not at all."""

import contextlib
import hashlib
import os
import shutil
import tempfile

from jaxcomp.errors import UserError


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

  Works for files and directories (whatever the block creates at the temporary path). On any
  exception the temporary is removed and `path` is left untouched. Write errors (disk full, file
  size limit, a file where a directory is needed, no permission) become a one-line UserError
  that names `path`, never the temporary.
  """
  user_path = path
  path = os.path.abspath(path)
  parent = os.path.dirname(path)
  try:
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".jaxcomp-", dir=parent)
  except (FileExistsError, NotADirectoryError):
    raise UserError(f"cannot write {user_path}: a file is in the way of its folder "
                    f"({_first_file(parent)} is not a directory)") from None
  except OSError as e:
    raise UserError(f"cannot write {user_path}: {e.strerror or e}") from None
  target = os.path.join(tmp, os.path.basename(path))
  try:
    yield target
    if os.path.isdir(path) and os.path.isdir(target):
      shutil.rmtree(path)
    elif os.path.isdir(path) != os.path.isdir(target) and os.path.exists(path):
      kind = "a directory" if os.path.isdir(path) else "a file"
      raise UserError(f"cannot write {user_path}: {kind} of that name is in the way")
    os.replace(target, path)
  except OSError as e:
    if e.filename is not None and not os.path.abspath(e.filename).startswith(tmp):
      raise  # not a write error of this output (e.g. an input the block reads)
    raise UserError(f"cannot write {user_path}: {e.strerror or e}") from None
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _first_file(folder):
  """The first existing non-directory on the way to `folder` (or `folder` itself)."""
  parts = os.path.abspath(folder).split(os.sep)
  for i in range(2, len(parts) + 1):
    prefix = os.sep.join(parts[:i])
    if os.path.exists(prefix) and not os.path.isdir(prefix):
      return prefix
  return folder


def sha256_file(path):
  """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()
