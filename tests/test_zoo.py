"""The bundled model zoo: listing, `--model zoo:NAME` everywhere, hash checks, clear refusals."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcomp import cli, zoo
from jaxcomp.codec import models
from jaxcomp.errors import UserError
from jaxcomp.train import train


def _photo(tmp_path, height=96, width=128):
  """A real photo crop (scikit-image's coffee, held out from every zoo training)."""
  import skimage.data  # pylint: disable=g-import-not-at-top

  path = tmp_path / "coffee.png"
  Image.fromarray(skimage.data.coffee()[100:100 + height, 200:200 + width]).save(path)
  return path


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return 10 * np.log10(255.0**2 / mse)


def test_list_json_names_at_least_three_verified_models(capsys):
  assert cli.main(["zoo", "list", "--json", "--verify"]) == 0
  listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert len(listed) >= 3
  assert len({m["name"] for m in listed}) == len(listed)
  for m in listed:
    assert m["spec"] == "zoo:" + m["name"]
    assert 0 < m["bpp"] < 2 and 20 < m["psnr_rgb"] < 50
  # The manifest lists the curve from the lowest rate up.
  assert [m["bpp"] for m in listed] == sorted(m["bpp"] for m in listed)


def test_compress_decompress_with_a_zoo_model(tmp_path, capsys):
  name = zoo.names()[0]
  photo = _photo(tmp_path)
  assert cli.main(["compress", "--model", f"zoo:{name}", str(photo),
                   str(tmp_path / "a.jxc")]) == 0
  assert cli.main(["decompress", "--model", f"zoo:{name}", str(tmp_path / "a.jxc"),
                   str(tmp_path / "a.png")]) == 0
  original = np.asarray(Image.open(photo))
  decoded = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
  assert decoded.shape == original.shape
  assert _psnr(original, decoded) > 24
  assert 0 < 8 * os.path.getsize(tmp_path / "a.jxc") / (96 * 128) < 2
  capsys.readouterr()


def test_unknown_zoo_name_is_one_line(tmp_path, capsys):
  photo = _photo(tmp_path)
  assert cli.main(["compress", "--model", "zoo:no-such-model", str(photo),
                   str(tmp_path / "a.jxc")]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "unknown zoo model zoo:no-such-model" in err and zoo.names()[0] in err
  assert not (tmp_path / "a.jxc").exists()


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
  """A writable copy of the zoo (fresh mtimes), installed in place of the package's."""
  root = tmp_path / "zoo"
  shutil.copytree(zoo.MODELS_DIR, root / "models", copy_function=shutil.copyfile)
  shutil.copyfile(zoo.MANIFEST, root / "manifest.json")
  monkeypatch.setattr(zoo, "MODELS_DIR", str(root / "models"))
  monkeypatch.setattr(zoo, "MANIFEST", str(root / "manifest.json"))
  return root


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_tampered_zoo_file_is_refused(zoo_copy, tmp_path, capsys, damage):
  name = zoo.names()[0]
  params = zoo_copy / "models" / name / "params.safetensors"
  if damage == "flip":
    data = bytearray(params.read_bytes())
    data[len(data) // 2] ^= 0x40
    params.write_bytes(bytes(data))
  elif damage == "truncate":
    params.write_bytes(params.read_bytes()[:1000])
  else:
    params.unlink()
  photo = _photo(tmp_path)
  assert cli.main(["compress", "--model", f"zoo:{name}", str(photo),
                   str(tmp_path / "a.jxc")]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and f"zoo model {name}" in err
  assert ("sha256" in err) if damage != "delete" else ("missing params.safetensors" in err)
  assert not (tmp_path / "a.jxc").exists()


def test_init_from_a_zoo_model():
  e = zoo.entries()[0]
  model = models.build(e["arch"], e["N"], e["M"])
  params = models.init(model, jax.random.PRNGKey(0))["params"]
  loaded = train.load_init_params(f"zoo:{e['name']}", params)
  kernel = loaded["g_a"]["layer_0"]["kernel"]
  fresh = params["g_a"]["layer_0"]["kernel"]
  assert kernel.shape == fresh.shape and not np.allclose(kernel, fresh)


def test_init_from_a_zoo_model_of_another_size_is_refused():
  e = zoo.entries()[0]
  model = models.build(e["arch"], e["N"] // 2, e["M"])
  params = models.init(model, jax.random.PRNGKey(0))["params"]
  with pytest.raises(UserError, match="does not fit"):
    train.load_init_params(f"zoo:{e['name']}", params)
