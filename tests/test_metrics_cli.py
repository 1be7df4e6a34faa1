"""`jaxcomp metric` and `jaxcomp weights`: the command-line contracts."""

import json

import numpy as np
from PIL import Image
import pytest

from jaxcomp import cli
from jaxcomp.metrics import psnr
from jaxcomp.metrics import ssim
from jaxcomp.nets import weights


@pytest.fixture(autouse=True)
def _only_metric_commands(monkeypatch):
  # The command under test only: other commands' modules are not needed to parse these.
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.metrics.cli",))


@pytest.fixture()
def images(tmp_path):
  rng = np.random.RandomState(0)
  ref = (rng.rand(40, 48, 3) * 255).astype(np.uint8)
  dist = np.clip(ref.astype(int) + rng.randint(-20, 21, ref.shape), 0, 255).astype(np.uint8)
  paths = {"ref": tmp_path / "ref.png", "dist": tmp_path / "dist.png"}
  Image.fromarray(ref).save(paths["ref"])
  Image.fromarray(dist).save(paths["dist"])
  return paths, ref, dist


def _run(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def test_metric_json_contract(capsys, images):
  paths, ref, dist = images
  code, out, _ = _run(capsys, "metric", "--metric", "ssim,psnr,mse,gmsd", paths["ref"], paths["dist"], "--json")
  assert code == 0
  values = json.loads(out.strip().splitlines()[-1])
  assert list(values) == ["ssim", "psnr", "mse", "gmsd"]
  x, y = dist[None] / np.float32(255), ref[None] / np.float32(255)
  np.testing.assert_allclose(values["psnr"], psnr.psnr(x, y)[0], rtol=1e-6)
  np.testing.assert_allclose(values["ssim"], ssim.ssim(x, y)[0], rtol=1e-6)


def test_gray_and_palette_are_converted(capsys, images, tmp_path):
  paths, ref, _ = images
  Image.fromarray(ref).convert("L").save(tmp_path / "gray.png")
  Image.fromarray(ref).convert("L").convert("RGB").save(tmp_path / "gray_rgb.png")
  code, out, _ = _run(capsys, "metric", "--metric", "psnr", tmp_path / "gray.png", tmp_path / "gray_rgb.png", "--json")
  assert code == 0 and json.loads(out.splitlines()[-1])["psnr"] == float("inf")
  Image.fromarray(ref).convert("P").save(tmp_path / "pal.png")
  code, out, _ = _run(capsys, "metric", "--metric", "mse", paths["ref"], tmp_path / "pal.png", "--json")
  assert code == 0 and json.loads(out.splitlines()[-1])["mse"] > 0


def test_rgba_warns(capsys, images, tmp_path):
  paths, ref, _ = images
  Image.fromarray(ref).convert("RGBA").save(tmp_path / "rgba.png")
  code, out, err = _run(capsys, "metric", "--metric", "mse", paths["ref"], tmp_path / "rgba.png", "--json")
  assert code == 0 and "alpha channel ignored" in err
  assert json.loads(out.splitlines()[-1])["mse"] == 0.0


@pytest.mark.parametrize("case", ["16bit", "size", "unknown", "too_small", "missing_file"])
def test_user_errors_are_one_line(capsys, images, tmp_path, case):
  paths, ref, _ = images
  args = ["metric", "--metric", "psnr", paths["ref"], paths["dist"]]
  if case == "16bit":
    Image.fromarray(ref[..., 0].astype(np.uint16) * 257).save(tmp_path / "g16.png")
    args[3] = tmp_path / "g16.png"
  elif case == "size":
    Image.fromarray(ref[:30]).save(tmp_path / "small.png")
    args[4] = tmp_path / "small.png"
  elif case == "unknown":
    args[2] = "psnr,nope"
  elif case == "too_small":
    args[2] = "ms_ssim"
  else:
    args[3] = tmp_path / "absent.png"
  code, out, err = _run(capsys, *args)
  assert code == 2 and out == ""
  assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_missing_weights_name_the_command(capsys, images, monkeypatch, tmp_path):
  paths, _, _ = images
  monkeypatch.setenv("JAXCOMP_CACHE", str(tmp_path / "empty"))
  code, _, err = _run(capsys, "metric", "--metric", "psnr,lpips", paths["ref"], paths["dist"])
  assert code == 2 and "jaxcomp weights fetch" in err


def test_weights_list(capsys, monkeypatch, tmp_path):
  monkeypatch.setenv("JAXCOMP_CACHE", str(tmp_path))
  code, out, _ = _run(capsys, "weights", "list")
  assert code == 0
  for bundle in weights.BUNDLES:
    assert bundle in out
  assert "missing" in out and "jaxcomp weights fetch" in out


def test_help(capsys):
  for argv in (["metric", "--help"], ["weights", "--help"], ["weights", "fetch", "--help"]):
    with pytest.raises(SystemExit) as e:
      cli.main(argv)
    assert e.value.code == 0
  capsys.readouterr()
