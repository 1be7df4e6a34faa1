"""Issue 17 item 8: directory inputs, truncated tables.npz, offline `weights fetch`, animated
images and EXIF orientation."""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from coding_models import fixture_image
from jaxcomp import cli
from jaxcomp import images
from jaxcomp.codec import tables
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from jaxcomp.nets import weights


def test_compress_a_directory_says_so(tmp_path, hyperprior_dir, capsys):
  (tmp_path / "photos").mkdir()
  assert cli.main(["compress", "--model", hyperprior_dir, str(tmp_path / "photos"),
                   str(tmp_path / "x.jxc")]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "photos is a directory; give its files" in err


def test_truncated_tables_npz_is_one_line(tmp_path, hyperprior_dir):
  model = tmp_path / "model"
  shutil.copytree(hyperprior_dir, model)
  path = model / tables.FILE
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(UserError, match="tables.npz \\(truncated or corrupt") as e:
    compression.CodingModel(str(model))
  assert "\n" not in str(e.value)


def test_weights_fetch_without_network_hints_at_the_registry(tmp_path, monkeypatch):
  for key in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
    monkeypatch.delenv(key, raising=False)
  monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
  monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
  monkeypatch.setenv("PIP_RETRIES", "0")
  monkeypatch.setenv("PIP_TIMEOUT", "2")
  with pytest.raises(UserError, match="registry looks unreachable.*--archives DIR") as e:
    weights.download(str(tmp_path), log=lambda message: None, attempts=1)
  assert "\n" not in str(e.value)


def test_animated_image_warns_and_uses_the_first_frame(tmp_path):
  frames = [Image.fromarray(np.full((8, 9, 3), v, np.uint8)) for v in (40, 200)]
  path = str(tmp_path / "anim.gif")
  frames[0].save(path, save_all=True, append_images=frames[1:])
  with pytest.warns(UserWarning, match="animated image \\(2 frames\\); only the first frame"):
    image, _ = images.read(path)
  assert image.shape == (8, 9, 3) and abs(int(image.mean()) - 40) <= 2


def test_exif_orientation_is_applied_as_viewers_do(tmp_path):
  pixels = fixture_image("cups_61x37.png")
  img = Image.fromarray(pixels)
  exif = img.getexif()
  exif[0x0112] = 6  # stored rotated: display rotated 90 degrees clockwise
  path = str(tmp_path / "rotated.png")
  img.save(path, exif=exif)
  image, _ = images.read(path)
  assert image.shape == (61, 37, 3)
  np.testing.assert_array_equal(image, np.rot90(pixels, k=-1))
