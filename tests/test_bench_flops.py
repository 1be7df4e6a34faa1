"""MFU pieces: XLA's FLOP count, the peak table, the CPU estimate (no timing asserted)."""

import jax
import jax.numpy as jnp
import pytest

from jaxcomp.bench import flops


class FakeDevice:

  def __init__(self, platform, device_kind):
    self.platform, self.device_kind = platform, device_kind


def test_compiled_flops_counts_a_matmul():
  a, b = jnp.ones((32, 48)), jnp.ones((48, 16))
  counted = flops.compiled_flops(jax.jit(jnp.matmul), a, b)
  assert counted == pytest.approx(2 * 32 * 48 * 16, rel=0.05)


@pytest.mark.parametrize("kind, dtype, expected", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12),
    ("NVIDIA H100 PCIe", "bfloat16", 756e12),
    ("NVIDIA H200", "bfloat16", 989e12),
    ("NVIDIA H100 80GB HBM3", "float32", 495e12),
    ("TPU v4", "bfloat16", 275e12),
    ("TPU v5 lite", "bfloat16", 197e12),
    ("TPU v5", "bfloat16", 459e12),
])
def test_peak_table(kind, dtype, expected):
  peak, source = flops.peak_flops(FakeDevice("gpu", kind), dtype)
  assert peak == pytest.approx(expected)
  assert source.startswith("table")


def test_unknown_accelerator_has_no_peak_unless_given():
  assert flops.peak_flops(FakeDevice("gpu", "Mystery 9000"))[0] is None
  assert flops.peak_flops(FakeDevice("gpu", "Mystery 9000"), override=1e15) == (1e15, "given (--peak-flops)")


def test_cpu_peak_is_an_estimate_from_cpuinfo():
  peak, source = flops.peak_flops(jax.devices("cpu")[0])
  info = flops.cpu_info()
  if info["ghz"] is None:
    assert peak is None
  else:
    assert peak >= info["logical_cores"] * info["ghz"] * 1e9 * 8
    assert source.startswith("estimate")


def test_utilisation():
  u = flops.utilisation(2e9, 0.5, 8e9, "given")
  assert u["achieved_flops_per_s"] == pytest.approx(4e9)
  assert u["mfu"] == pytest.approx(0.5)
  assert flops.utilisation(None, 0.5, 8e9, "given")["mfu"] is None
