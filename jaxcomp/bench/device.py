"""`jaxcomp bench device`: the accelerator check in one call -> `<out>/<device>.json`.

    jaxcomp bench device --preset {smoke,full} --out DIR [--data DIR] [--parts a,b] [--name NAME]
    bash scripts/device_check.sh --preset full --out DIR --data DIR      (wheels, log, then this)

One process measures, on the default JAX backend (the accelerator when there is one), with a time
budget per part so that the whole check fits a short loan (`full`: under 8 minutes on one GPU;
`smoke`: a few minutes on one CPU core):

  train_step    the training step (rate + lambda * 255^2 MSE, Adam; `jaxcomp.train.step`) of
                bmshj2018-hyperprior q3 (N=128, M=192) on 256x256 crops, in float32 and bfloat16:
                a batch sweep (doubling until images/s stops improving by 2% or the part's time
                is spent), compile time, XLA's FLOP count of the compiled step and the MFU
                against the device's peak (`jaxcomp.bench.flops`); then mbt2018-mean at each
                dtype's best batch.
  metrics       forward + backward of every metric loss in `jaxcomp.metrics.registry`, batch 16
                of 256x256, compile time apart. Without the pretrained VGG16/LPIPS/DISTS weights
                (57 MB: they do not fit the 64 MiB a device call carries) lpips and dists run on
                random stand-ins of the same shapes: the time is the same, the values are not
                (recorded per metric as "weights": "random stand-in").
  training_run  a real training run for a fixed wall time (full: 3 minutes, q3 on 256x256 crops
                of the photos in --data, at the best batch and dtype of the sweep) with the
                training loop's own parts (`step.make_pmap_step`, `input_pipeline.ImageFolder`,
                `CropStream`, `host_batches`): loss / bpp / PSNR against steps, the steps/s
                sustained with the input pipeline, the time spent waiting for batches, and the
                pipeline's headroom (batches/s it makes alone / steps/s of the run). The trained
                model is exported and used by `codec` and `determinism`.
  codec         compress / decompress of a 768x512 and a 2048x1536 photo (centre crops of --data
                photos resized with Lanczos), split into transforms (analysis, hyper-synthesis,
                synthesis) and entropy coding (encode, decode), medians after compilation.
  determinism   bitstreams encoded on the accelerator at several batch sizes decode with the CPU
                backend of the same process (`jax.devices('cpu')`) to exactly the encoded
                integers, and the reverse; index-CRC mismatches and decode errors are counted, and
                the two decoders' pixels compared. CPU -> CPU with other batch sizes and device
                counts (forced host devices) always runs; on a CPU-only machine the accelerator
                cases are recorded as not available.

The JSON (written whole at the end; `<device>.partial.json` holds the parts done so far while it
runs, in case the call is cut): {"format": "jaxcomp-device-check", "version", "name", "preset",
"created", "wall_s", "budget_s", "complete", "targets", and the parts "machine", "train_step",
"metrics", "codec", "determinism", "training_run"} -- a part that did not run is
{"skipped": reason}, one that failed {"error": message}. `jaxcomp bench report` merges it with
`jaxcomp bench all` results into docs/benchmarks.md. Exit status 1 (after writing) if a part
failed.
"""

import collections
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import os
import re
import statistics
import sys
import tempfile
import time
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state
from PIL import Image
from safetensors.numpy import save_file

from jaxcomp.bench import all as bench_all
from jaxcomp.bench import coding_speed
from jaxcomp.bench import flops, inputs, report, timing
from jaxcomp.codec import export, models
from jaxcomp.coding import compression, container
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.metrics import registry
from jaxcomp.nets import weights as weights_lib
from jaxcomp.train import input_pipeline, step

FORMAT = "jaxcomp-device-check"
VERSION = 1
PARTS = ("train_step", "metrics", "training_run", "codec", "determinism")
TOP_KEYS = ("machine",) + PARTS
ARCH = "bmshj2018-hyperprior"
QUALITY = 3
# Peaks measured on this workplace's machines (the device tool's README): an MFU against them
# says how close to the achievable matrix throughput the step runs.
MEASURED_PEAKS = {"h200": {"bfloat16": 790e12}}


@dataclasses.dataclass(frozen=True)
class Preset:
  """Sizes and time budgets (seconds) of one preset.

  channels: (N, M) of both architectures, or None for CompressAI's at QUALITY (128, 192).
  budgets: part -> (seconds wanted, minimum seconds worth starting it with).
  """

  name: str
  channels: tuple
  patch: int
  batches: tuple
  repeats: int
  metric_batch: int
  metric_size: int
  codec_sizes: tuple  # ((height, width), ...)
  codec_repeats: int
  det_images: int
  det_size: tuple
  det_batches: tuple
  train_seconds: float
  train_batch_max: int
  log_every_s: float
  budget_s: float
  budgets: dict
  fast_compile: bool = False  # jax_disable_most_optimizations: compile time over speed
  mbt_dtypes: tuple = ("float32", "bfloat16")  # mbt2018-mean's step at these dtypes' best batch


