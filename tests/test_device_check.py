"""The accelerator check (scripts/device_check.sh, `jaxcomp bench device`) on the CPU backend.

The smoke preset's cheap parts run in this process with a short budget (the JSON contract that
outside scripts read: the top-level keys and each part's schema); the script's wheel handling
runs as a subprocess: a missing package is one `error:` line naming it, and a wheel in the wheel
folder is installed into a temporary site and found.
"""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from jaxcomp.bench import device, report
from jaxcomp.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "device_check.sh")


def _script(tmp_path, *args, **env):
  environ = dict(os.environ, PYTHON=sys.executable,
                 DEVICE_CHECK_SITE=str(tmp_path / "site"), **env)
  return subprocess.run(["bash", SCRIPT, *args], capture_output=True, text=True, env=environ,
                        check=False, timeout=120)


def test_missing_package_is_one_error_line(tmp_path):
  (tmp_path / "wheels").mkdir()
  done = _script(tmp_path, "--out", str(tmp_path / "out"),
                 DEVICE_CHECK_MODULES="json jaxcomp_absent_probe",
                 DEVICE_CHECK_WHEELS=str(tmp_path / "wheels"))
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: missing Python packages")
  assert "jaxcomp_absent_probe" in lines[0] and "json (" not in lines[0]


def _probe_wheel(folder, name):
  """A minimal pure-Python wheel holding module `name` (what pip needs to install it)."""
  path = folder / f"{name}-1.0-py3-none-any.whl"
  info = f"{name}-1.0.dist-info"
  files = {f"{name}.py": "VALUE = 1\n",
           f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
           f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                            "Tag: py3-none-any\n"}
  with zipfile.ZipFile(path, "w") as z:
    for member, text in files.items():
      z.writestr(member, text)
    z.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in files) + f"{info}/RECORD,,\n")
  return path


def test_missing_package_installed_from_wheel_folder(tmp_path):
  wheels = tmp_path / "wheels"
  wheels.mkdir()
  _probe_wheel(wheels, "jaxcomp_probe_mod")
  done = _script(tmp_path, "--out", str(tmp_path / "out"), "--help",
                 DEVICE_CHECK_MODULES="jaxcomp_probe_mod", DEVICE_CHECK_WHEELS=str(wheels))
  assert done.returncode == 0, done.stderr
  assert "installing 1 wheel(s)" in done.stdout
  assert (tmp_path / "site" / "jaxcomp_probe_mod.py").is_file()
  assert "--preset" in done.stdout  # `jaxcomp bench device --help` ran, with the log beside it
  assert (tmp_path / "out" / "device_check.log").is_file()


def test_unknown_part_is_a_user_error(tmp_path, capsys):
  assert main(["bench", "device", "--out", str(tmp_path), "--parts", "train_step,nope"]) == 2
  assert "unknown parts nope" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """The smoke preset's cheaper parts on synthetic photos, in two calls: the training step on a
  20 s budget (its first batch size always runs), then the training run (6 s), codec and
  determinism with their preset budgets (every part runs, however loaded the machine)."""
  out = tmp_path_factory.mktemp("device")
  step_code = main(["bench", "device", "--preset", "smoke", "--out", str(out), "--name", "step",
                    "--parts", "train_step", "--budget-s", "20"])
  code = main(["bench", "device", "--preset", "smoke", "--out", str(out), "--name", "ci",
               "--parts", "training_run,codec,determinism", "--train-seconds", "6",
               "--budget-s", "600"])
  with open(out / "ci.json") as f:
    data = json.load(f)
  with open(out / "step.json") as f:
    data["train_step"] = json.load(f)["train_step"]
  return max(code, step_code), data, out


@pytest.mark.slow
def test_smoke_json_contract(smoke):
  code, data, out = smoke
  assert code == 0
  assert not (out / "ci.partial.json").exists()
  assert set(device.TOP_KEYS) <= set(data)
  assert data["format"] == device.FORMAT and data["preset"] == "smoke" and data["complete"]
  assert data["metrics"] == {"skipped": "not selected (--parts)"}
  assert data["budget_s"] == 600
  machine = data["machine"]
  assert machine["platform"] == "cpu" and machine["data"] == "synthetic"
  assert {"device_kind", "jax", "cpu_devices", "peaks", "xla_optimizations"} <= set(machine)
  assert set(data["targets"]) == {"mfu_bf16", "training_throughput", "bit_exact"}


@pytest.mark.slow
def test_smoke_train_step_schema(smoke):
  part = smoke[1]["train_step"]
  assert (part["N"], part["M"], part["patch"]) == (16, 24, 64)
  first = part["sweeps"]["float32"][0]
  assert first["batch"] == 1 and first["images_per_s"] == pytest.approx(1 / first["step_s"])
  assert first["flops_per_step"] > 0 and first["compile_s"] > 0 and 0 < first["mfu"] < 1
  assert part["best"]["float32"]["images_per_s"] >= first["images_per_s"]


@pytest.mark.slow
def test_smoke_training_run_schema(smoke):
  part = smoke[1]["training_run"]
  assert "skipped" not in part, part
  assert part["steps"] >= 2 and part["steps_per_s"] > 0 and part["history"]
  row = part["history"][-1]
  assert {"step", "time_s", "loss", "bpp", "psnr"} <= set(row) and row["bpp"] > 0
  assert 0 <= part["input_wait_fraction"] < 1 and part["pipeline"]["batches_per_s"] > 0
  assert part["pipeline_headroom"] > 0


@pytest.mark.slow
def test_smoke_codec_and_determinism(smoke):
  data = smoke[1]
  codec = data["codec"]
  assert codec["model"].startswith("trained here")
  for (height, width) in device.PRESETS["smoke"].codec_sizes:
    row = codec["images"][f"{width}x{height}"]
    if "skipped" in row:
      continue
    assert row["compress_s"] > 0 and row["entropy_coding_s"] > 0 and row["transforms_s"] > 0
  det = data["determinism"]
  assert det["gpu_to_cpu"].startswith("not available")
  cases = [c for c in det["cases"] if "files" in c]
  assert cases and det["all_bit_exact"] and det["crc_mismatches"] == 0
  assert det["bit_exact_files"] == det["files"] == sum(c["files"] for c in cases)
  assert {c["devices"] for c in cases} == {1, 2}  # conftest's forced host devices


@pytest.mark.slow
def test_report_merges_device_json(smoke, tmp_path):
  merged = tmp_path / "ci.json"  # both calls' parts in one file
  merged.write_text(json.dumps(smoke[1]))
  cpu = os.path.join(REPO, "results", "cpu-2core.json")
  page = tmp_path / "bench.md"
  assert main(["bench", "report", cpu, str(merged), "--out", str(page)]) == 0
  text = page.read_text()
  assert "# Accelerator check" in text and "No GPU run yet" in text
  low, high = report.COMPRESSAI_DERIVED_PATCHES_PER_S
  assert f"| {report._num(low)} |" in text and f"| {report._num(high)} |" in text
  assert "CompressAI (reference, published, CUDA)" in text
  assert "cpu->cpu" in text and "Training run on the device" in text
  assert "Batch sweep of the training step" in text
