"""Issue 17 item 2: a pixel budget, checked from headers before anything is allocated.

The bounded-memory test runs `jaxcomp compress` on a 9000x9000 PNG (the report's 79 KB file took
over 10 GB) in a subprocess and measures its peak resident memory with getrusage.
"""

import os
import subprocess
import sys

import jax
import pytest

from coding_models import fixture_image
from jaxcomp import cli, pixels
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from reliability_files import join, png_header_only, save_image, split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# jax + the model stay well under this; a 9000x9000 decode took > 10 GB. The child's peak is read
# from /proc/self/status (VmHWM, this process image only): getrusage's ru_maxrss would also count
# the pytest parent's memory at fork time, which Linux carries across exec.
PEAK_MB = 2000


def _one_line_error(err, *needles):
  assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
  for needle in needles:
    assert needle in err, err


def test_huge_png_refused_with_bounded_memory(tmp_path, hyperprior_dir):
  big = png_header_only(tmp_path / "big.png", 9000, 9000)
  script = ("import sys\nfrom jaxcomp import cli\n"
            f"rc = cli.main(['compress', '--model', {hyperprior_dir!r}, {big!r}, "
            f"{str(tmp_path / 'big.jxc')!r}])\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "print(int(hwm.split()[1]) // 1024)\nsys.exit(rc)\n")
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  env.pop(pixels.ENV, None)
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=300)
  assert proc.returncode == 2, proc.stderr
  _one_line_error(proc.stderr, "9000x9000", "pixel limit", "--max-pixels")
  assert int(proc.stdout.split()[-1]) < PEAK_MB
  assert not os.path.exists(tmp_path / "big.jxc")


def test_metric_refuses_a_decompression_bomb_in_one_line(tmp_path, capsys):
  bomb = png_header_only(tmp_path / "bomb.png", 50000, 50000)
  assert cli.main(["metric", "--metric", "psnr", bomb, bomb]) == 2
  _one_line_error(capsys.readouterr().err, "bomb.png", "pixel limit")


def test_jxc_header_size_checked_before_decoding(hyperprior, capsys, tmp_path, hyperprior_dir):
  data = compression.compress(hyperprior, fixture_image("cups_61x37.png")[None])[0]
  fields, z, y = split(data)
  fields[6] = fields[7] = 65535  # a valid container (CRC recomputed) declaring 65535x65535
  with pytest.raises(UserError, match="65535x65535 = 4294836225 pixels exceeds the pixel limit"):
    compression.decompress(hyperprior, join(fields, z, y))
  path = tmp_path / "huge.jxc"
  path.write_bytes(join(fields, z, y))
  assert cli.main(["decompress", "--model", hyperprior_dir, str(path),
                   str(tmp_path / "huge.png")]) == 2
  _one_line_error(capsys.readouterr().err, "huge.jxc", "pixel limit")


def test_limit_is_overridable(tmp_path, hyperprior_dir, monkeypatch, capsys):
  cups = save_image(tmp_path / "cups.png", fixture_image("cups_61x37.png"))  # 2257 pixels
  jxc = str(tmp_path / "cups.jxc")
  monkeypatch.setattr(pixels, "_override", None)
  assert cli.main(["compress", "--model", hyperprior_dir, "--max-pixels", "2000", cups, jxc]) == 2
  _one_line_error(capsys.readouterr().err, "61x37", "2000")
  monkeypatch.setattr(pixels, "_override", None)
  monkeypatch.setenv(pixels.ENV, "2000")
  assert cli.main(["compress", "--model", hyperprior_dir, cups, jxc]) == 2
  capsys.readouterr()
  monkeypatch.setenv(pixels.ENV, "0")  # 0: no limit
  assert cli.main(["compress", "--model", hyperprior_dir, cups, jxc]) == 0
  assert cli.main(["decompress", "--model", hyperprior_dir, "--max-pixels", "2257", jxc,
                   str(tmp_path / "back.png")]) == 0
  assert cli.main(["decompress", "--model", hyperprior_dir, "--max-pixels", "2256", jxc,
                   str(tmp_path / "no.png")]) == 2
  assert not os.path.exists(tmp_path / "no.png")
  capsys.readouterr()
  monkeypatch.setenv(pixels.ENV, "lots")
  monkeypatch.setattr(pixels, "_override", None)
  assert cli.main(["compress", "--model", hyperprior_dir, cups, jxc]) == 2
  _one_line_error(capsys.readouterr().err, pixels.ENV)
  monkeypatch.setattr(pixels, "_override", None)


def test_out_of_memory_above_a_raised_limit_is_one_line(tmp_path, hyperprior_dir, monkeypatch,
                                                        capsys):
  """With the limit raised by the user, XLA's RESOURCE_EXHAUSTED (a RuntimeError) is one line."""
  def exhausted(*args, **kwargs):
    raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 27717025792 "
                                     "bytes.")

  monkeypatch.setattr(compression, "compress", exhausted)
  cups = save_image(tmp_path / "cups.png", fixture_image("cups_61x37.png"))
  assert cli.main(["compress", "--model", hyperprior_dir, cups, str(tmp_path / "c.jxc")]) == 2
  _one_line_error(capsys.readouterr().err, "out of memory", "--max-pixels")
