"""compress/decompress round trips (constriction backend) and the command line."""
# Session fixtures (hyperprior, mean, ...) come from conftest.py's pytest_plugins.
# pylint: disable=unused-import,redefined-outer-name

import functools
import os

import jax
import numpy as np
import pytest
from PIL import Image

from coding_models import fixture_image
from jaxcomp import cli
from jaxcomp.codec import export
from jaxcomp.coding import compression, constriction_backend, container
from jaxcomp.codec import tables
from jaxcomp.errors import UserError

SIZES = [(80, 96), (37, 61), (1, 1), (1, 130), (64, 64), (65, 3)]


def _image(height, width):
  big = np.concatenate([fixture_image("kite_96x80.png")] * 2, axis=1)
  return np.tile(big, (1 + height // big.shape[0], 1 + width // big.shape[1], 1))[:height, :width]


@functools.lru_cache(maxsize=None)
def _evaluation(model_dir):
  model, variables, _ = export.load(model_dir)
  return jax.jit(lambda x: model.apply(variables, x, training=False)["x_hat"])


def _model_reconstruction(model_dir, image):
  """round(clip(x_hat) * 255) of the model's own evaluation pass."""
  x_hat = _evaluation(model_dir)(image[None].astype(np.float32) / 255.0)
  return np.round(np.clip(np.asarray(x_hat[0]), 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_round_trip_matches_the_model(hyperprior, hyperprior_dir, size):
  image = _image(*size)
  data = compression.compress(hyperprior, image[None])[0]
  decoded = compression.decompress(hyperprior, data)
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  np.testing.assert_array_equal(decoded, _model_reconstruction(hyperprior_dir, image))


def test_mean_scale_round_trip(mean, mean_dir):
  image = fixture_image("cups_61x37.png")
  decoded = compression.decompress(mean, compression.compress(mean, image[None])[0])
  np.testing.assert_array_equal(decoded, _model_reconstruction(mean_dir, image))


def test_symbols_survive_the_coder(hyperprior):
  image = fixture_image("kite_96x80.png")
  y, z = hyperprior.analysis(compression.padded_input(image[None]))
  sym = compression.symbols(hyperprior, y[0], z[0])
  data = compression.compress(hyperprior, image[None])[0]
  decoded = compression.decode_symbols(hyperprior, container.parse(data, hyperprior.fingerprint))
  np.testing.assert_array_equal(decoded.z_values, sym.z_values)
  np.testing.assert_array_equal(decoded.y_values, sym.y_values)
  np.testing.assert_array_equal(decoded.y_indexes, sym.y_indexes)


def test_grayscale_decodes_to_grayscale(hyperprior):
  gray = fixture_image("cups_61x37.png").mean(-1).round().astype(np.uint8)
  data = compression.compress(hyperprior, np.repeat(gray[None, ..., None], 3, -1), channels=[1])[0]
  decoded = compression.decompress(hyperprior, data)
  assert decoded.shape == gray.shape
  assert np.abs(decoded.astype(int) - gray).mean() < 40


def test_escapes_round_trip():
  """Values far outside every table (down to -2^30 and up to 2^30) survive the coder."""
  t = tables.gaussian_tables(np.array([0.11, 1.0, 50.0]))
  coder = constriction_backend.Coder(t)
  rng = np.random.default_rng(1)
  values = np.concatenate([
      rng.integers(-3, 4, 500), [2**30, -2**30, 2**16, -2**16 - 1, 2**17 + 5, 400, -400, 0],
      rng.integers(-2**30, 2**30, 50)]).astype(np.int32)
  rows = rng.integers(0, 3, values.size).astype(np.int32)
  np.testing.assert_array_equal(coder.decode(coder.encode(values, rows), rows), values)


def test_out_of_range_latents_are_refused(hyperprior):
  with pytest.raises(UserError, match="out-of-range"):
    compression.symbols(hyperprior, np.full((4, 4, 24), np.nan, np.float32),
                  np.zeros((1, 1, 16), np.float32))


def test_compress_is_deterministic(hyperprior):
  image = fixture_image("kite_96x80.png")[None]
  assert compression.compress(hyperprior, image) == compression.compress(hyperprior, image)


# Command line.

def _save(path, image, mode=None):
  img = Image.fromarray(image)
  (img.convert(mode) if mode else img).save(path)
  return str(path)


def test_cli_round_trip_and_folders(tmp_path, hyperprior_dir, capsys):
  rgb = _save(tmp_path / "rgb.png", fixture_image("cups_61x37.png"))
  gray = _save(tmp_path / "gray.png", fixture_image("cups_61x37.png"), "L")
  pal = _save(tmp_path / "pal.png", fixture_image("cups_61x37.png"), "P")
  rgba = _save(tmp_path / "rgba.png", fixture_image("cups_61x37.png"), "RGBA")
  assert cli.main(["compress", "--model", hyperprior_dir, rgb, str(tmp_path / "one.jxc")]) == 0
  assert "bpp" in capsys.readouterr().out
  assert cli.main(["decompress", "--model", hyperprior_dir, str(tmp_path / "one.jxc"),
                   str(tmp_path / "one.png")]) == 0
  assert Image.open(tmp_path / "one.png").size == (61, 37)
  out = tmp_path / "streams"
  assert cli.main(["compress", "--model", hyperprior_dir, rgb, gray, pal, rgba, str(out)]) == 0
  assert "alpha" in capsys.readouterr().err
  assert sorted(os.listdir(out)) == ["gray.jxc", "pal.jxc", "rgb.jxc", "rgba.jxc"]
  back = tmp_path / "back"
  assert cli.main(["decompress", "--model", hyperprior_dir] +
                  [str(out / n) for n in sorted(os.listdir(out))] + [str(back)]) == 0
  assert Image.open(back / "gray.png").mode == "L"
  assert Image.open(back / "rgb.png").mode == "RGB"


def _sixteen_bit_png(path):
  import struct, zlib
  raw = b"".join(b"\x00" + bytes(6 * 4) for _ in range(3))
  chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 3, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
  return str(path)


def test_cli_refuses_bad_inputs_cleanly(tmp_path, hyperprior_dir, mean_dir, capsys):
  rgb = _save(tmp_path / "rgb.png", fixture_image("cups_61x37.png"))
  cmyk = str(tmp_path / "cmyk.jpg")
  Image.fromarray(fixture_image("cups_61x37.png")).convert("CMYK").save(cmyk)
  gray16 = str(tmp_path / "gray16.png")
  Image.fromarray(np.zeros((5, 5), np.uint16) + 300).save(gray16)
  junk = tmp_path / "junk.png"
  junk.write_bytes(b"this is not an image")
  jxc = tmp_path / "ok.jxc"
  assert cli.main(["compress", "--model", hyperprior_dir, rgb, str(jxc)]) == 0
  capsys.readouterr()
  cases = [
      ["compress", "--model", hyperprior_dir, cmyk, str(tmp_path / "x.jxc")],
      ["compress", "--model", hyperprior_dir, gray16, str(tmp_path / "x.jxc")],
      ["compress", "--model", hyperprior_dir, _sixteen_bit_png(tmp_path / "rgb16.png"),
       str(tmp_path / "x.jxc")],
      ["compress", "--model", hyperprior_dir, str(junk), str(tmp_path / "x.jxc")],
      ["compress", "--model", str(tmp_path), rgb, str(tmp_path / "x.jxc")],
      ["compress", "--model", hyperprior_dir, str(tmp_path / "missing.png"),
       str(tmp_path / "x.jxc")],
      ["decompress", "--model", mean_dir, str(jxc), str(tmp_path / "x.png")],
      ["decompress", "--model", hyperprior_dir, rgb, str(tmp_path / "x.png")],
      ["decompress", "--model", hyperprior_dir, str(jxc), str(tmp_path / "x.unknownext")],
  ]
  for argv in cases:
    assert cli.main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
  assert sorted(os.listdir(tmp_path)) == sorted(  # no output, partial or temporary, was left
      ["rgb.png", "cmyk.jpg", "gray16.png", "junk.png", "ok.jxc", "rgb16.png"])
