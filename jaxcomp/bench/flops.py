"""Model FLOP utilisation: XLA's FLOP count of a compiled program against the device's peak.

    flops = compiled_flops(jitted_fn, *args)            # XLA cost analysis of the compiled program
    peak, source = peak_flops(jax.devices()[0], "bfloat16")
    utilisation(flops, step_seconds, peak, source)     # {'achieved_flops_per_s', 'mfu', ...}

The FLOP count is what XLA's `cost_analysis()` reports for the optimized program
(`jax.jit(f).lower(...).compile().cost_analysis()['flops']`): every multiply-add of the
convolutions as 2 FLOPs, including the zero taps of the sub-pixel up-sampling convolutions (about
1.4x the taps of the transposed convolution they replace), the backward pass and the optimizer.

Peak FLOP/s per device kind (dense, no sparsity; vendor data sheets), by the precision the step
runs its convolutions in:

    device kind (substring)  bfloat16   float32 default   float32 highest
    NVIDIA H100 PCIe          756 T      378 T (TF32)       51.2 T
    NVIDIA H100 NVL           835 T      418 T (TF32)       60.0 T
    NVIDIA H100 (SXM)         989 T      495 T (TF32)       66.9 T
    NVIDIA H200               989 T      495 T (TF32)       66.9 T   (H100 SXM compute)
    NVIDIA A100               312 T      156 T (TF32)       19.5 T
    TPU v4                    275 T      275 T              45.8 T
    TPU v5 lite (v5e)         197 T      197 T              32.8 T
    TPU v5p                   459 T      459 T              76.5 T
    TPU v6 lite (v6e)         918 T      918 T             153.0 T

"float32 default" is JAX's default matmul/convolution precision for float32 inputs: TF32 tensor
cores on NVIDIA Ampere and later, one bfloat16 pass on TPU. "float32 highest" applies when
`jax_default_matmul_precision` is 'highest' or 'float32' (IEEE FP32 on NVIDIA; six bfloat16 passes
on TPU, so a sixth of the bfloat16 peak).

CPUs have no table: pass the peak explicitly (`--peak-flops`), or it is estimated as
    logical cores x GHz (the model name's nominal clock, else /proc/cpuinfo's current MHz)
    x FLOPs per cycle per core for float32 FMA: 64 with AVX-512 (two 16-lane FMA units),
    32 with AVX2+FMA, 16 with AVX, 8 otherwise,
an upper bound (one AVX-512 FMA unit on some parts, hyper-threads share units, clocks drop under
AVX-512) that the result says it used. bfloat16 uses the same CPU peak (XLA:CPU computes its
convolutions in float32).
"""

import os
import re

import jax

TERA = 1e12

# (lower-case substring of device_kind, {precision: FLOP/s}); the first match wins.
PEAKS = (
    ("h100 pcie", {"bfloat16": 756 * TERA, "float32": 378 * TERA, "float32_highest": 51.2 * TERA}),
    ("h100 nvl", {"bfloat16": 835 * TERA, "float32": 418 * TERA, "float32_highest": 60.0 * TERA}),
    ("h100", {"bfloat16": 989 * TERA, "float32": 495 * TERA, "float32_highest": 66.9 * TERA}),
    ("h200", {"bfloat16": 989 * TERA, "float32": 495 * TERA, "float32_highest": 66.9 * TERA}),
    ("a100", {"bfloat16": 312 * TERA, "float32": 156 * TERA, "float32_highest": 19.5 * TERA}),
    ("tpu v4", {"bfloat16": 275 * TERA, "float32": 275 * TERA, "float32_highest": 45.8 * TERA}),
    ("tpu v5 lite", {"bfloat16": 197 * TERA, "float32": 197 * TERA,
                     "float32_highest": 32.8 * TERA}),
    ("tpu v5e", {"bfloat16": 197 * TERA, "float32": 197 * TERA, "float32_highest": 32.8 * TERA}),
    ("tpu v5", {"bfloat16": 459 * TERA, "float32": 459 * TERA, "float32_highest": 76.5 * TERA}),
    ("tpu v6 lite", {"bfloat16": 918 * TERA, "float32": 918 * TERA,
                     "float32_highest": 153 * TERA}),
    ("tpu v6e", {"bfloat16": 918 * TERA, "float32": 918 * TERA, "float32_highest": 153 * TERA}),
)

