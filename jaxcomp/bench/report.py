"""`jaxcomp bench report`: results JSONs of several machines -> one markdown table (and charts).

    jaxcomp bench report results/*.json --out benchmarks.md [--baseline NAME] [--plot] [--note TEXT]

Reads files written by `jaxcomp bench all` (one per machine) and writes one markdown page: the
machines, then one table per benchmark with a row per machine. Times are the medians the
benchmarks measured after compilation (min-max beside them where recorded). Every table has a
"vs baseline" column: the baseline machine's time divided by this row's (above 1: faster than the
baseline), given only where both rows ran the same shapes. The baseline is --baseline (a result
`name`), by default the first file. Ratios against CompressAI and the PyTorch metric references
come from the same run on the same machine, so they hold on a noisy machine where absolute times
do not.

--plot also writes bar charts (matplotlib, Agg backend) beside the page, <out stem>_<table>.png,
and links them from it. The page and charts are written whole or not at all.
"""

import json
import os

import numpy as np

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path

_FORMAT = "jaxcomp-bench"
_DEVICE_FORMAT = "jaxcomp-device-check"

# CompressAI's training throughput derived from its zoo recipe (docs/zoo.rst, read in
# ../shared/reference/codec.md): about 4-5M steps (midpoint 4.5M) of batch 16 or 32 on 256x256
# crops in "one or two weeks". Slowest reading: batch 16 over two weeks; fastest: batch 32 over
# one week. Patches (images) per second per GPU, assuming one GPU per model.
COMPRESSAI_ZOO_STEPS = 4.5e6
COMPRESSAI_DERIVED_PATCHES_PER_S = (COMPRESSAI_ZOO_STEPS * 16 / (14 * 86400),
                                    COMPRESSAI_ZOO_STEPS * 32 / (7 * 86400))
# CompressAI's published timings of its pretrained models, quality 3 (N=128, M=192), on the 24
# Kodak images (768x512): mean encode / decode seconds per image, real bitstreams (ANS), from
# CompressAI results/image/kodak/compressai-<arch>_mse_{cuda,cpu}.json (commit 869a9f5). The
# GPU model is not stated there.
COMPRESSAI_KODAK_Q3 = {
    ("bmshj2018-hyperprior", "cuda"): (0.04105, 0.02418),
    ("mbt2018-mean", "cuda"): (0.03864, 0.02292),
    ("bmshj2018-hyperprior", "cpu"): (0.6932, 0.8950),
    ("mbt2018-mean", "cpu"): (0.7072, 0.9073),
}


def add_arguments(parser):
  parser.add_argument("results", nargs="+", help="results JSONs from `jaxcomp bench all` and "
                      "`jaxcomp bench device` (scripts/device_check.sh)")
  parser.add_argument("--out", required=True, help="markdown file to write")
  parser.add_argument("--baseline", help="name of the baseline machine (default: the first file)")
  parser.add_argument("--plot", action="store_true", help="also write bar charts (PNG)")
  parser.add_argument("--note", action="append", default=[],
                      help="a paragraph to add under the title (repeatable), e.g. how the "
                      "machines were loaded")


def load(path):
  """One results file, checked."""
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path}: {e}") from None
  if not isinstance(data, dict) or data.get("format") not in (_FORMAT, _DEVICE_FORMAT):
    raise UserError(f"{path} is not a `jaxcomp bench all` or `jaxcomp bench device` results file")
  return data


def _num(value, digits=3):
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  if value == 0 or 1e-3 <= abs(value) < 1e5:
    return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
  return f"{value:.2e}"


def _percent(value):
  return "-" if value is None else f"{100 * value:.2f}%"


def _spread(result, low, high):
  if result.get(low) is None or result.get(high) is None:
    return "-"
  return f"{_num(result[low])}-{_num(result[high])}"


def _versus(baseline, value):
  return "-" if not baseline or not value else f"{baseline / value:.2f}x"


