"""Timing helpers shared by the benchmarks: compile once, then the median of repeated runs."""

import importlib
import json
import platform
import statistics
import time

import jax


def time_call(fn, *args, repeats=5, budget_s=60.0):
  """Times fn(*args) (results blocked on) after one warm-up/compilation call.

  Args:
    fn: a callable (usually jitted).
    *args: its arguments.
    repeats: timed runs wanted.
    budget_s: stop early once the timed runs exceed this many seconds (at least one run).

  Returns:
    dict with first_s (the warm-up call, compilation included), median_s, min_s, max_s, runs.
  """
  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  start = time.perf_counter()
  while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return {"first_s": first, "median_s": statistics.median(times), "min_s": min(times),
          "max_s": max(times), "runs": len(times)}


def median_s(fn, repeats):
  """Median wall seconds of `repeats` calls of fn() (fn blocks on its own results)."""
  times = []
  for _ in range(repeats):
    began = time.perf_counter()
    fn()
    times.append(time.perf_counter() - began)
  return statistics.median(times)


def time_torch(fn, repeats=5, budget_s=60.0):
  """Same protocol for a PyTorch callable (no blocking needed on the CPU)."""
  fn()
  times = []
  start = time.perf_counter()
  while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
          "runs": len(times)}


def machine():
  """Where the numbers were measured."""
  devices = jax.devices()
  return {"platform": devices[0].platform, "device_kind": devices[0].device_kind,
          "device_count": len(devices), "jax": jax.__version__, "processor": platform.processor(),
          "machine": platform.machine()}


def torch_available(*modules):
  """True when torch (and the named modules) import; otherwise prints why the side is skipped."""
  for name in ("torch",) + modules:
    try:
      importlib.import_module(name)
    except Exception as e:  # pylint: disable=broad-except
      print(f"(PyTorch side skipped: cannot import {name}: {e})")
      return False
  return True


def emit_json(result):
  """Prints the result as the last stdout line."""
  print(json.dumps(result, sort_keys=True))