_CPU_FLOPS_PER_CYCLE = (("avx512f", 64, "AVX-512"), ("avx2", 32, "AVX2+FMA"), ("avx", 16, "AVX"))


def compiled_flops(jitted, *args, **kwargs):
  """FLOPs of one call of `jitted(*args, **kwargs)` from XLA's cost analysis, or None.

  Lowers and compiles for the arguments' shapes (a cache hit when the function already ran on
  them); nothing is executed.
  """
  return cost_flops(jitted.lower(*args, **kwargs).compile())


def cost_flops(compiled):
  """FLOPs of one call of a compiled program from XLA's cost analysis, or None."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def cpu_info():
  """{'model', 'ghz', 'logical_cores', 'flags'} of this host from /proc/cpuinfo (Linux)."""
  text = ""
  try:
    with open("/proc/cpuinfo") as f:
      text = f.read()
  except OSError:
    pass
  fields = {}
  for line in text.splitlines():
    key, _, value = line.partition(":")
    fields.setdefault(key.strip(), value.strip())
  model = fields.get("model name", "")
  nominal = re.search(r"@\s*([\d.]+)\s*GHz", model)
  if nominal:
    ghz = float(nominal.group(1))
  else:
    ghz = float(fields["cpu MHz"]) / 1e3 if fields.get("cpu MHz") else None
  return {"model": model or None, "ghz": ghz, "logical_cores": len(os.sched_getaffinity(0)),
          "flags": set(fields.get("flags", "").split())}


def _precision_key(dtype):
  if dtype == "bfloat16":
    return "bfloat16"
  precision = str(jax.config.jax_default_matmul_precision or "default").lower()
  return "float32_highest" if precision in ("highest", "float32") else "float32"


def peak_flops(device, dtype="float32", override=None):
  """(peak FLOP/s or None, how it was obtained) for one device computing in `dtype`.

  Args:
    device: a jax Device.
    dtype: 'float32' or 'bfloat16', the precision of the convolutions.
    override: FLOP/s given by the user (`--peak-flops`); wins when set.
  """
  if override:
    return float(override), "given (--peak-flops)"
  kind = device.device_kind.lower()
  if device.platform != "cpu":
    key = _precision_key(dtype)
    for substring, peaks in PEAKS:
      if substring in kind:
        return peaks[key], f"table: {substring} {key}"
    return None, f"no peak known for {device.device_kind!r} (pass --peak-flops)"
  info = cpu_info()
  for flag, per_cycle, name in _CPU_FLOPS_PER_CYCLE:
    if flag in info["flags"]:
      break
  else:
    per_cycle, name = 8, "SSE"
  if not info["ghz"]:
    return None, "no CPU clock in /proc/cpuinfo (pass --peak-flops)"
  peak = info["logical_cores"] * info["ghz"] * 1e9 * per_cycle
  return peak, (f"estimate: {info['logical_cores']} cores x {info['ghz']:g} GHz x {per_cycle} "
                f"FLOP/cycle ({name} float32 FMA)")


def utilisation(flops, seconds, peak, source):
  """Achieved FLOP/s and model FLOP utilisation (fraction of the peak) of one timed step.

  Args:
    flops: FLOPs of the step (`compiled_flops`), or None.
    seconds: median step time.
    peak: device peak FLOP/s for the step's precision, or None.
    source: how the peak was obtained (recorded beside it).

  Returns:
    dict: flops_per_step, achieved_flops_per_s, peak_flops_per_s, peak_source, mfu (None where
    a part is unknown).
  """
  achieved = flops / seconds if flops else None
  return {"flops_per_step": flops, "achieved_flops_per_s": achieved, "peak_flops_per_s": peak,
          "peak_source": source, "mfu": achieved / peak if achieved and peak else None}