class Table:
  """A markdown table with a baseline column and optional bar-chart series."""

  def __init__(self, key, title, note, columns):
    self.key, self.title, self.note, self.columns = key, title, note, columns
    self.rows = []
    self.chart = {}  # series label -> {machine: value}
    self.chart_label = ""

  def add(self, cells):
    self.rows.append(cells)

  def plot(self, machine, label, value):
    if value is not None:
      self.chart.setdefault(label, {})[machine] = value

  def markdown(self):
    lines = [f"## {self.title}", "", self.note, "",
             "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in self.rows]
    return "\n".join(lines) + "\n"


def _entries(data, benchmark):
  """(entry name, result) of the successful entries of one benchmark, in file order."""
  return [(name, record["result"]) for name, record in data["entries"].items()
          if record.get("benchmark") == benchmark and "result" in record]


def _baseline_lookup(baseline, benchmark):
  return {(name, _shape(benchmark, result)): result
          for name, result in _entries(baseline, benchmark)} if baseline else {}


def _shape(benchmark, r):
  """A string naming the shapes a result was measured at (rows compare only at equal shapes)."""
  if benchmark == "train-step":
    return f"{r.get('batch')}x{r.get('patch')}^2 N{r.get('N')} M{r.get('M')} {r.get('dtype', 'float32')}"
  if benchmark == "upsample":
    return f"{r.get('batch')}x{r.get('size')}^2x{r.get('channels')}"
  if benchmark == "metrics":
    return f"{r.get('batch')}x{'x'.join(str(s) for s in r.get('size', []))}"
  return f"{r.get('height')}x{r.get('width')}"


def _train_step(files, baseline):
  table = Table("train_step", "Training step (bmshj2018-hyperprior, MSE + rate, Adam)",
                "Median s/step after compilation, one device. MFU: XLA's FLOP count of the "
                "compiled step / step time / the device's peak (`jaxcomp.bench.flops`; CPU peaks "
                "are estimates). CompressAI: the same step in the same run.",
                ["machine", "entry", "shape", "s/step", "min-max", "images/s", "compile s",
                 "GFLOP/step", "TFLOP/s", "MFU", "CompressAI s/step", "jaxcomp / CompressAI",
                 "vs baseline"])
  base = _baseline_lookup(baseline, "train-step")
  for data in files:
    for entry, r in _entries(data, "train-step"):
      if entry == "scaling":
        continue
      shape = _shape("train-step", r)
      ref = base.get((entry, shape), {})
      table.add([data["name"], entry, shape, _num(r["step_s"]),
                 _spread(r, "step_min_s", "step_max_s"), _num(r.get("images_per_s")),
                 _num(r.get("compile_s"), 1),
                 _num(r["flops_per_step"] / 1e9 if r.get("flops_per_step") else None, 1),
                 _num(r["achieved_flops_per_s"] / 1e12 if r.get("achieved_flops_per_s") else None),
                 _percent(r.get("mfu")), _num(r.get("compressai_step_s")),
                 _num(r.get("ratio_vs_compressai"), 2), _versus(ref.get("step_s"), r["step_s"])])
      table.plot(data["name"], f"jaxcomp {r.get('dtype', 'float32')}", r["step_s"])
      table.plot(data["name"], "CompressAI", r.get("compressai_step_s"))
  table.chart_label = "s/step"
  return table


def _scaling(files, baseline):
  table = Table("scaling", "Data-parallel scaling (pmap, weak scaling)",
                "Images/s of the pmapped step with a fixed batch per device over 1, 2, 4, ... "
                "local devices; efficiency = per-device images/s relative to one device. Forced "
                "host devices on a CPU-only machine share its cores (this measures pmap's "
                "overhead, not a speed-up).",
                ["machine", "per-device shape", "devices", "images/s", "efficiency",
                 "vs baseline (1 device)"])
  base = dict(_entries(baseline, "train-step")).get("scaling") if baseline else None
  for data in files:
    r = dict(_entries(data, "train-step")).get("scaling")
    if not r:
      continue
    rows = r.get("scaling") or [{"devices": 1, "images_per_s": r["images_per_s"],
                                 "efficiency": 1.0}]
    shape = _shape("train-step", r)
    same = base is not None and _shape("train-step", base) == shape
    table.add([data["name"], shape, " / ".join(str(x["devices"]) for x in rows),
               " / ".join(_num(x["images_per_s"]) for x in rows),
               " / ".join(f"{x['efficiency']:.2f}" for x in rows),
               _versus(r["images_per_s"], base["images_per_s"]) if same else "-"])
    for x in rows:
      table.plot(data["name"], f"{x['devices']} device(s)", x["images_per_s"])
  table.chart_label = "images/s"
  return table


def _upsample(files, baseline):
  table = Table("upsample", "Up-sampling convolution (5x5 stride 2, forward + backward)",
                "Median s. phase: jaxcomp's sub-pixel form (used by the codec); zero_insert and "
                "lax: the alternatives; torch: PyTorch's ConvTranspose2d, same run.",
                ["machine", "shape", "phase s", "min-max", "zero_insert s", "lax s", "torch s",
                 "lax / phase", "torch / phase", "vs baseline (phase)"])
  base = _baseline_lookup(baseline, "upsample")
  for data in files:
    for entry, r in _entries(data, "upsample"):
      shape = _shape("upsample", r)
      ref = base.get((entry, shape), {})
      table.add([data["name"], shape, _num(r["phase_s"]), _spread(r, "phase_min_s", "phase_max_s"),
                 _num(r.get("zero_insert_s")), _num(r.get("lax_s")), _num(r.get("torch_s")),
                 _num(r.get("lax_vs_phase"), 2), _num(r.get("torch_vs_phase"), 2),
                 _versus(ref.get("phase_s"), r["phase_s"])])
      for variant in ("phase", "zero_insert", "lax", "torch"):
        table.plot(data["name"], variant, r.get(f"{variant}_s"))
  table.chart_label = "s"
  return table


def _metrics(files, baseline):
  table = Table("metrics", "Metric losses (forward + backward)",
                "Median s of value-and-gradient for the batch; reference: the PyTorch package, "
                "same run; speed-up = reference s / jax s.",
                ["machine", "shape", "metric", "jax s", "compile s", "reference s",
                 "speed-up vs reference", "vs baseline"])
  base = _baseline_lookup(baseline, "metrics")
  for data in files:
    for entry, r in _entries(data, "metrics"):
      shape = _shape("metrics", r)
      ref = base.get((entry, shape), {}).get("metrics", {})
      for metric, m in r.get("metrics", {}).items():
        if "jax_s" not in m:
          table.add([data["name"], shape, metric, m.get("skipped", "-"), "-", "-", "-", "-"])
          continue
        table.add([data["name"], shape, metric, _num(m["jax_s"]), _num(m.get("compile_s"), 1),
                   _num(m.get("ref_s")), _num(m.get("speedup"), 2),
                   _versus(ref.get(metric, {}).get("jax_s"), m["jax_s"])])
        table.plot(data["name"], metric, m["jax_s"])
  table.chart_label = "s (jax)"
  return table


def _codec(files, baseline):
  table = Table("codec", "Codec (one image, compress / decompress)",
                "Median s, the entropy coder's share separately (ms); CompressAI on the same "
                "weights in the same run; ratio = jaxcomp / CompressAI (below 1: jaxcomp faster).",
                ["machine", "image", "compress s", "decompress s", "coding enc / dec ms", "bpp",
                 "CompressAI compress / decompress s", "ratio compress / decompress",
                 "vs baseline (compress)"])
  base = _baseline_lookup(baseline, "codec")
  for data in files:
    for entry, r in _entries(data, "codec"):
      shape = _shape("codec", r)
      ref = base.get((entry, shape), {})
      table.add([data["name"], shape, _num(r["compress_s"]), _num(r["decompress_s"]),
                 f"{_num(1e3 * r['coding_encode_s'])} / {_num(1e3 * r['coding_decode_s'])}",
                 _num(r.get("bpp")),
                 f"{_num(r.get('compressai_compress_s'))} / "
                 f"{_num(r.get('compressai_decompress_s'))}",
                 f"{_num(r.get('compress_ratio'), 2)} / {_num(r.get('decompress_ratio'), 2)}",
                 _versus(ref.get("compress_s"), r["compress_s"])])
      for key, label in (("compress_s", "compress"), ("decompress_s", "decompress"),
                         ("compressai_compress_s", "CompressAI compress"),
                         ("compressai_decompress_s", "CompressAI decompress")):
        table.plot(data["name"], label, r.get(key))
  table.chart_label = "s"
  return table


def _precision(files, baseline):
  table = Table("precision", "bfloat16 transforms vs float32 (inference forward pass)",
                "Same weights and image; entropy models float32 in both. Rate difference "
                "relative; agreement: PSNR of the bfloat16 reconstruction against the float32 one.",
                ["machine", "image", "bpp fp32", "bpp bf16", "rate diff", "PSNR diff dB",
                 "agreement dB", "fp32 s", "bf16 s", "bf16 speed-up", "vs baseline (bf16)"])
  base = _baseline_lookup(baseline, "precision")
  for data in files:
    for entry, r in _entries(data, "precision"):
      shape = _shape("precision", r)
      ref = base.get((entry, shape), {})
      table.add([data["name"], shape, _num(r["bpp_float32"], 4), _num(r["bpp_bfloat16"], 4),
                 _percent(r["rate_rel_diff"]), _num(r["psnr_diff_db"]),
                 _num(r["agreement_psnr_db"], 1), _num(r["forward_float32_s"]),
                 _num(r["forward_bfloat16_s"]),
                 _versus(r["forward_float32_s"], r["forward_bfloat16_s"]),
                 _versus(ref.get("forward_bfloat16_s"), r["forward_bfloat16_s"])])
      table.plot(data["name"], "float32", r["forward_float32_s"])
      table.plot(data["name"], "bfloat16", r["forward_bfloat16_s"])
  table.chart_label = "s"
  return table


def _machines(files, baseline_name):
  lines = ["## Machines", "",
           "| name | preset | platform | device | devices | CPU | cores | memory | jax | jaxlib "
           "| torch | compressai | created |", "|" + "---|" * 13]
  for data in files:
    m = data["machine"]
    memory = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "-"
    name = data["name"] + (" (baseline)" if data["name"] == baseline_name else "")
    lines.append("| " + " | ".join(str(c if c is not None else "-") for c in (
        name, data.get("preset"), m.get("platform"), m.get("device_kind"), m.get("device_count"),
        m.get("cpu_model"), m.get("cpu_logical_cores"), memory, m.get("jax"), m.get("jaxlib"),
        m.get("torch"), m.get("compressai"), data.get("created"))) + " |")
  failed = [f"{data['name']}: {entry} ({record['error']})" for data in files
            for entry, record in data["entries"].items() if "error" in record]
  if failed:
    lines += ["", "Failed entries: " + "; ".join(failed) + "."]
  return "\n".join(lines) + "\n"


def _bar_chart(path, table, machines):
  """Grouped bars: one group per machine, one bar per series."""
  # matplotlib (about half a second to import) only when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  labels = list(table.chart)
  width = 0.8 / len(labels)
  fig, ax = plt.subplots(figsize=(max(5.0, 1.5 + 1.2 * len(machines)), 3.6))
  positions = np.arange(len(machines))
  for i, label in enumerate(labels):
    values = [table.chart[label].get(m, np.nan) for m in machines]
    ax.bar(positions + (i - (len(labels) - 1) / 2) * width, values, width, label=label)
  ax.set_xticks(positions, machines)
  ax.set_ylabel(table.chart_label)
  ax.set_title(table.title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def build_tables(files, baseline):
  return [section(files, baseline) for section in (_train_step, _scaling, _upsample, _metrics,
                                                    _codec, _precision)]

# ----------------------------------------------------------------------------- accelerator check


def _part(data, key):
  """A device check's part when it ran, else None."""
  part = data.get(key)
  return part if isinstance(part, dict) and "skipped" not in part and "error" not in part else None


def _label(data):
  m = data.get("machine", {})
  return f"{data['name']} ({m.get('device_kind', '?')}, preset {data.get('preset')})"


def _not_run(files, key):
  """'name: why' for device files whose part did not run."""
  notes = []
  for data in files:
    part = data.get(key) or {}
    if "skipped" in part or "error" in part:
      notes.append(f"{data['name']}: {part.get('skipped') or 'error: ' + part['error']}")
  return notes


def _throughput(bench_files, device_files):
  low, high = COMPRESSAI_DERIVED_PATCHES_PER_S
  table = Table(
      "device_throughput",
      "Training throughput per device (bmshj2018-hyperprior N=128/M=192, 256x256 crops)",
      "Images (256x256 patches) per second of the training step on one device: the best batch of "
      "the device check's sweep, the steps/s the 3-minute training run sustained with its input "
      "pipeline (quality 3), and the CPU rows of `jaxcomp bench all` (quality 1: the same "
      "shapes, another lambda). MFU: XLA's FLOP count / step time / "
      "the device's peak for the precision (float32 at JAX's default precision is TF32 on NVIDIA; "
      "`jaxcomp.bench.flops`). Reference: CompressAI's throughput derived from its zoo recipe "
      f"(about 4.5M steps of batch 16-32 in one to two weeks: {low:.0f}-{high:.0f} patches/s per "
      "GPU); the issue's target is 10x that, and at least 30% MFU in bfloat16.",
      ["machine", "what", "dtype", "batch", "images/s", "ms/step", "MFU", "compile s",
       "vs CompressAI derived (59.5 / 238)"])
  for data in bench_files:
    for entry, r in _entries(data, "train-step"):
      if entry == "scaling" or r.get("patch") != 256:
        continue
      table.add([data["name"], f"`bench all` {entry}", r.get("dtype", "float32"), r.get("batch"),
                 _num(r.get("images_per_s")), _ms(r["step_s"]), _percent(r.get("mfu")),
                 _num(r.get("compile_s"), 1), _ratio_pair(r.get("images_per_s"))])
  for data in device_files:
    ts, run = _part(data, "train_step"), _part(data, "training_run")
    if ts:
      for dtype, r in (ts.get("best") or {}).items():
        if r:
          table.add([_label(data), "step, best batch of the sweep", dtype, r["batch"],
                     _num(r["images_per_s"]), _ms(r["step_s"]), _percent(r.get("mfu")),
                     _num(r.get("compile_s"), 1), _ratio_pair(r["images_per_s"])])
      for dtype, r in (ts.get("mbt2018_mean") or {}).items():
        if r and "images_per_s" in r:
          table.add([_label(data), "mbt2018-mean step at that batch", dtype, r["batch"],
                     _num(r["images_per_s"]), _ms(r["step_s"]), _percent(r.get("mfu")),
                     _num(r.get("compile_s"), 1), "-"])
    if run and run.get("images_per_s"):
      table.add([_label(data), f"training run, {run['steps']} steps, sustained", run["dtype"],
                 run["batch"], _num(run["images_per_s"]), _ms(1 / run["steps_per_s"]), "-",
                 _num(run.get("first_step_s"), 1), _ratio_pair(run["images_per_s"])])
  table.add(["CompressAI (reference, derived)", "zoo recipe: 4.5M steps x batch 16 / 2 weeks",
             "float32", 16, _num(low), "-", "-", "-", "1x"])
  table.add(["CompressAI (reference, derived)", "zoo recipe: 4.5M steps x batch 32 / 1 week",
             "float32", 32, _num(high), "-", "-", "-", "1x"])
  return table


def _ratio_pair(images_per_s):
  low, high = COMPRESSAI_DERIVED_PATCHES_PER_S
  if not images_per_s:
    return "-"
  return f"{_num(images_per_s / low, 2)}x / {_num(images_per_s / high, 2)}x"


def _ms(seconds):
  """Seconds as milliseconds with 3 significant digits (whole ms from 100 on)."""
  if seconds is None:
    return "-"
  ms = 1e3 * seconds
  return f"{ms:.0f}" if ms >= 100 else f"{ms:.3g}"


def _sweep(device_files):
  table = Table("device_sweep", "Batch sweep of the training step (device check)",
                "Median ms/step after compilation; the sweep doubles the batch until images/s "
                "gains less than 2%, memory runs out or the part's time is spent.",
                ["machine", "arch", "dtype", "batch", "ms/step", "images/s", "GFLOP/step",
                 "TFLOP/s", "MFU", "compile s"])
  for data in device_files:
    ts = _part(data, "train_step")
    if not ts:
      continue
    for dtype, rows in ts.get("sweeps", {}).items():
      for r in rows:
        if "step_s" not in r:
          table.add([_label(data), ts["arch"], dtype, r.get("batch", "-"),
                     r.get("skipped") or r.get("error", "-"), "-", "-", "-", "-", "-"])
          continue
        table.add([_label(data), r["arch"], dtype, r["batch"], _ms(r["step_s"]),
                   _num(r["images_per_s"]),
                   _num(r["flops_per_step"] / 1e9 if r.get("flops_per_step") else None, 1),
                   _num(r["achieved_flops_per_s"] / 1e12 if r.get("achieved_flops_per_s")
                        else None), _percent(r.get("mfu")), _num(r["compile_s"], 1)])
  return table


def _device_metrics(device_files):
  table = Table("device_metrics", "Metric losses on the device (forward + backward)",
                "Median ms of value-and-gradient of the summed loss for the batch, compile apart. "
                "lpips/dists marked 'random' ran on random stand-ins of the pretrained weights "
                "(same time, not carried to the device).",
                ["machine", "shape", "metric", "ms", "images/s", "compile s", "weights"])
  for data in device_files:
    part = _part(data, "metrics")
    if not part:
      continue
    shape = f"{part['batch']}x{'x'.join(str(v) for v in part['size'])}"
    for name, m in part["metrics"].items():
      if "fwd_bwd_s" not in m:
        table.add([_label(data), shape, name, m.get("skipped", "-"), "-", "-", "-"])
        continue
      table.add([_label(data), shape, name, _ms(m["fwd_bwd_s"]),
                 _num(m["images_per_s"]), _num(m["compile_s"], 1),
                 "random" if m.get("weights") else "-"])
  return table


def _device_codec(bench_files, device_files):
  table = Table(
      "device_codec", "Codec on the device: compress / decompress of one photo",
      "Median ms after compilation, split into transforms (analysis + twice the hyper-synthesis, "
      "which always runs on the CPU for determinism, + synthesis) and entropy coding (encode + "
      "decode, constriction on the host). Reference: CompressAI's published mean times per "
      "Kodak image (768x512, quality 3, its own GPU and CPU, not this machine).",
      ["machine", "image", "model", "compress ms", "decompress ms", "transforms ms",
       "entropy coding ms", "bpp", "PSNR dB"])
  for data in bench_files:
    for _, r in _entries(data, "codec"):
      table.add([data["name"], f"{r['width']}x{r['height']}", "untrained q1 (`bench all`)",
                 _ms(r["compress_s"]), _ms(r["decompress_s"]), "-",
                 _ms(r["coding_encode_s"] + r["coding_decode_s"]), _num(r.get("bpp")),
                 "-"])
  for data in device_files:
    part = _part(data, "codec")
    if not part:
      continue
    for key, r in part["images"].items():
      if "compress_s" not in r:
        table.add([_label(data), key, "-", r.get("skipped", "-"), "-", "-", "-", "-", "-"])
        continue
      table.add([_label(data), key, f"N={part['N']} M={part['M']}, {part['model']}",
                 _ms(r["compress_s"]), _ms(r["decompress_s"]),
                 _ms(r["transforms_s"]), _ms(r["entropy_coding_s"]),
                 _num(r["bpp"]), _num(r["psnr"], 4)])
  for (arch, device), (enc, dec) in COMPRESSAI_KODAK_Q3.items():
    table.add([f"CompressAI (reference, published, {device.upper()})", "768x512 (Kodak mean)",
               f"{arch} q3, pretrained", _ms(enc), _ms(dec), "-", "-", "-",
               "-"])
  return table


def _determinism(device_files):
  table = Table("device_determinism", "Cross-device determinism (device check)",
                "Files encoded on one backend (batch of B images, analysis sharded over D devices) "
                "and decoded on another in the same process: bit-exact = the decoded integers "
                "equal the encoded ones; a CRC mismatch would mean the decoder's scale indexes "
                "differ from the encoder's. Pixels: the two decoders' reconstructions compared.",
                ["machine", "case", "B", "D", "files", "bit-exact", "CRC mismatches",
                 "decode errors", "pixels identical", "max pixel diff"])
  for data in device_files:
    part = _part(data, "determinism")
    if not part:
      continue
    for c in part["cases"]:
      if "files" not in c:
        table.add([_label(data), c["case"], c.get("batch", "-"), "-", "-",
                   c.get("skipped", "-"), "-", "-", "-", "-"])
        continue
      table.add([_label(data), c["case"], c["batch"], c["devices"], c["files"],
                 c["symbols_exact"], c["crc_mismatches"], len(c["decode_errors"]),
                 _percent(c["pixels_identical_fraction"]), _num(c["max_pixel_diff"])])
    for key in ("gpu_to_cpu", "cpu_to_gpu"):
      if isinstance(part.get(key), str):
        table.add([_label(data), key.replace("_to_", "->"), "-", "-", "-", part[key], "-", "-",
                   "-", "-"])
  return table


def _training_run(device_files):
  table = Table("device_training", "Training run on the device (loss / bpp / PSNR against steps)",
                "A real run of the training loop's parts for a fixed wall time on the photos "
                "carried along (--data): metrics are means over each logging window (training "
                "noise, not coded bitstreams). Input wait: share of the loop spent waiting for "
                "a batch; headroom: batches/s the input pipeline makes alone / steps/s sustained "
                "(above 1: the pipeline keeps up).",
                ["machine", "step", "s", "loss", "bpp", "PSNR dB"])
  for data in device_files:
    run = _part(data, "training_run")
    if not run:
      continue
    for h in run["history"]:
      table.add([_label(data), h["step"], _num(h["time_s"], 3), _num(h["loss"], 4),
                 _num(h["bpp"], 4), _num(h["psnr"], 4)])
    table.add([_label(data), f"**{run['steps']} steps, {_num(run['steps_per_s'])} steps/s "
               f"sustained ({_num(run['images_per_s'])} images/s, batch {run['batch']}, "
               f"{run['dtype']})**", _num(run["seconds"], 3),
               f"input wait {_percent(run.get('input_wait_fraction'))}",
               f"headroom {_num(run.get('pipeline_headroom'), 3)}x", "-"])
  return table


def device_section(bench_files, device_files):
  """Markdown of the accelerator check: the device tables, with CompressAI's reference lines."""
  accelerators = [d for d in device_files if d.get("machine", {}).get("platform") != "cpu"]
  parts = ["# Accelerator check", ""]
  if not accelerators:
    parts += ["**No GPU run yet.** `scripts/device_check.sh --preset full` (BUILD_NOTES.md, "
              "\"Accelerator check\") has not run on a lent GPU in any session so far: the tables "
              "below hold the CPU rows and CompressAI's reference lines, and gain the GPU rows "
              "when `results/<device>.json` from such a run is passed to `jaxcomp bench report`.",
              ""]
  for data in device_files:
    m = data.get("machine", {})
    memory = (f", {m['device_memory_bytes'] / 2**30:.0f} GiB device memory"
              if m.get("device_memory_bytes") else "")
    parts.append(f"- {_label(data)}: {m.get('device_count')} device(s){memory}, jax "
                 f"{m.get('jax')}, {m.get('cpu_logical_cores')} CPU cores, check wall time "
                 f"{_num(data.get('wall_s'), 3)} s of a {_num(data.get('budget_s'), 3)} s budget"
                 f"{'' if data.get('complete') else ' (incomplete: a part failed)'}; data: "
                 f"{m.get('data')}.")
    targets = data.get("targets") or {}
    if targets:
      mfu = targets.get("mfu_bf16", {})
      thr = targets.get("training_throughput", {})
      exact = targets.get("bit_exact", {})
      parts.append(f"  Targets: bf16 MFU {_percent(mfu.get('measured'))} (target 30%: "
                   f"{_met(mfu.get('met'))}); sustained training "
                   f"{_num(thr.get('sustained_images_per_s'))} images/s = "
                   f"{_num(thr.get('ratio_vs_high'), 3)}x CompressAI's 240 (target 10x: "
                   f"{_met(thr.get('met'))}); bit-exact files {exact.get('bit_exact_files')}/"
                   f"{exact.get('files')} ({_met(exact.get('met'))}).")
    for key in ("train_step", "metrics", "training_run", "codec", "determinism"):
      for note in _not_run([data], key):
        parts.append(f"  {key} did not run: {note.split(': ', 1)[1]}.")
  if device_files:
    parts.append("")
  for table in (_throughput(bench_files, device_files), _sweep(device_files),
                _device_metrics(device_files), _training_run(device_files),
                _device_codec(bench_files, device_files), _determinism(device_files)):
    if table.rows:
      parts.append(table.markdown())
  return "\n".join(parts)


def _met(value):
  return "not measured" if value is None else ("met" if value else "not met")


def run(args):
  loaded = [load(path) for path in args.results]
  device_files = [d for d in loaded if d["format"] == _DEVICE_FORMAT]
  files = [d for d in loaded if d["format"] == _FORMAT]
  if not files:
    raise UserError("no `jaxcomp bench all` results among the inputs (the device check's rows "
                    "are merged with at least one)")
  names = [data["name"] for data in files]
  if args.baseline and args.baseline not in names:
    raise UserError(f"no results named {args.baseline!r} (have: {', '.join(names)})")
  baseline = files[names.index(args.baseline)] if args.baseline else files[0]
  tables = [t for t in build_tables(files, baseline) if t.rows]
  stem = os.path.splitext(args.out)[0]
  parts = ["# jaxcomp benchmarks", "",
           f"Merged by `jaxcomp bench report` from {len(files)} result file(s) of "
           f"`jaxcomp bench all`" + (f" and {len(device_files)} of `jaxcomp bench device` (the "
                                     "accelerator check, last section)" if device_files else "")
           + f"; baseline: **{baseline['name']}**. \"vs baseline\" = the "
           "baseline's time / this row's (above 1: faster), at equal shapes only.", ""]
  for note in args.note:
    parts += [note, ""]
  parts.append(_machines(files, baseline["name"]))
  charts = []
  for table in tables:
    parts.append(table.markdown())
    if args.plot and table.chart:
      chart = f"{stem}_{table.key}.png"
      charts.append((chart, table))
      parts.append(f"![{table.title}]({os.path.basename(chart)})\n")
  parts.append(device_section(files, device_files))
  for chart, table in charts:
    with atomic_path(chart) as tmp:
      _bar_chart(tmp, table, names)
  with atomic_path(args.out) as tmp:
    with open(tmp, "w") as f:
      f.write("\n".join(parts))
  print(f"wrote {args.out} ({len(tables)} tables, {len(files)} machines, "
        f"{len(device_files)} device check(s)"
        + (f", {len(charts)} charts" if charts else "") + ")")
  return 0
