"""Exported model: one directory with everything compress/decompress need, no orbax.

    model.json          {"format": "jaxcomp-model", "version": 1, "arch": ..., "N": ..., "M": ...,
                         "source": ...}
    params.safetensors  float32 arrays; keys are '/'-joined variable paths, e.g.
                        'params/g_a/layer_0/kernel', 'quantiles/entropy_bottleneck/z'.
    tables.npz          integer CDF tables for the entropy coder (`jaxcomp.codec.tables`),
                        built here, once, in numpy float64.
    fingerprint.txt     hex sha256 over the decoding-relevant config (format, version, arch, N, M),
                        the params and the tables; bitstreams record it (`fingerprint`).

A model whose encoder takes a saliency map (learned bit allocation, `models.Hyperprior`) also has
    model.json          "saliency": {"model": "sdsp" | "centre" | "learned", "input": bool,
                                     "hyper_input": bool}
    saliency/           the learned saliency model's weights folder, copied in ("learned" only),
so that `jaxcomp compress` computes the same map the model was trained with. The decoder never
needs it: bitstreams of such models decode like any other.

A model with adaptive quantization steps (`models.Hyperprior.adaptive_step`) has
    model.json          "adaptive_step": true
and its h_q weights in params.safetensors (so the fingerprint covers them).

A model exported from a training run (`jaxcomp export`) records how it was made:
    model.json          "training": {"distortion": "ms_ssim", "lambda": 8.73, "quality": 3,
                                     "init_from": parent workdir/model or null,
                                     "init_fingerprint": the parent model's fingerprint or null,
                                     "steps": the exported step, "num_train_steps": planned}
(not part of the fingerprint: it describes the weights, it does not change decoding).

Loading never unpickles.
"""

import hashlib
import json
import os
import shutil

from flax import traverse_util
import jax
import numpy as np
from safetensors.numpy import load_file, save_file

from jaxcomp import saliency
from jaxcomp import zoo
from jaxcomp.codec import models
from jaxcomp.codec import tables as coding_tables
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.registry import parse_spec

FORMAT = "jaxcomp-model"
VERSION = 1
CONFIG_FILE = "model.json"
PARAMS_FILE = "params.safetensors"
FINGERPRINT_FILE = "fingerprint.txt"
SALIENCY_DIR = "saliency"
_FINGERPRINT_KEYS = ("format", "version", "arch", "N", "M")


def flatten(variables):
  """Nested variables -> {'collection/module/.../name': float32 numpy array}."""
  flat = traverse_util.flatten_dict(variables, sep="/")
  return {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in flat.items()}


def unflatten(flat):
  return traverse_util.unflatten_dict({k: np.asarray(v) for k, v in flat.items()}, sep="/")


