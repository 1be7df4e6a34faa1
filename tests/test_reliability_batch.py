"""Issue 17 item 4: batches are per file, the same way in compress, decompress and eval.

One input that fails (unreadable, or a bitstream that passes the container checks but cannot be
decoded) gets one `error: PATH: ...` line and no output; the others are written; exit 1. All
failing: exit 2, nothing written.
"""

import os

from coding_models import fixture_image
from jaxcomp import cli
from reliability_files import join, save_image, split


def _inputs(tmp_path, n=3):
  kite = fixture_image("kite_96x80.png")
  return [save_image(tmp_path / f"in{i}.png", kite[i:i + 40, i:i + 50]) for i in range(n)]


def test_compress_batch_writes_the_good_files_and_names_the_bad_one(tmp_path, hyperprior_dir,
                                                                    capsys):
  good = _inputs(tmp_path)
  bad = tmp_path / "bad.png"
  bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
  out = tmp_path / "out"
  assert cli.main(["compress", "--model", hyperprior_dir, *good, str(bad), str(out)]) == 1
  err = capsys.readouterr().err.splitlines()
  assert sorted(os.listdir(out)) == ["in0.jxc", "in1.jxc", "in2.jxc"]
  assert len(err) == 2 and "bad.png" in err[0] and err[1].startswith("error: 1 of 4 inputs")


def test_decompress_batch_with_an_undecodable_file(tmp_path, hyperprior_dir, capsys):
  streams = tmp_path / "streams"
  assert cli.main(["compress", "--model", hyperprior_dir, *_inputs(tmp_path), str(streams)]) == 0
  fields, z, _ = split((streams / "in1.jxc").read_bytes())
  (streams / "in1.jxc").write_bytes(join(fields, z, b""))  # y removed, CRC recomputed
  names = sorted(os.listdir(streams))
  capsys.readouterr()
  back = tmp_path / "back"
  assert cli.main(["decompress", "--model", hyperprior_dir,
                   *[str(streams / n) for n in names], str(back)]) == 1
  err = capsys.readouterr().err.splitlines()
  assert sorted(os.listdir(back)) == ["in0.png", "in2.png"]
  assert "in1.jxc" in err[0] and "y stream" in err[0] and "2 inputs" not in err[0]
  assert err[-1].startswith("error: 1 of 3 inputs failed")
  # All failing: exit 2 and nothing written.
  assert cli.main(["decompress", "--model", hyperprior_dir, str(streams / "in1.jxc"),
                   str(tmp_path / "none.png")]) == 2
  assert not os.path.exists(tmp_path / "none.png")


def test_eval_has_the_same_per_file_semantics(tmp_path, hyperprior_dir, capsys):
  images = tmp_path / "images"
  images.mkdir()
  _inputs(images, 2)
  (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  out = tmp_path / "results.json"
  assert cli.main(["eval", "--model", hyperprior_dir, "--images", str(images), "--out", str(out),
                   "--metrics", "psnr"]) == 1
  err = capsys.readouterr().err
  assert "broken.png" in err and os.path.exists(out)
