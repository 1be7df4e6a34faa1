"""The model zoo: exported models trained with jaxcomp, shipped inside the package.

No model hub is reachable from the machines jaxcomp is built on, so the models a user should have
at hand travel with the package, in `jaxcomp/zoo/models/<name>/` (an ordinary exported model
directory: model.json, params.safetensors, tables.npz, fingerprint.txt), described by
`jaxcomp/zoo/manifest.json`:

    {"format": "jaxcomp-zoo", "version": 1,
     "models": [{"name": ..., "arch": ..., "N": ..., "M": ..., "lmbda": ..., "description": ...,
                 "files": {file name: sha256 hex}, "training": {...}, "rd": {...}}, ...]}

`resolve("zoo:NAME")` checks every file of the model against the manifest's sha256 (a tampered or
truncated file is refused with one line) and returns the directory, so `zoo:NAME` works wherever
a model directory is accepted (compress, decompress, eval, bench, `init_from`). Any other spec is
returned unchanged.
"""

import functools
import json
import os

from jaxcomp.errors import UserError
from jaxcomp.fileio import sha256_file
from jaxcomp.registry import parse_spec

PREFIX = "zoo:"
ROOT = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.join(ROOT, "models")
MANIFEST = os.path.join(ROOT, "manifest.json")
FORMAT = "jaxcomp-zoo"
VERSION = 1


def manifest():
  """The manifest dict (validated); an empty model list when no manifest is shipped."""
  if not os.path.isfile(MANIFEST):
    return {"format": FORMAT, "version": VERSION, "models": []}
  try:
    with open(MANIFEST) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read the zoo manifest {MANIFEST}: {e}") from None
  if (not isinstance(data, dict) or data.get("format") != FORMAT
      or not isinstance(data.get("models"), list)):
    raise UserError(f"{MANIFEST} is not a jaxcomp zoo manifest")
  return data


def entries():
  """[model entry dict] in the manifest's order (lowest rate first)."""
  return list(manifest()["models"])


def names():
  return [e["name"] for e in entries()]


def entry(name):
  """The manifest entry of `name`; UserError naming the known models otherwise."""
  for e in entries():
    if e["name"] == name:
      return e
  known = ", ".join(names()) or "none"
  raise UserError(f"unknown zoo model {PREFIX}{name} (known: {known}; see 'jaxcomp zoo list')")


def is_zoo(spec):
  """True for a 'zoo:NAME' spec (`jaxcomp.registry.parse_spec`)."""
  return isinstance(spec, str) and parse_spec(spec)[0] == "zoo" and parse_spec(spec)[1] is not None


@functools.lru_cache(maxsize=None)
def _verified(folder, name, stamp):
  """Checks the files in `folder` against model `name`'s manifest entry.

  Cached per (folder, name, stamp), `stamp` being the files' (name, size, mtime): a file changed
  on disk is checked again.
  """
  del stamp  # only part of the cache key
  e = entry(name)
  for file_name, want in sorted(e["files"].items()):
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
      raise UserError(f"zoo model {name}: missing {file_name} (reinstall jaxcomp)")
    if sha256_file(path) != want:
      raise UserError(f"zoo model {name}: {file_name} does not match its sha256 in the zoo "
                      "manifest (modified or corrupted; reinstall jaxcomp)")
  return folder


def _stamp(folder):
  try:
    return tuple(sorted((f, os.stat(os.path.join(folder, f)).st_size,
                         os.stat(os.path.join(folder, f)).st_mtime_ns)
                        for f in os.listdir(folder)))
  except OSError:
    return ()


def resolve(spec):
  """A model spec -> a model directory path.

  'zoo:NAME' -> the bundled directory, after checking every file's sha256 against the manifest
  (UserError if unknown, missing or modified); anything else is returned unchanged.
  """
  if not is_zoo(spec):
    return spec
  name = parse_spec(spec)[1]
  entry(name)  # unknown names fail before touching the disk
  folder = os.path.join(MODELS_DIR, name)
  return _verified(folder, name, _stamp(folder))