def save(path, arch, N, M, variables, source="", extra_files=None, saliency=None,
         adaptive_step=False, training=None):
  """Writes an exported model directory atomically (it appears whole or not at all).

  Args:
    path: output directory (replaced if it exists).
    arch: a key of `models.ARCHS`.
    N, M: channel counts.
    variables: {'params': ..., 'quantiles': ...}.
    source: free text recorded in model.json (e.g. the checkpoint it came from).
    extra_files: optional {file name: callable(full_path)} writing further files.
    saliency: for a model with saliency inputs, {'model': spec, 'input': bool,
      'hyper_input': bool}; spec is 'sdsp', 'centre' or a learned saliency weights folder
      (then copied into the model directory).
    adaptive_step: the model predicts quantization steps (h_q); recorded in model.json.
    training: optional JSON-ready dict recorded as model.json's "training" (see the module
      docstring).
  """
  config = {"format": FORMAT, "version": VERSION, "arch": arch, "N": int(N), "M": int(M),
            "source": source}
  if training is not None:
    config["training"] = dict(training)
  if adaptive_step:
    config["adaptive_step"] = True
  learned_dir = None
  if saliency is not None and (saliency.get("input") or saliency.get("hyper_input")):
    spec = saliency["model"]
    if spec not in ("sdsp", "centre"):
      name, arg = parse_spec(spec)
      learned_dir = arg if name == "learned" and arg is not None else spec
      if not os.path.isdir(learned_dir):
        raise UserError(f"saliency model folder not found: {learned_dir}")
      spec = "learned"
    config["saliency"] = {"model": spec, "input": bool(saliency.get("input")),
                          "hyper_input": bool(saliency.get("hyper_input"))}
  flat = flatten(variables)
  bad = sorted(k for k, v in flat.items() if not np.all(np.isfinite(v)))
  if bad:
    raise UserError(f"refusing to export non-finite weights (NaN/Inf in {', '.join(bad[:3])}"
                    f"{', ...' if len(bad) > 3 else ''}): the source checkpoint is corrupt or the "
                    "training diverged")
  if os.path.isfile(path):
    raise UserError(f"cannot write {path}: a file of that name is in the way (the exported model "
                    "is a directory)")
  if (os.path.isdir(path) and os.listdir(path)
      and not os.path.isfile(os.path.join(path, CONFIG_FILE))):
    raise UserError(f"{path} is a non-empty directory that is not an exported model; refusing to "
                    "replace it")
  tables = coding_tables.build(unflatten(flat))
  with atomic_path(path) as tmp:
    os.makedirs(tmp)
    save_file(flat, os.path.join(tmp, PARAMS_FILE))
    coding_tables.save(os.path.join(tmp, coding_tables.FILE), tables)
    with open(os.path.join(tmp, FINGERPRINT_FILE), "w") as f:
      f.write(fingerprint(config, flat, coding_tables.to_arrays(tables)) + "\n")
    for name, write in (extra_files or {}).items():
      write(os.path.join(tmp, name))
    if learned_dir is not None:
      shutil.copytree(learned_dir, os.path.join(tmp, SALIENCY_DIR))
    with open(os.path.join(tmp, CONFIG_FILE), "w") as f:
      json.dump(config, f, indent=2)


def fingerprint(config, flat_params, table_arrays):
  """Hex sha256 identifying a model for decoding.

  Covers config[format, version, arch, N, M] (canonical JSON), then every params array and every
  table array in sorted name order as (name, dtype, shape, little-endian bytes). Free text such as
  config['source'] is left out, so re-exporting the same weights gives the same fingerprint.

  Args:
    config: the model.json dict.
    flat_params: {'/'-joined name: float32 array} (`flatten`).
    table_arrays: {name: integer array} (`jaxcomp.codec.tables.to_arrays`).
  """
  h = hashlib.sha256()
  h.update(json.dumps({k: config[k] for k in _FINGERPRINT_KEYS}, sort_keys=True).encode())
  for group in (flat_params, table_arrays):
    for name in sorted(group):
      a = np.asarray(group[name])
      a = a.astype(a.dtype.newbyteorder("<"))
      h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
      h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()


def read_config(path):
  """model.json of an exported model directory (or `zoo:NAME`), validated."""
  path = zoo.resolve(path)
  config_path = os.path.join(path, CONFIG_FILE)
  if not os.path.isdir(path):
    raise UserError(f"model directory not found: {path}")
  if not os.path.isfile(config_path):
    raise UserError(f"{path} is not a jaxcomp model (no {CONFIG_FILE})")
  try:
    with open(config_path) as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {config_path}: {e}") from None
  if not isinstance(config, dict) or config.get("format") != FORMAT:
    raise UserError(f"{config_path} is not a jaxcomp model description")
  if config.get("version") != VERSION:
    raise UserError(f"{path}: model format version {config.get('version')} is not supported "
                    f"(this jaxcomp reads version {VERSION})")
  if config.get("arch") not in models.ARCHS:
    raise UserError(f"{path}: unknown architecture {config.get('arch')!r}")
  saliency = config.get("saliency")
  if saliency is not None and (not isinstance(saliency, dict)
                               or saliency.get("model") not in ("sdsp", "centre", "learned")):
    raise UserError(f"{path}: unreadable 'saliency' entry in {CONFIG_FILE}")
  if not isinstance(config.get("adaptive_step", False), bool):
    raise UserError(f"{path}: 'adaptive_step' in {CONFIG_FILE} must be true or false")
  return config