PRESETS = {
    "full": Preset(
        name="full", channels=None, patch=256, batches=(16, 32, 64, 128, 256), repeats=10,
        metric_batch=16, metric_size=256, codec_sizes=((512, 768), (1536, 2048)),
        codec_repeats=5, det_images=4, det_size=(512, 768), det_batches=(1, 2, 4),
        train_seconds=180.0, train_batch_max=256, log_every_s=10.0, budget_s=430.0,
        budgets={"train_step": (125, 40), "metrics": (40, 15), "training_run": (200, 60),
                 "codec": (25, 10), "determinism": (40, 15)}),
    "smoke": Preset(
        name="smoke", channels=(16, 24), patch=64, batches=(1, 2, 4), repeats=3,
        metric_batch=1, metric_size=176, codec_sizes=((128, 192), (384, 512)), codec_repeats=3,
        det_images=2, det_size=(128, 192), det_batches=(1, 2), train_seconds=20.0,
        train_batch_max=4, log_every_s=4.0, budget_s=210.0, fast_compile=True,
        mbt_dtypes=("float32",),
        budgets={"train_step": (60, 15), "metrics": (35, 10), "training_run": (45, 15),
                 "codec": (25, 8), "determinism": (35, 8)}),
}


def add_arguments(parser):
  parser.add_argument("--preset", default="smoke", choices=list(PRESETS),
                      help="full: the GPU check (< 8 min on one GPU); smoke: tiny sizes, CPU "
                      "minutes (default %(default)s)")
  parser.add_argument("--out", required=True, help="folder for <device>.json")
  parser.add_argument("--data", help="folder of training photos (PNG/JPEG, >= the crop size); "
                      "default: synthetic photo-like images (recorded as such)")
  parser.add_argument("--parts", help=f"comma-separated parts to run (default all): "
                      f"{', '.join(PARTS)}")
  parser.add_argument("--name", help="file stem / machine label (default: from the device kind)")
  parser.add_argument("--budget-s", type=float, help="total seconds for the parts (default: the "
                      "preset's)")
  parser.add_argument("--peak-flops", type=float, help="device peak FLOP/s for the MFU "
                      "(default: jaxcomp.bench.flops' table, or a CPU estimate)")
  parser.add_argument("--train-seconds", type=float, help="wall seconds of the training run, "
                      "compilation included (default: the preset's; full 180)")


# ----------------------------------------------------------------------------- small helpers


def device_name(device):
  """File stem for a device: 'nvidia-h200', 'tpu-v5-lite', 'cpu'."""
  kind = "cpu" if device.platform == "cpu" else device.device_kind
  return re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-") or device.platform


def _is_oom(error):
  return "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower()


def _one_line(error):
  text = f"{type(error).__name__}: {error}".strip().splitlines()
  return text[0][:300] if text else type(error).__name__


class Clock:
  """The check's total budget; each part gets what is left after the later parts' minimums."""

  def __init__(self, total_s, budgets, parts):
    self.start = time.perf_counter()
    self.total_s = total_s
    self.budgets = budgets
    self.parts = parts

  def elapsed(self):
    return time.perf_counter() - self.start

  def allowance(self, part):
    """Seconds `part` may take now (<= its own budget), or 0 when it should be skipped."""
    later = self.parts[self.parts.index(part) + 1:]
    reserve = sum(self.budgets[p][1] for p in later)
    wanted, minimum = self.budgets[part]
    allowed = min(wanted, self.total_s - self.elapsed() - reserve)
    return allowed if allowed >= minimum else 0.0


# ----------------------------------------------------------------------------- machine


def peak_table(device):
  """{precision: FLOP/s} of `jaxcomp.bench.flops.PEAKS` for this device, or {}."""
  kind = device.device_kind.lower()
  if device.platform == "cpu":
    return {}
  for substring, peaks in flops.PEAKS:
    if substring in kind:
      return dict(peaks)
  return {}


def machine_record(preset, data):
  """Devices, versions, memory and peaks of this machine."""
  record = bench_all.machine()
  device = jax.devices()[0]
  record.update(
      name=device_name(device), backend=jax.default_backend(),
      cpu_devices=len(jax.devices("cpu")), xla_flags=os.environ.get("XLA_FLAGS", ""),
      peaks=peak_table(device), preset=preset.name, data=data or "synthetic",
      xla_optimizations="most disabled (compile time over speed)" if preset.fast_compile
      else "default")
  stats = getattr(device, "memory_stats", lambda: None)()
  record["device_memory_bytes"] = (stats or {}).get("bytes_limit")
  measured = next((v for k, v in MEASURED_PEAKS.items() if k in device.device_kind.lower()), None)
  record["measured_peaks"] = measured
  return record


# ----------------------------------------------------------------------------- train step


def _model_channels(preset, arch):
  return preset.channels or models.ARCHS[arch].channels[QUALITY]


_INITIAL_PARAMS = {}


def initial_params(arch, N, M):
  """Initial parameters of (arch, N, M), computed once: they do not depend on the compute dtype
  (parameters stay float32), so both dtypes' steps start from the same values."""
  if (arch, N, M) not in _INITIAL_PARAMS:
    variables = models.init(models.build(arch, N, M), jax.random.PRNGKey(0))
    _INITIAL_PARAMS[arch, N, M] = jax.device_get(variables["params"])
  return _INITIAL_PARAMS[arch, N, M]


