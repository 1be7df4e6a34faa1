"""`jaxcomp bench all` and `jaxcomp bench report`: plans, results file, merged table, charts.

Tiny shapes, no timing asserted: one real `bench all` entry (upsample, child process) end to end,
and a report over two synthetic machines covering every table.
"""

import copy
import json
import os

import pytest

from jaxcomp import cli
from jaxcomp.bench import all as bench_all
from jaxcomp.bench import report
from jaxcomp.errors import UserError

TRAIN = {"benchmark": "train-step", "N": 128, "M": 192, "batch": 8, "patch": 256,
         "dtype": "float32", "step_s": 2.0, "step_min_s": 1.9, "step_max_s": 2.2,
         "images_per_s": 4.0, "compile_s": 30.0, "flops_per_step": 3.16e11,
         "achieved_flops_per_s": 1.58e11, "mfu": 0.44, "compressai_step_s": 4.0,
         "ratio_vs_compressai": 0.5}
RESULTS = {
    "format": "jaxcomp-bench", "version": 1, "name": "cpu", "preset": "full",
    "created": "2026-01-01T00:00:00+00:00",
    "machine": {"platform": "cpu", "device_kind": "cpu", "device_count": 1, "jax": "0.10.2",
                "memory_bytes": 2**34},
    "entries": {
        "train-step": {"benchmark": "train-step", "args": [], "result": TRAIN},
        "train-step-bf16": {"benchmark": "train-step", "args": [],
                            "result": {**TRAIN, "dtype": "bfloat16", "step_s": 1.0}},
        "scaling": {"benchmark": "train-step", "args": [], "result": {**TRAIN, "scaling": [
            {"devices": 1, "images_per_s": 4.0, "efficiency": 1.0},
            {"devices": 2, "images_per_s": 7.0, "efficiency": 0.875}]}},
        "upsample": {"benchmark": "upsample", "args": [], "result": {
            "batch": 8, "size": 64, "channels": 128, "phase_s": 0.1, "lax_s": 8.0,
            "zero_insert_s": 1.0, "lax_vs_phase": 80.0}},
        "metrics": {"benchmark": "metrics", "args": [], "result": {
            "batch": 8, "size": [256, 256],
            "metrics": {"mse": {"jax_s": 0.01, "compile_s": 1.0, "ref_s": 0.02, "speedup": 2.0},
                        "lpips": {"skipped": "weights not fetched"}}}},
        "codec": {"benchmark": "codec", "args": [], "result": {
            "height": 512, "width": 768, "compress_s": 0.5, "decompress_s": 0.6,
            "coding_encode_s": 0.01, "coding_decode_s": 0.02, "bpp": 0.3}},
        "precision": {"benchmark": "precision", "args": [], "result": {
            "height": 512, "width": 768, "bpp_float32": 0.5, "bpp_bfloat16": 0.5001,
            "rate_rel_diff": 2e-4, "psnr_diff_db": 0.01, "agreement_psnr_db": 50.0,
            "forward_float32_s": 0.2, "forward_bfloat16_s": 0.1}},
        "broken": {"benchmark": "codec", "args": [], "error": "exit status 1"},
    },
}


def _write(path, data):
  with open(path, "w") as f:
    json.dump(data, f)
  return str(path)


def test_plan_presets_and_only():
  for preset in bench_all.PRESETS:
    steps = bench_all.plan(preset, model="M", image="I")
    assert [s[0] for s in steps] == list(bench_all.ENTRIES)
  steps = bench_all.plan("quick", only="codec,train-step", model="M", image="I", peak_flops=1e12)
  assert [s[0] for s in steps] == ["codec", "train-step"]
  assert "M" in steps[0][2] and "I" in steps[0][2]
  assert steps[1][2][-2:] == ["--peak-flops", "1000000000000.0"]


def test_unknown_entry_is_a_user_error(tmp_path, capsys):
  assert cli.main(["bench", "all", "--quick", "--only", "nope", "--out",
                   str(tmp_path / "r.json")]) == 2
  assert "unknown entries nope" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "r.json")


def test_scaling_gets_forced_devices_only_on_cpu(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  assert "count=8" in bench_all._child_env("scaling", True, 8)["XLA_FLAGS"]
  assert "XLA_FLAGS" not in bench_all._child_env("scaling", False, 8)
  assert "XLA_FLAGS" not in bench_all._child_env("codec", True, 8)


@pytest.mark.slow
def test_bench_all_writes_results_and_report_merges_them(tmp_path):
  out = tmp_path / "results" / "here.json"
  assert cli.main(["bench", "all", "--quick", "--only", "upsample", "--out", str(out)]) == 0
  data = json.loads(out.read_text())
  assert data["format"] == "jaxcomp-bench" and data["preset"] == "quick"
  assert data["name"] == "here"
  for key in ("platform", "device_kind", "device_count", "jax", "jaxlib", "cpu_model",
              "memory_bytes"):
    assert key in data["machine"]
  result = data["entries"]["upsample"]["result"]
  assert result["phase_s"] > 0 and result["phase_min_s"] <= result["phase_s"] <= result["phase_max_s"]
  md = tmp_path / "bench.md"
  assert cli.main(["bench", "report", str(out), "--out", str(md)]) == 0
  assert "Up-sampling convolution" in md.read_text()


def test_report_tables_ratios_and_charts(tmp_path):
  fast = copy.deepcopy(RESULTS)
  fast["name"] = "gpu"
  fast["entries"]["train-step"]["result"]["step_s"] = 0.5
  paths = [_write(tmp_path / "cpu.json", RESULTS), _write(tmp_path / "gpu.json", fast)]
  md = tmp_path / "benchmarks.md"
  assert cli.main(["bench", "report", *paths, "--out", str(md), "--baseline", "cpu",
                   "--plot", "--note", "Measured on a quiet machine."]) == 0
  text = md.read_text()
  assert "Measured on a quiet machine." in text
  for title in ("Machines", "Training step", "Data-parallel scaling", "Up-sampling", "Metric",
                "Codec", "bfloat16 transforms"):
    assert title in text
  assert "cpu (baseline)" in text
  assert "4.00x" in text  # gpu train step: 2.0 s baseline / 0.5 s
  assert "44.00%" in text  # MFU
  assert "weights not fetched" in text and "broken (exit status 1)" in text
  for key in ("train_step", "scaling", "upsample", "metrics", "codec", "precision"):
    assert (tmp_path / f"benchmarks_{key}.png").stat().st_size > 0


def test_report_rejects_other_files_and_unknown_baseline(tmp_path, capsys):
  bad = _write(tmp_path / "bad.json", {"hello": 1})
  assert cli.main(["bench", "report", bad, "--out", str(tmp_path / "x.md")]) == 2
  assert "not a `jaxcomp bench all` or `jaxcomp bench device` results file" in capsys.readouterr().err
  good = _write(tmp_path / "cpu.json", RESULTS)
  assert cli.main(["bench", "report", good, "--out", str(tmp_path / "x.md"),
                   "--baseline", "tpu"]) == 2
  assert "no results named 'tpu'" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "x.md")


def test_report_module_loads_results(tmp_path):
  path = _write(tmp_path / "cpu.json", RESULTS)
  assert report.load(path)["name"] == "cpu"
  with pytest.raises(UserError, match="cannot read"):
    report.load(str(tmp_path / "missing.json"))