def saliency_flags(config):
  """(saliency_input, saliency_hyper) of a model.json dict."""
  saliency = config.get("saliency") or {}
  return bool(saliency.get("input")), bool(saliency.get("hyper_input"))


def saliency_model(path, config):
  """The `jaxcomp.saliency.SaliencyModel` the model's encoder takes, or None if it takes none."""
  if not any(saliency_flags(config)):
    return None
  path = zoo.resolve(path)

  spec = config["saliency"]["model"]
  if spec == "learned":
    folder = os.path.join(path, SALIENCY_DIR)
    if not os.path.isdir(folder):
      raise UserError(f"{path}: missing the saliency model folder {SALIENCY_DIR}/")
    return saliency.load(folder)
  return saliency.load(spec)


def load(path):
  """(model, variables, config) from an exported model directory (or `zoo:NAME`)."""
  path = zoo.resolve(path)
  config = read_config(path)
  params_path = os.path.join(path, PARAMS_FILE)
  if not os.path.isfile(params_path):
    raise UserError(f"{path}: missing {PARAMS_FILE}")
  try:
    flat = load_file(params_path)
  except Exception as e:  # safetensors raises its own error types for corrupt files
    raise UserError(f"cannot read {params_path}: {e}") from None
  saliency_input, saliency_hyper = saliency_flags(config)
  model = models.build(config["arch"], config["N"], config["M"], saliency_input=saliency_input,
                       saliency_hyper=saliency_hyper,
                       adaptive_step=config.get("adaptive_step", False))
  variables = unflatten(flat)
  check_shapes(model, variables, path)
  return model, variables, config


def load_for_coding(path):
  """(model, variables, config, tables, fingerprint) for compress/decompress.

  Like `load`, and also reads the integer CDF tables (`jaxcomp.codec.tables.CodingTables`) and
  checks the stored fingerprint (hex string) against the files; UserError if tables or fingerprint
  are missing or do not match (a modified or corrupted model directory).
  """
  path = zoo.resolve(path)
  model, variables, config = load(path)
  tables = coding_tables.load(os.path.join(path, coding_tables.FILE), config["N"])
  fingerprint_path = os.path.join(path, FINGERPRINT_FILE)
  try:
    with open(fingerprint_path) as f:
      stored = f.read().strip()
  except OSError:
    raise UserError(f"{path}: missing {FINGERPRINT_FILE} "
                    "(re-export the model with this jaxcomp)") from None
  actual = fingerprint(config, flatten(variables), coding_tables.to_arrays(tables))
  if stored != actual:
    raise UserError(f"{path}: the model files do not match {FINGERPRINT_FILE} "
                    "(modified or corrupted)")
  return model, variables, config, tables, actual


def check_shapes(model, variables, where):
  """Raises UserError unless `variables` has exactly the model's variable names and shapes."""

  expected = jax.eval_shape(lambda: models.init(model, jax.random.PRNGKey(0)))
  want = {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(expected, sep="/").items()}
  have = {k: tuple(np.shape(v)) for k, v in traverse_util.flatten_dict(variables, sep="/").items()}
  missing = sorted(set(want) - set(have))
  unexpected = sorted(set(have) - set(want))
  wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
  if missing or unexpected or wrong:
    parts = []
    if missing:
      parts.append(f"missing {missing[:3]}")
    if unexpected:
      parts.append(f"unexpected {unexpected[:3]}")
    if wrong:
      parts.append(f"shape mismatch {[(k, have[k], want[k]) for k in wrong[:3]]}")
    raise UserError(f"{where}: variables do not match the model ({'; '.join(parts)})")
