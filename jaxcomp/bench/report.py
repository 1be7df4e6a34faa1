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

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path

_FORMAT = "jaxcomp-bench"


def add_arguments(parser):
  parser.add_argument("results", nargs="+", help="results JSONs from `jaxcomp bench all`")
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
  if not isinstance(data, dict) or data.get("format") != _FORMAT:
    raise UserError(f"{path} is not a `jaxcomp bench all` results file")
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
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

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


def run(args):
  files = [load(path) for path in args.results]
  names = [data["name"] for data in files]
  if args.baseline and args.baseline not in names:
    raise UserError(f"no results named {args.baseline!r} (have: {', '.join(names)})")
  baseline = files[names.index(args.baseline)] if args.baseline else files[0]
  tables = [t for t in build_tables(files, baseline) if t.rows]
  stem = os.path.splitext(args.out)[0]
  parts = ["# jaxcomp benchmarks", "",
           f"Merged by `jaxcomp bench report` from {len(files)} result file(s) of "
           f"`jaxcomp bench all`; baseline: **{baseline['name']}**. \"vs baseline\" = the "
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
  for chart, table in charts:
    with atomic_path(chart) as tmp:
      _bar_chart(tmp, table, names)
  with atomic_path(args.out) as tmp:
    with open(tmp, "w") as f:
      f.write("\n".join(parts))
  print(f"wrote {args.out} ({len(tables)} tables, {len(files)} machines"
        + (f", {len(charts)} charts" if charts else "") + ")")
  return 0
