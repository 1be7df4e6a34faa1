"""Issue 17 item 5: write errors are one line naming the user's path, nothing half-written."""

import os
import subprocess
import sys

import numpy as np
import pytest

from coding_models import fixture_image
from jaxcomp import cli
from jaxcomp.codec import export
from jaxcomp.errors import UserError
from jaxcomp.train import checkpoint, config_lib, train
from reliability_files import save_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _one_line_error(err, *needles):
  assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
  assert ".jaxcomp-" not in err, err  # never the temporary path
  for needle in needles:
    assert needle in err, err


def test_file_size_limit_efbig(tmp_path, hyperprior_dir):
  image = save_image(tmp_path / "kite.png", fixture_image("kite_96x80.png"))
  out = str(tmp_path / "kite.jxc")

  script = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))  # the bitstream is ~600 B\n"
            "from jaxcomp import cli\n"
            f"sys.exit(cli.main(['compress', '--model', {hyperprior_dir!r}, {image!r}, {out!r}]))")
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        env=dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO), timeout=300)
  assert proc.returncode == 2
  _one_line_error(proc.stderr, f"cannot write {out}", "File too large")
  assert sorted(os.listdir(tmp_path)) == ["kite.png"]  # no output, no temporary left


def test_file_where_a_directory_is_needed(tmp_path, hyperprior_dir, capsys):
  image = save_image(tmp_path / "cups.png", fixture_image("cups_61x37.png"))
  (tmp_path / "afile").write_text("x")
  assert cli.main(["compress", "--model", hyperprior_dir, image,
                   str(tmp_path / "afile" / "out.jxc")]) == 2
  _one_line_error(capsys.readouterr().err, "afile", "not a directory")


def test_compress_refuses_to_overwrite_its_input(tmp_path, hyperprior_dir, capsys):
  image = save_image(tmp_path / "same.png", fixture_image("cups_61x37.png"))
  before = open(image, "rb").read()
  assert cli.main(["compress", "--model", hyperprior_dir, image, image]) == 2
  _one_line_error(capsys.readouterr().err, "is the input itself")
  assert open(image, "rb").read() == before


def test_export_out_on_an_existing_file(tmp_path):
  (tmp_path / "model").write_text("not a directory")
  with pytest.raises(UserError, match="a file of that name is in the way"):
    export.save(str(tmp_path / "model"), "bmshj2018-hyperprior", 8, 12, {"params": {}})
  (tmp_path / "photos").mkdir()
  (tmp_path / "photos" / "keep.png").write_text("precious")
  with pytest.raises(UserError, match="not an exported model; refusing to replace it"):
    export.save(str(tmp_path / "photos"), "bmshj2018-hyperprior", 8, 12, {"params": {}})
  assert (tmp_path / "photos" / "keep.png").read_text() == "precious"


def test_train_workdir_on_a_file(tmp_path):
  (tmp_path / "run").write_text("x")
  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  with pytest.raises(UserError, match="is a file, not a directory"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_failed_checkpoint_write_is_one_line():
  """orbax reports a failed asynchronous write (here tensorstore's EFBIG, as a training under
  `prlimit --fsize` gets it) at the next save or at the end: one line with the OS reason."""
  tensorstore_text = ('OUT_OF_RANGE: Error writing "params.g_a/0" in OCDBT database at local file '
                      '"/w/checkpoints/2.orbax-checkpoint-tmp/state/": Failed to write 87870 '
                      "bytes to file 17: File too large [os_error_code='27']\nmore detail")

  class FailingManager:
    directory = "/w/checkpoints"

    def save(self, *args, **kwargs):
      raise ValueError(tensorstore_text)

    wait_until_finished = save

    def close(self):
      pass

  class State:  # what `checkpoint.save` reads of a TrainState
    params = {"w": np.ones(3, np.float32)}
    opt_state = {"m": np.zeros(3, np.float32)}
    step = np.asarray(4, np.int32)

  with pytest.raises(UserError) as e:
    checkpoint.save(FailingManager(), State(), {"next_example": 0, "seed": 0})
  assert str(e.value) == ("cannot write checkpoints in /w/checkpoints (a save failed by step 4): "
                          "File too large")
  with pytest.raises(UserError, match="^cannot write checkpoints in /w/checkpoints: File too "
                                      "large$"):
    checkpoint.finish(FailingManager())