def time_train_step(arch, N, M, dtype, batch, patch, repeats, peak_override=None):
  """One jitted training step (`step.train_step`) compiled ahead of time, then timed.

  Returns {'batch', 'step_s', 'step_min_s', 'step_max_s', 'images_per_s', 'compile_s',
  'flops_per_step', 'achieved_flops_per_s', 'peak_flops_per_s', 'peak_source', 'mfu', ...}.
  """
  model = models.build(arch, N, M, dtype=jnp.dtype(dtype))
  lmbda = models.MSE_LAMBDAS[QUALITY]
  state = jax.device_put(train_state.TrainState.create(
      apply_fn=model.apply, params=initial_params(arch, N, M), tx=optax.adam(1e-4)))
  x = jax.device_put(np.random.default_rng(0).uniform(
      size=(batch, patch, patch, 3)).astype(np.float32))
  key = jax.random.PRNGKey(1)
  began = time.perf_counter()
  compiled = step.train_step.lower(state, x, key, lmbda).compile()
  compile_s = time.perf_counter() - began
  holder = {"state": state}

  def one():
    holder["state"], metrics = compiled(holder["state"], x, key, lmbda)
    jax.block_until_ready(metrics)

  one()  # warm-up (autotuning, first transfers)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    one()
    times.append(time.perf_counter() - t0)
  step_s = statistics.median(times)
  device = jax.devices()[0]
  peak, source = flops.peak_flops(device, dtype, peak_override)
  row = {"arch": arch, "N": N, "M": M, "dtype": dtype, "batch": batch, "patch": patch,
         "step_s": step_s, "step_min_s": min(times), "step_max_s": max(times),
         "runs": len(times), "images_per_s": batch / step_s, "compile_s": compile_s}
  row.update(flops.utilisation(flops.cost_flops(compiled), step_s, peak, source))
  achieved = row["achieved_flops_per_s"]
  table = peak_table(device)
  if dtype == "float32" and table.get("float32_highest") and achieved:
    row["mfu_vs_fp32_ieee"] = achieved / table["float32_highest"]
  measured = next((v for k, v in MEASURED_PEAKS.items() if k in device.device_kind.lower()), {})
  if measured.get(dtype) and achieved:
    row["mfu_vs_measured_peak"] = achieved / measured[dtype]
  return row


def _print_step(row):
  mfu = "-" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%"
  print(f"  {row['arch']} {row['dtype']} batch {row['batch']}: {row['step_s'] * 1e3:.1f} ms/step, "
        f"{row['images_per_s']:.1f} images/s, compile {row['compile_s']:.1f} s, MFU {mfu}",
        flush=True)


def batch_sweep(arch, N, M, dtype, preset, deadline, peak_override=None, first_free=False):
  """Rows of a doubling batch sweep; stops when images/s gains < 2%, on OOM, or at `deadline`
  (checked before each batch size; the first one runs regardless when `first_free`)."""
  rows = []
  for batch in preset.batches:
    if (rows or not first_free) and time.perf_counter() > deadline:
      rows.append({"batch": batch, "skipped": "time budget"})
      break
    try:
      row = time_train_step(arch, N, M, dtype, batch, preset.patch, preset.repeats,
                            peak_override)
    except Exception as e:  # pylint: disable=broad-except  (OOM ends the sweep, recorded)
      rows.append({"batch": batch, "error": _one_line(e)})
      if _is_oom(e) and any("step_s" in r for r in rows):
        break
      raise
    rows.append(row)
    _print_step(row)
    measured = [r for r in rows if "images_per_s" in r]
    if len(measured) > 1 and measured[-1]["images_per_s"] < 1.02 * max(
        r["images_per_s"] for r in measured[:-1]):
      break
  return rows


def best_row(rows):
  measured = [r for r in rows if "images_per_s" in r]
  return max(measured, key=lambda r: r["images_per_s"]) if measured else None


def run_train_step(preset, seconds, peak_override=None):
  """The `train_step` part: sweeps for both dtypes, then mbt2018-mean at the best batches."""
  N, M = _model_channels(preset, ARCH)
  began = time.perf_counter()
  # Each sweep stops starting new batch sizes at ~40% / ~80% of the part; mbt2018-mean gets the
  # rest. The float32 sweep's first batch always runs; every other unit only while time is left.
  result = {"arch": ARCH, "quality": QUALITY, "N": N, "M": M, "patch": preset.patch,
            "lmbda": models.MSE_LAMBDAS[QUALITY], "sweeps": {}, "best": {}}
  for i, dtype in enumerate(("float32", "bfloat16")):
    print(f"train_step: {ARCH} {dtype} batch sweep", flush=True)
    deadline = began + seconds * (0.4 * (i + 1))
    if i and time.perf_counter() > began + seconds:
      result["sweeps"][dtype], result["best"][dtype] = [{"skipped": "time budget"}], None
      continue
    rows = batch_sweep(ARCH, N, M, dtype, preset, deadline, peak_override, first_free=True)
    result["sweeps"][dtype] = rows
    result["best"][dtype] = best_row(rows)
  mbt = {}
  mbt_N, mbt_M = _model_channels(preset, "mbt2018-mean")
  for dtype, best in result["best"].items():
    if best is None or dtype not in preset.mbt_dtypes:
      continue
    if time.perf_counter() - began > seconds:
      mbt[dtype] = {"skipped": "time budget"}
      continue
    mbt[dtype] = time_train_step("mbt2018-mean", mbt_N, mbt_M, dtype, best["batch"],
                                 preset.patch, preset.repeats, peak_override)
    _print_step(mbt[dtype])
  result["mbt2018_mean"] = mbt
  bests = [b for b in result["best"].values() if b]
  result["best_images_per_s"] = max(b["images_per_s"] for b in bests) if bests else None
  return result


# ----------------------------------------------------------------------------- metrics


