"""`jaxcomp convert compressai` end to end, and its errors."""

import os

import jax
import numpy as np
import pytest

import parity_weights
from jaxcomp import cli
from jaxcomp.codec import export

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "codec", "hyperprior_128_192.npz")


def _state_dict_file(tmp_path, fx, suffix):
  sd = parity_weights.state_dict(str(fx["arch"]), int(fx["N"]), int(fx["M"]))
  sd["entropy_bottleneck.quantiles"] = fx["quantiles"][:, None, :]
  path = str(tmp_path / f"ckpt{suffix}")
  if suffix == ".npz":
    np.savez(path, **sd)
  else:
    torch = pytest.importorskip("torch")
    torch.save({"state_dict": {k: torch.from_numpy(v) for k, v in sd.items()}}, path)
  return path


def _has_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    return True
  except ImportError:
    return False


def _run(capsys, *argv):
  code = cli.main(list(argv))
  out, err = capsys.readouterr()
  return code, out, err


@pytest.fixture(scope="module")
def fx():
  with np.load(FIXTURE, allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".npz", ".pth.tar"])
def test_convert_then_load_reproduces_compressai(tmp_path, capsys, fx, suffix):
  ckpt = _state_dict_file(tmp_path, fx, suffix)
  out_dir = str(tmp_path / "model")
  code, out, _ = _run(capsys, "convert", "compressai", "--arch", "bmshj2018-hyperprior",
                      "--checkpoint", ckpt, "--out", out_dir)
  assert code == 0 and "N=128, M=192" in out
  model, variables, config = export.load(out_dir)
  assert config["arch"] == "bmshj2018-hyperprior"
  result = jax.jit(lambda v, x: model.apply(v, x, training=False))(
      variables, fx["image"][None].astype(np.float32) / 255)
  np.testing.assert_allclose(result["x_hat"], fx["x_hat"], atol=1e-4)


def test_wrong_architecture_is_a_one_line_error(tmp_path, capsys, fx):
  ckpt = _state_dict_file(tmp_path, fx, ".npz")
  out_dir = tmp_path / "model"
  code, _, err = _run(capsys, "convert", "compressai", "--arch", "mbt2018-mean",
                      "--checkpoint", ckpt, "--out", str(out_dir))
  assert code == 2 and err.startswith("error:") and err.count("\n") == 1
  assert not out_dir.exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_unreadable_checkpoint_is_a_one_line_error(tmp_path, capsys, content):
  suffixes = (".npz", ".safetensors") + ((".pth",) if _has_torch() else ())
  for suffix in suffixes:
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    code, _, err = _run(capsys, "convert", "compressai", "--arch", "bmshj2018-hyperprior",
                        "--checkpoint", str(bad), "--out", str(tmp_path / "m"))
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
  assert not (tmp_path / "m").exists()


def test_missing_checkpoint_and_bad_flags(tmp_path, capsys):
  code, _, err = _run(capsys, "convert", "compressai", "--arch", "bmshj2018-hyperprior",
                      "--checkpoint", str(tmp_path / "none.pth"), "--out", str(tmp_path / "m"))
  assert code == 2 and err.startswith("error:") and "none.pth" in err
  with pytest.raises(SystemExit) as e:
    cli.main(["convert", "compressai", "--arch", "cheng2020", "--checkpoint", "x", "--out", "y"])
  assert e.value.code == 2
  assert capsys.readouterr().err.startswith("error:")


def test_load_refuses_a_directory_that_is_not_a_model(tmp_path):
  from jaxcomp.errors import UserError  # pylint: disable=g-import-not-at-top
  with pytest.raises(UserError):
    export.load(str(tmp_path))
  (tmp_path / export.CONFIG_FILE).write_text('{"format": "jaxcomp-model", "version": 99}')
  with pytest.raises(UserError, match="version"):
    export.load(str(tmp_path))
