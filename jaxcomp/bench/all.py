"""`jaxcomp bench all`: every benchmark at fixed shapes, one results JSON per machine.

    jaxcomp bench all --out results/<name>.json [--preset {full,cpu,quick} | --quick]
                      [--only a,b] [--model DIR] [--image PNG] [--peak-flops F] [--cpu-devices 8]

Entries and their shapes per preset (fixed, so that files from different machines compare;
`jaxcomp bench report` merges them). Times are medians of `repeats` runs after a compiling run,
with compile times and (where the benchmark reports them) min/max recorded separately:

    entry            benchmark    full                      cpu                  quick
    train-step       train-step   batch 8, 256x256, fp32    = full               batch 1, 64x64
    train-step-bf16  train-step   batch 8, 256x256, bf16    = full               batch 1, 64x64
    scaling          train-step   8/device, 256x256         1/device, 128x128    1/device, 64x64
    upsample         upsample     8x64x64x128               = full               1x16x16x16
    metrics          metrics      8 of 256x256, 6 losses    2 of 256x256         1 of 32x32, mse+ssim
    codec            codec        768x512 image             = full               64x64
    precision        precision    768x512 image             = full               64x64

The model of `train-step*` and `scaling` is bmshj2018-hyperprior quality 1 (N=128, M=192). `codec`
and `precision` use `--model` when given, else an untrained bmshj2018-hyperprior (quality 1)
exported to a temporary directory, and `--image` when given, else a synthetic image
(`jaxcomp.bench.inputs`). `cpu` is `full` with the two entries that would take many minutes on a
few cores made smaller. CompressAI's step and codec are timed in the same run (train-step, codec),
and the PyTorch metric references (metrics), when they import.

Each entry runs as `python -m jaxcomp bench <benchmark> ... --json` in a child process: its output
is passed through, its last stdout line is its result, a failing entry is recorded with its error
and the others still run, and memory is returned between entries. The children own the
accelerator: this process describes the machine through a child too, and runs its own jax work
(exporting the untrained model) on the CPU, since a TPU opens in one process only and a GPU client
preallocates most of the memory. `scaling` sweeps pmap over 1, 2,
4, ... local devices; on a CPU-only machine the child gets `--cpu-devices` forced host devices
(`--xla_force_host_platform_device_count`), which share this host's cores: that measures the
pmap machinery, not a speed-up.

The output JSON (written whole, or not at all):
    {"format": "jaxcomp-bench", "version": 1, "name": ..., "preset": ..., "created": ISO time,
     "machine": {platform, device_kind, device_count, jax, jaxlib, python, cpu_model,
                 cpu_logical_cores, memory_bytes, torch, compressai},
     "entries": {entry: {"benchmark", "args", "wall_s", "result": {...}} or {..., "error": str}}}
Exit status 1 (after writing the file) when an entry failed.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import jax

from jaxcomp.bench import flops
from jaxcomp.bench import inputs
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path

FORMAT = "jaxcomp-bench"
VERSION = 1
ENTRIES = ("train-step", "train-step-bf16", "scaling", "upsample", "metrics", "codec", "precision")

_STEP = ["--arch", "bmshj2018-hyperprior", "--quality", "1"]
_FULL = {
    "train-step": ("train-step", _STEP + ["--batch", "8", "--patch", "256", "--repeats", "5",
                                          "--no-scaling"]),
    "train-step-bf16": ("train-step", _STEP + ["--batch", "8", "--patch", "256", "--repeats", "5",
                                               "--dtype", "bfloat16", "--no-scaling", "--no-torch"]),
    "scaling": ("train-step", _STEP + ["--batch", "8", "--patch", "256", "--repeats", "5",
                                       "--no-torch"]),
    "upsample": ("upsample", ["--batch", "8", "--size", "64", "--channels", "128", "--repeats", "5",
                              "--budget", "60"]),
    "metrics": ("metrics", ["--batch", "8", "--size", "256", "256", "--repeats", "5"]),
    "codec": ("codec", ["--model", "{model}", "--image", "{image}", "--repeats", "7"]),
    "precision": ("precision", ["--model", "{model}", "--image", "{image}", "--repeats", "5"]),
}
_CPU = {
    **_FULL,
    "scaling": ("train-step", _STEP + ["--batch", "1", "--patch", "128", "--repeats", "3",
                                       "--no-torch"]),
    "metrics": ("metrics", ["--batch", "2", "--size", "256", "256", "--repeats", "3"]),
}
_QUICK = {
    "train-step": ("train-step", _STEP + ["--batch", "1", "--patch", "64", "--repeats", "2",
                                          "--no-scaling"]),
    "train-step-bf16": ("train-step", _STEP + ["--batch", "1", "--patch", "64", "--repeats", "2",
                                               "--dtype", "bfloat16", "--no-scaling", "--no-torch"]),
    "scaling": ("train-step", _STEP + ["--batch", "1", "--patch", "64", "--repeats", "2",
                                       "--no-torch"]),
    "upsample": ("upsample", ["--batch", "1", "--size", "16", "--channels", "16", "--repeats", "2",
                              "--budget", "10"]),
    "metrics": ("metrics", ["--metrics", "mse,ssim", "--batch", "1", "--size", "32", "32",
                            "--repeats", "2"]),
    "codec": ("codec", ["--model", "{model}", "--image", "{image}", "--repeats", "2"]),
    "precision": ("precision", ["--model", "{model}", "--image", "{image}", "--repeats", "2"]),
}
PRESETS = {"full": _FULL, "cpu": _CPU, "quick": _QUICK}
IMAGE_SIZES = {"full": (512, 768), "cpu": (512, 768), "quick": (64, 64)}  # (height, width)


def add_arguments(parser):
  parser.add_argument("--out", required=True, help="results JSON to write (e.g. results/h100.json)")
  parser.add_argument("--preset", default="full", choices=list(PRESETS),
                      help="shapes: the table in jaxcomp/bench/all.py's docstring and "
                      "docs/bench_README_section.md; default %(default)s")
  parser.add_argument("--quick", dest="preset", action="store_const", const="quick",
                      help="tiny shapes for CI and tests (= --preset quick)")
  parser.add_argument("--name", help="machine label in reports (default: the --out file stem)")
  parser.add_argument("--only", help=f"comma-separated entries to run, of: {', '.join(ENTRIES)}")
  parser.add_argument("--model", help="exported model for codec/precision (default: untrained)")
  parser.add_argument("--image", help="PNG for codec/precision (default: synthetic)")
  parser.add_argument("--peak-flops", type=float,
                      help="device peak FLOP/s for the MFU (default: table, or a CPU estimate)")
  parser.add_argument("--cpu-devices", type=int, default=8,
                      help="forced host devices for `scaling` on a CPU-only machine")
  parser.add_argument("--timeout", type=float, default=3600, help="seconds per entry at most")


def machine():
  """Where the numbers were measured: devices, versions, CPU and memory."""


  devices = jax.devices()
  cpu = flops.cpu_info()
  record = {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
            "device_count": len(devices), "local_device_count": jax.local_device_count(),
            "jax": jax.__version__, "python": platform.python_version(),
            "cpu_model": cpu["model"], "cpu_logical_cores": cpu["logical_cores"],
            "memory_bytes": _memory_bytes()}
  for package in ("jaxlib", "torch", "compressai"):
    try:
      record[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      record[package] = None
  return record


def _memory_bytes():
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemTotal:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def plan(preset, only=None, model=None, image=None, peak_flops=None):
  """[(entry, benchmark, args)] for a preset; `{model}`/`{image}` filled in."""
  entries = PRESETS[preset]
  names = list(ENTRIES)
  if only:
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ENTRIES))
    if unknown:
      raise UserError(f"unknown entries {', '.join(unknown)}; choose from {', '.join(ENTRIES)}")
  steps = []
  for name in names:
    benchmark, args = entries[name]
    args = [a.format(model=model, image=image) for a in args]
    if benchmark == "train-step" and peak_flops:
      args += ["--peak-flops", repr(peak_flops)]
    steps.append((name, benchmark, args))
  return steps


def _child_env(entry, cpu_only, cpu_devices, base=None):
  env = dict(os.environ if base is None else base)
  flags = env.get("XLA_FLAGS", "")
  if entry == "scaling" and cpu_only and "xla_force_host_platform_device_count" not in flags:
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={cpu_devices}".strip()
  return env


def run_entry(entry, benchmark, args, env, timeout):
  """Runs one benchmark in a child process; {'benchmark', 'args', 'wall_s', 'result' | 'error'}."""
  command = [sys.executable, "-m", "jaxcomp", "bench", benchmark] + args + ["--json"]
  record = {"benchmark": benchmark, "args": args}
  print(f"== {entry}: jaxcomp bench {benchmark} {' '.join(args)}", flush=True)
  start = time.perf_counter()
  lines = []
  with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as child:
    watchdog = threading.Timer(timeout, child.kill)
    watchdog.start()
    try:
      for line in child.stdout:
        print(f"   {line.rstrip()}", flush=True)
        if line.strip():
          lines.append(line.strip())
      child.wait()
    except BaseException:
      child.kill()
      raise
    finally:
      watchdog.cancel()
  record["wall_s"] = time.perf_counter() - start
  if child.returncode:
    record["error"] = (f"timed out after {timeout:g} s" if record["wall_s"] >= timeout
                       else f"exit status {child.returncode}")
    return record
  try:
    record["result"] = json.loads(lines[-1])
  except (IndexError, ValueError):
    record["error"] = "no JSON result line"
  return record


def _child_machine(env):
  """`machine()` measured in a child process (the parent never opens the accelerator)."""
  code = "import json; from jaxcomp.bench import all as a; print(json.dumps(a.machine()))"
  done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                        check=False)
  if done.returncode:
    raise UserError(f"cannot start jax to describe this machine: {done.stderr.strip()[-500:]}")
  return json.loads(done.stdout.strip().splitlines()[-1])


def run(args):
  steps_preview = plan(args.preset, args.only)  # validates --only before any work
  # The children own the accelerator (module docstring); this process's jax stays on the CPU.


  jax.config.update("jax_platforms", "cpu")
  child_env = dict(os.environ)
  described = _child_machine(child_env)
  cpu_only = described["platform"] == "cpu"
  results = {"format": FORMAT, "version": VERSION,
             "name": args.name or os.path.splitext(os.path.basename(args.out))[0],
             "preset": args.preset,
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "machine": described, "entries": {}}
  with tempfile.TemporaryDirectory(prefix="jaxcomp-bench-") as tmp:
    model, image = args.model, args.image
    needs_inputs = any(b in ("codec", "precision") for _, b, _ in steps_preview)
    if needs_inputs and not model:
      model = inputs.write_untrained_model(os.path.join(tmp, "model"), "bmshj2018-hyperprior")
    if needs_inputs and not image:
      image = inputs.write_image(os.path.join(tmp, "image.png"), *IMAGE_SIZES[args.preset])
    for entry, benchmark, bench_args in plan(args.preset, args.only, model, image,
                                             args.peak_flops):
      env = _child_env(entry, cpu_only, args.cpu_devices, child_env)
      results["entries"][entry] = run_entry(entry, benchmark, bench_args, env, args.timeout)
  with atomic_path(args.out) as tmp_out:
    with open(tmp_out, "w") as f:
      json.dump(results, f, indent=1, sort_keys=True)
  failed = [name for name, record in results["entries"].items() if "error" in record]
  print(f"wrote {args.out} ({len(results['entries'])} entries, preset {args.preset})")
  if failed:
    sys.stderr.write("error: entries failed: " + ", ".join(
        f"{name} ({results['entries'][name]['error']})" for name in failed) + "\n")
    return 1
  return 0