def _write_stand_in_weights(cache):
  """Random weights of the pretrained bundles' exact shapes (timing only) + a manifest."""
  os.makedirs(cache, exist_ok=True)
  rng = np.random.default_rng(0)
  manifest = {"format": 1, "bundles": {}}
  for name, (filename, shapes, _) in weights_lib.BUNDLES.items():
    tensors = {k: (0.01 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    path = os.path.join(cache, filename)
    save_file(tensors, path)
    manifest["bundles"][name] = {"file": filename, "sha256": weights_lib.sha256_file(path),
                                 "source": "random stand-in (device check timing only)",
                                 "tensors": {k: list(s) for k, s in shapes.items()}}
  with open(os.path.join(cache, "manifest.json"), "w") as f:
    json.dump(manifest, f)


@contextlib.contextmanager
def _weights_for_timing():
  """Yields True when the real pretrained weights are cached, else False with JAXCOMP_CACHE
  pointing at random stand-ins for the duration."""
  if weights_lib.available(tuple(weights_lib.BUNDLES)):
    yield True
    return
  old = os.environ.get("JAXCOMP_CACHE")
  with tempfile.TemporaryDirectory(prefix="jaxcomp-stand-in-") as root:
    _write_stand_in_weights(os.path.join(root, "weights"))
    os.environ["JAXCOMP_CACHE"] = root
    try:
      yield False
    finally:
      if old is None:
        os.environ.pop("JAXCOMP_CACHE", None)
      else:
        os.environ["JAXCOMP_CACHE"] = old


# The VGG16-based losses compile and run far longer than the classical ones: they go last, so
# that a short budget still times every classical metric.
_DEEP = ("lpips", "dists")


def loss_names():
  """Every registered metric name (fixed names; `dpl:<path>` needs a trained head), the
  VGG16-based ones last."""
  names = [n for n in registry.names() if not n.endswith(">")]
  return sorted(names, key=lambda n: (n in _DEEP, names.index(n)))


def run_metrics(preset, seconds):
  """The `metrics` part: fwd+bwd of each metric loss at the preset's batch and size."""
  began = time.perf_counter()
  size, batch = preset.metric_size, preset.metric_batch
  rng = np.random.default_rng(0)
  y = rng.uniform(size=(batch, size, size, 3)).astype(np.float32)
  x = np.clip(y + 0.1 * rng.standard_normal(y.shape), 0, 1).astype(np.float32)
  xd, yd = jax.device_put(x), jax.device_put(y)
  result = {"batch": batch, "size": [size, size], "repeats": preset.repeats, "metrics": {}}
  with _weights_for_timing() as real_weights:
    result["pretrained_weights"] = real_weights
    for name in loss_names():
      if time.perf_counter() - began > seconds:
        result["metrics"][name] = {"skipped": "time budget"}
        continue
      try:
        metric = registry.get(name)
        if metric.loss_fn is None:
          result["metrics"][name] = {"skipped": "no loss (metric only)"}
          continue
        fn = jax.jit(jax.value_and_grad(lambda p, a, b, m=metric: m.loss_fn(p, a, b).sum(),
                                        argnums=1))
        t0 = time.perf_counter()
        compiled = fn.lower(metric.params, xd, yd).compile()
        compile_s = time.perf_counter() - t0
        run = lambda c=compiled, m=metric: jax.block_until_ready(c(m.params, xd, yd))  # noqa: E731
        run()
        entry = {"fwd_bwd_s": timing.median_s(run, preset.repeats), "compile_s": compile_s}
        entry["images_per_s"] = batch / entry["fwd_bwd_s"]
        if metric.params is not None and not real_weights:
          entry["weights"] = "random stand-in"
      except (UserError, ValueError) as e:
        entry = {"skipped": _one_line(e)}
      result["metrics"][name] = entry
      if "fwd_bwd_s" in entry:
        print(f"  {name}: {entry['fwd_bwd_s'] * 1e3:.1f} ms fwd+bwd (compile "
              f"{entry['compile_s']:.1f} s)", flush=True)
      else:
        print(f"  {name}: skipped ({entry['skipped']})", flush=True)
  return result


# ----------------------------------------------------------------------------- data and model


def photo_paths(data_dir):
  """Sorted image paths of --data (the training pipeline's reader)."""
  return input_pipeline.ImageFolder(data_dir, 1).paths


def photo(paths, index, height, width):
  """[height, width, 3] uint8: the centre crop of photo `index` (cyclic) at the target aspect,
  resized with Lanczos; a synthetic image when there are no photos."""
  if not paths:
    return inputs.synthetic_image(height, width, seed=index)
  with Image.open(paths[index % len(paths)]) as image:
    image = image.convert("RGB")
    w, h = image.size
    scale = min(w / width, h / height)
    cw, ch = round(width * scale), round(height * scale)
    left, top = (w - cw) // 2, (h - ch) // 2
    image = image.crop((left, top, left + cw, top + ch)).resize((width, height), Image.LANCZOS)
    return np.asarray(image, np.uint8)


def synthetic_folder(folder, count=16, size=(768, 1024)):
  """Writes `count` synthetic photo-like PNGs (seeds 0..count-1); returns the folder."""
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    inputs.write_image(os.path.join(folder, f"synthetic_{i:02d}.png"), *size, seed=i)
  return folder


def export_variables(path, arch, N, M, params, source):
  """Exports trained (or initial) params with refit z quantiles; returns the path."""
  variables = models.refit_quantiles({"params": jax.tree.map(np.asarray, params)})
  export.save(path, arch, N, M, jax.device_get(variables), source=source)
  return path


def untrained_model(path, N, M):
  return export_variables(path, ARCH, N, M, initial_params(ARCH, N, M), "untrained (seed 0)")


# ----------------------------------------------------------------------------- training run


def run_training(preset, seconds, data_dir, best, workdir):
  """The `training_run` part: trains for `preset.train_seconds` (at most `seconds` in all)."""
  N, M = _model_channels(preset, ARCH)
  dtype = best["dtype"] if best else "float32"
  batch = min(best["batch"] if best else preset.batches[0], preset.train_batch_max)
  devices = jax.local_devices()
  if devices[0].platform == "cpu":
    devices = devices[:1]  # forced host devices share the cores: one is the honest setting
  batch -= batch % len(devices)
  lmbda = models.MSE_LAMBDAS[QUALITY]
  model = models.build(ARCH, N, M, dtype=jnp.dtype(dtype))
  source = input_pipeline.ImageFolder(data_dir, preset.patch, cache_images=64)
  stream = input_pipeline.CropStream(source, preset.patch, seed=0)
  threads = max(2, min(16, (os.cpu_count() or 2)))
  result = {"arch": ARCH, "N": N, "M": M, "dtype": dtype, "batch": batch, "patch": preset.patch,
            "lmbda": lmbda, "learning_rate": 1e-4, "devices": len(devices),
            "images": len(source), "data": data_dir, "pipeline_threads": threads,
            "history": []}
  print(f"training_run: {ARCH} N={N} M={M} {dtype}, batch {batch} of {preset.patch}^2 crops "
        f"from {len(source)} images, {preset.train_seconds:g} s", flush=True)
  state = train_state.TrainState.create(apply_fn=model.apply, params=initial_params(ARCH, N, M),
                                        tx=optax.adam(1e-4))
  p_step = step.make_pmap_step(step.mse_distortion, tuple(devices))
  r_state = step.replicate(state, devices)
  none = step.replicate(None, devices)
  noise_key = jax.random.PRNGKey(1)
  began = time.perf_counter()
  train_for = min(preset.train_seconds, seconds - 10.0)
  batches = input_pipeline.host_batches(stream, batch, 0, 0, 1, len(devices), prefetch=4,
                                        threads=threads)
  try:
    firsts, images = next(batches)
    r_state, metrics = p_step(r_state, images, noise_key, lmbda, none, firsts, none)
    jax.block_until_ready(metrics)
    result["first_step_s"] = time.perf_counter() - began  # compilation + the first batches
    steps, wait_s, pending, inflight = 1, 0.0, [], collections.deque()
    loop_start = last_log = time.perf_counter()
    # The run lasts `train_for` in all, compilation included, but trains at least a quarter of
    # it after compiling, and not past the part's allowance -- except that a compilation slower
    # than the whole allowance still leaves min(5 s, a quarter) of training.
    least = 0.25 * preset.train_seconds
    stop = max(min(max(began + train_for, loop_start + least), began + seconds - 8.0),
               loop_start + min(5.0, least))
    while time.perf_counter() < stop:
      t0 = time.perf_counter()
      firsts, images = next(batches)
      wait_s += time.perf_counter() - t0
      r_state, metrics = p_step(r_state, images, noise_key, lmbda, none, firsts, none)
      # At most two steps queued on the device (as a training loop that reads its metrics
      # does): the time waiting for `next(batches)` is then time the device would starve.
      inflight.append(metrics)
      if len(inflight) > 2:
        pending.append(jax.block_until_ready(inflight.popleft()))
      steps += 1
      if pending and time.perf_counter() - last_log >= preset.log_every_s:
        result["history"].append(_history_row(pending, steps, time.perf_counter() - began))
        pending, last_log = [], time.perf_counter()
        row = result["history"][-1]
        print(f"  step {steps}: loss {row['loss']:.4f} bpp {row['bpp']:.4f} psnr "
              f"{row['psnr']:.2f} dB ({row['time_s']:.0f} s)", flush=True)
    pending += jax.block_until_ready(list(inflight))
    jax.block_until_ready(r_state.params)
    loop_s = time.perf_counter() - loop_start
    if pending:
      result["history"].append(_history_row(pending, steps, time.perf_counter() - began))
  finally:
    batches.close()
  timed = steps - 1
  result.update(steps=steps, seconds=time.perf_counter() - began, loop_s=loop_s,
                steps_per_s=timed / loop_s if timed else None,
                images_per_s=timed * batch / loop_s if timed else None,
                input_wait_s=wait_s, input_wait_fraction=wait_s / loop_s if loop_s else None)
  result["final"] = result["history"][-1] if result["history"] else None
  result["pipeline"] = _pipeline_rate(stream, batch, threads, first=steps * batch,
                                      seconds=min(5.0, 0.25 * preset.train_seconds))
  if result["steps_per_s"] and result["pipeline"]["batches_per_s"]:
    result["pipeline_headroom"] = result["pipeline"]["batches_per_s"] / result["steps_per_s"]
  # The first device's copy ([D, ...] -> [...]); flax's unreplicate keeps a leading axis when
  # the step runs on fewer devices than there are local ones (the CPU case here).
  params = jax.tree.map(lambda a: np.asarray(a)[0], r_state.params)
  result["model_dir"] = export_variables(
      os.path.join(workdir, "trained"), ARCH, N, M, params,
      f"device check training run, {steps} steps")
  print(f"  {steps} steps in {result['seconds']:.0f} s: {result['steps_per_s'] or 0:.2f} steps/s "
        f"sustained, waiting for input {100 * (result['input_wait_fraction'] or 0):.1f}% of the "
        f"loop, pipeline headroom {result.get('pipeline_headroom', float('nan')):.1f}x",
        flush=True)
  return result


def _history_row(pending, steps, time_s):
  values = jax.device_get(pending)
  mean = {k: float(np.mean([np.mean(v[k]) for v in values])) for k in values[0]}
  return {"step": steps, "time_s": time_s, "loss": mean["loss"], "bpp": mean["bpp"],
          "mse": mean["mse"], "psnr": float(10 * np.log10(1.0 / max(mean["mse"], 1e-12))),
          "grad_norm": mean.get("grad_norm")}


def _pipeline_rate(stream, batch, threads, first, seconds=5.0, max_batches=50):
  """Batches/s the input pipeline makes alone (the same thread pool size, no training)."""
  count, began = 0, time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    while count < max_batches and (count < 2 or time.perf_counter() - began < seconds):
      stream.batch(first + count * batch, batch, pool)
      count += 1
  elapsed = time.perf_counter() - began
  return {"batches": count, "seconds": elapsed, "batches_per_s": count / elapsed,
          "images_per_s": count * batch / elapsed}


# ----------------------------------------------------------------------------- codec


def time_codec(cm, image, repeats):
  """Compress/decompress of one image and its split: transforms vs entropy coding."""
  batch = image[None]
  height, width = image.shape[:2]
  t0 = time.perf_counter()
  data = compression.compress(cm, batch)[0]
  decoded = compression.decompress(cm, data)
  first_s = time.perf_counter() - t0
  x = compression.padded_input(batch)
  y, z = cm.analysis(x)
  sym = compression.symbols(cm, y[0], z[0])
  bitstream = container.parse(data, cm.fingerprint)
  encode, decode = coding_speed.entropy_coding(cm, sym, bitstream, compression.DEFAULT_BACKEND)
  y_hat = sym.y_values.astype(np.float32)
  if sym.means is not None:
    y_hat = y_hat + sym.means

  row = {"height": height, "width": width, "first_s": first_s,
         "compress_s": timing.median_s(lambda: compression.compress(cm, batch), repeats),
         "decompress_s": timing.median_s(lambda: compression.decompress(cm, data), repeats),
         "analysis_s": timing.median_s(lambda: cm.analysis(x), repeats),
         "hyper_s": timing.median_s(lambda: compression.symbols(cm, y[0], z[0]), repeats),
         "synthesis_s": timing.median_s(lambda: cm.synthesis(y_hat[None]), repeats),
         "entropy_encode_s": timing.median_s(encode, repeats),
         "entropy_decode_s": timing.median_s(decode, repeats),
         "symbols": int(sym.y_values.size + sym.z_values.size),
         "bpp": 8 * len(data) / (height * width)}
  mse = np.mean((decoded.astype(np.float64) - image.astype(np.float64)) ** 2)
  row["psnr"] = float(10 * np.log10(255.0**2 / max(mse, 1e-12)))
  row["transforms_s"] = row["analysis_s"] + 2 * row["hyper_s"] + row["synthesis_s"]
  row["entropy_coding_s"] = row["entropy_encode_s"] + row["entropy_decode_s"]
  print(f"  {width}x{height}: compress {row['compress_s'] * 1e3:.1f} ms, decompress "
        f"{row['decompress_s'] * 1e3:.1f} ms (transforms {row['transforms_s'] * 1e3:.1f} ms, "
        f"entropy coding {row['entropy_coding_s'] * 1e3:.1f} ms), {row['bpp']:.3f} bpp, "
        f"{row['psnr']:.2f} dB", flush=True)
  return row


def run_codec(preset, seconds, model_dir, model_source, paths):
  began = time.perf_counter()
  cm = compression.CodingModel(model_dir)
  result = {"model": model_source, "N": cm.config["N"], "M": cm.config["M"],
            "coder": compression.DEFAULT_BACKEND, "images": {}}
  for i, (height, width) in enumerate(preset.codec_sizes):
    key = f"{width}x{height}"
    if i and time.perf_counter() - began > seconds:
      result["images"][key] = {"skipped": "time budget"}
      continue
    row = time_codec(cm, photo(paths, i, height, width), preset.codec_repeats)
    row["source"] = (f"{os.path.basename(paths[i % len(paths)])}, centre crop resized (Lanczos)"
                     if paths else "synthetic")
    result["images"][key] = row
  return result


# ----------------------------------------------------------------------------- determinism


def _encode(cm, images, devices=None):
  """`codec.compress` keeping the symbols: [(bytes, Symbols)] of a batch (same steps)."""
  height, width = images.shape[1:3]
  y, z = cm.analysis(compression.padded_input(images), devices)
  out = []
  for i in range(images.shape[0]):
    sym = compression.symbols(cm, y[i], z[i])
    out.append((compression.encode(cm, sym, height, width, 3), sym))
  return out


def _decode(cm, data):
  """(Symbols, image) or (None, error text); a CRC mismatch is reported by decode_symbols."""
  try:
    bitstream = container.parse(data, cm.fingerprint)
    sym = compression.decode_symbols(cm, bitstream)
    return sym, compression.reconstruct(cm, sym, bitstream.height, bitstream.width, 3)
  except UserError as e:
    return None, str(e)


def _case(encoder, decoder, images, batch, devices, label):
  """Encodes `images` in batches of `batch` (sharded over `devices`), decodes each file with the
  encoder and with `decoder`; counts exact symbols, CRC mismatches and pixel differences.

  encoder, decoder: (CodingModel, context manager factory placing its jax work).
  """
  (enc_cm, enc_ctx), (dec_cm, dec_ctx) = encoder, decoder
  files = []
  with enc_ctx():
    for start in range(0, len(images), batch):
      files += _encode(enc_cm, images[start:start + batch], devices)
  row = {"case": label, "batch": batch, "devices": len(devices) if devices else 1,
         "files": len(files), "symbols_exact": 0, "crc_mismatches": 0, "decode_errors": [],
         "pixels_identical_fraction": None, "max_pixel_diff": None}
  identical, max_diff = [], 0
  for data, sym in files:
    with dec_ctx():
      got, image = _decode(dec_cm, data)
    if got is None:  # `image` holds the error
      if "scale indexes" in image:
        row["crc_mismatches"] += 1
      else:
        row["decode_errors"].append(image)
      continue
    if (np.array_equal(got.z_values, sym.z_values) and np.array_equal(got.y_values, sym.y_values)
        and np.array_equal(got.y_indexes, sym.y_indexes)):
      row["symbols_exact"] += 1
    with enc_ctx():
      _, own = _decode(enc_cm, data)
    if own is not None:
      diff = np.abs(own.astype(np.int16) - image.astype(np.int16))
      identical.append(float(np.mean(diff == 0)))
      max_diff = max(max_diff, int(diff.max()))
  if identical:
    row["pixels_identical_fraction"] = float(np.mean(identical))
    row["max_pixel_diff"] = max_diff
  row["bit_exact"] = row["symbols_exact"] == row["files"]
  row["bytes"] = [len(d) for d, _ in files]
  print(f"  {label}, batch {row['batch']}, {row['devices']} device(s): {row['symbols_exact']}/"
        f"{row['files']} files decode to the encoded integers, {row['crc_mismatches']} index-CRC "
        f"mismatches, pixels identical {100 * (row['pixels_identical_fraction'] or 0):.2f}% "
        f"(max diff {row['max_pixel_diff']})", flush=True)
  return row


def run_determinism(preset, seconds, model_dir, model_source, paths):
  began = time.perf_counter()
  cpu = jax.devices("cpu")
  accelerator = jax.devices()[0] if jax.devices()[0].platform != "cpu" else None
  on_cpu = lambda: jax.default_device(cpu[0])  # noqa: E731
  on_default = contextlib.nullcontext
  with on_cpu():
    cpu_cm = compression.CodingModel(model_dir)
    cpu_cm_other = compression.CodingModel(model_dir)  # a separate decoder instance
  height, width = preset.det_size
  images = np.stack([photo(paths, i, height, width) for i in range(preset.det_images)])
  result = {"model": model_source, "images": len(images), "size": [height, width],
            "accelerator": accelerator.device_kind if accelerator else None, "cases": []}
  plan = []
  if accelerator is not None:
    dev_cm = compression.CodingModel(model_dir)
    for batch in preset.det_batches:
      plan.append(((dev_cm, on_default), (cpu_cm, on_cpu), batch, None,
                   f"{accelerator.platform}->cpu"))
    for batch in preset.det_batches[:2]:
      plan.append(((cpu_cm, on_cpu), (dev_cm, on_default), batch, None,
                   f"cpu->{accelerator.platform}"))
  else:
    result["gpu_to_cpu"] = result["cpu_to_gpu"] = "not available (no accelerator on this machine)"
  if accelerator is None:  # with an accelerator, CPU -> CPU only checks the device count
    for batch in preset.det_batches:
      plan.append(((cpu_cm, on_cpu), (cpu_cm_other, on_cpu), batch, None, "cpu->cpu"))
  if len(cpu) >= 2:
    plan.append(((cpu_cm, on_cpu), (cpu_cm_other, on_cpu), 2, tuple(cpu[:2]), "cpu->cpu"))
  else:
    result["cpu_devices_case"] = ("not available (one CPU device; set XLA_FLAGS="
                                  "--xla_force_host_platform_device_count=2)")
  for encoder, decoder, batch, devices, label in plan:
    if result["cases"] and time.perf_counter() - began > seconds:
      result["cases"].append({"case": label, "batch": batch, "skipped": "time budget"})
      continue
    result["cases"].append(_case(encoder, decoder, images, batch, devices, label))
  done = [c for c in result["cases"] if "files" in c]
  if accelerator is not None:
    for key, label in (("gpu_to_cpu", f"{accelerator.platform}->cpu"),
                       ("cpu_to_gpu", f"cpu->{accelerator.platform}")):
      rows = [c for c in done if c["case"] == label]
      result[key] = {"case": label, "files": sum(c["files"] for c in rows),
                     "bit_exact": sum(c["symbols_exact"] for c in rows),
                     "crc_mismatches": sum(c["crc_mismatches"] for c in rows)}
  rows = [c for c in done if c["case"] == "cpu->cpu"]
  result["cpu_to_cpu"] = {"case": "cpu->cpu", "files": sum(c["files"] for c in rows),
                          "bit_exact": sum(c["symbols_exact"] for c in rows),
                          "crc_mismatches": sum(c["crc_mismatches"] for c in rows)}
  result["files"] = sum(c["files"] for c in done)
  result["bit_exact_files"] = sum(c["symbols_exact"] for c in done)
  result["crc_mismatches"] = sum(c["crc_mismatches"] for c in done)
  result["all_bit_exact"] = bool(done) and result["bit_exact_files"] == result["files"]
  return result


# ----------------------------------------------------------------------------- targets, main


def targets(results):
  """The issue's targets against what was measured (None where a part did not run)."""
  ts, tr, det = results.get("train_step", {}), results.get("training_run", {}), results.get(
      "determinism", {})
  bf16 = (ts.get("best") or {}).get("bfloat16") or {}
  low, high = report.COMPRESSAI_DERIVED_PATCHES_PER_S
  sustained = tr.get("images_per_s")
  return {
      "mfu_bf16": {"target": 0.30, "measured": bf16.get("mfu"),
                   "met": None if bf16.get("mfu") is None else bf16["mfu"] >= 0.30},
      "training_throughput": {
          "target": "10x CompressAI's derived per-GPU throughput",
          "compressai_patches_per_s": [low, high], "sustained_images_per_s": sustained,
          "ratio_vs_low": sustained / low if sustained else None,
          "ratio_vs_high": sustained / high if sustained else None,
          "met": None if not sustained else sustained >= 10 * high},
      "bit_exact": {"target": "every file decodes bit-exactly across devices",
                    "files": det.get("files"), "bit_exact_files": det.get("bit_exact_files"),
                    "met": det.get("all_bit_exact")},
  }


def _write(path, results):
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      json.dump(results, f, indent=1, sort_keys=True, default=float)


def run(args):
  preset = PRESETS[args.preset]
  if args.train_seconds is not None:
    if args.train_seconds <= 0:
      raise UserError("--train-seconds must be positive")
    preset = dataclasses.replace(preset, train_seconds=args.train_seconds)
  previous = bool(getattr(jax.config, "values", {}).get("jax_disable_most_optimizations", False))
  jax.config.update("jax_disable_most_optimizations", preset.fast_compile or previous)
  try:
    return _run(args, preset)
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)


def _run(args, preset):
  parts = list(PARTS)
  if args.parts:
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
      raise UserError(f"unknown parts {', '.join(unknown)}; choose from {', '.join(PARTS)}")
  if args.data and not os.path.isdir(args.data):
    raise UserError(f"data folder not found: {args.data}")
  paths = photo_paths(args.data) if args.data else []
  name = args.name or device_name(jax.devices()[0])
  os.makedirs(args.out, exist_ok=True)
  out_path = os.path.join(args.out, f"{name}.json")
  partial_path = os.path.join(args.out, f"{name}.partial.json")
  clock = Clock(args.budget_s or preset.budget_s, preset.budgets, [p for p in PARTS if p in parts])
  results = {"format": FORMAT, "version": VERSION, "name": name, "preset": preset.name,
             "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
             "budget_s": clock.total_s, "complete": False,
             "machine": machine_record(preset, args.data)}
  for part in PARTS:
    results[part] = {"skipped": "not selected (--parts)"}
  print(f"device check, preset {preset.name}: {results['machine']['device_kind']} x"
        f"{results['machine']['device_count']} ({results['machine']['platform']}), jax "
        f"{jax.__version__}, budget {clock.total_s:g} s", flush=True)
  failed = []
  with tempfile.TemporaryDirectory(prefix="jaxcomp-device-") as work:
    data_dir = args.data or synthetic_folder(os.path.join(work, "data"),
                                             size=(max(256, preset.patch * 2),) * 2)
    N, M = _model_channels(preset, ARCH)
    model_dir, model_source = None, None
    for part in [p for p in PARTS if p in parts]:
      allowed = clock.allowance(part)
      if not allowed:
        results[part] = {"skipped": f"time budget ({clock.elapsed():.0f} s of "
                                    f"{clock.total_s:g} s used)"}
        print(f"== {part}: skipped (time budget)", flush=True)
        continue
      print(f"== {part} (up to {allowed:.0f} s)", flush=True)
      began = time.perf_counter()
      try:
        if part == "train_step":
          value = run_train_step(preset, allowed, args.peak_flops)
        elif part == "metrics":
          value = run_metrics(preset, allowed)
        elif part == "training_run":
          best = _best_overall(results.get("train_step"))
          value = run_training(preset, allowed, data_dir, best, work)
          model_dir = value.pop("model_dir")
          model_source = f"trained here ({value['steps']} steps of the training run)"
        else:
          if model_dir is None:
            model_dir = untrained_model(os.path.join(work, "untrained"), N, M)
            model_source = "untrained (the training run did not run)"
          runner = run_codec if part == "codec" else run_determinism
          value = runner(preset, allowed, model_dir, model_source, paths)
      except Exception as e:  # pylint: disable=broad-except  (recorded; the other parts run)
        traceback.print_exc()
        value = {"error": _one_line(e)}
        failed.append(part)
      value["wall_s"] = time.perf_counter() - began
      print(f"   ({part}: {value['wall_s']:.0f} s; {clock.elapsed():.0f} s of the check)",
            flush=True)
      results[part] = value
      results["wall_s"] = clock.elapsed()
      _write(partial_path, results)
  results["targets"] = targets(results)
  results["wall_s"] = clock.elapsed()
  results["complete"] = not failed
  _write(out_path, results)
  if os.path.exists(partial_path):
    os.remove(partial_path)
  print(f"wrote {out_path} ({results['wall_s']:.0f} s)", flush=True)
  if failed:
    details = ", ".join(f"{p} ({results[p]['error']})" for p in failed)
    sys.stderr.write(f"error: parts failed: {details}\n")
    return 1
  return 0


def _best_overall(train_step_result):
  """The (dtype, batch) row with the most images/s of the sweep, or None."""
  if not train_step_result or "best" not in train_step_result:
    return None
  rows = [r for r in train_step_result["best"].values() if r]
  return max(rows, key=lambda r: r["images_per_s"]) if rows else None
