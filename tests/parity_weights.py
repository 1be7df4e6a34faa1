"""Deterministic, non-degenerate CompressAI-layout weights for codec parity tests (numpy only).

Freshly initialised codecs map photos to latents that almost all round to zero, which would make
a parity test vacuous. These weights are scaled so that y spreads over several integers, scales
cover much of the scale table and z exercises the factorized density; the same seed gives the
same arrays everywhere (numpy's PCG64 stream is stable across platforms and versions), so the
fixture script (reference env) and the tests (jaxcomp) rebuild them instead of committing them.
"""

import numpy as np

PEDESTAL = 2.0**-36


def _nonneg(value):
  return np.sqrt(np.maximum(value + PEDESTAL, PEDESTAL)).astype(np.float32)


def state_dict(arch, N, M, seed=0):
  """{CompressAI state_dict name: float32 array} for 'bmshj2018-hyperprior' or 'mbt2018-mean'."""
  rng = np.random.default_rng(seed)
  sd = {}

  def conv(name, c_in, c_out, k, gain, transposed=False):
    fan_in = c_in * k * k / (4.0 if transposed else 1.0)
    shape = (c_in, c_out, k, k) if transposed else (c_out, c_in, k, k)
    sd[f"{name}.weight"] = (rng.standard_normal(shape) * gain / np.sqrt(fan_in)).astype(np.float32)
    sd[f"{name}.bias"] = rng.uniform(-0.05, 0.05, c_out).astype(np.float32)

  def gdn(name, c):
    sd[f"{name}.beta"] = _nonneg(rng.uniform(0.5, 1.5, c))
    sd[f"{name}.gamma"] = _nonneg(0.1 * np.eye(c) + 0.02 * np.abs(rng.standard_normal((c, c))) / c)

  mean_scale = arch == "mbt2018-mean"
  conv("g_a.0", 3, N, 5, 4.0)
  gdn("g_a.1", N)
  conv("g_a.2", N, N, 5, 2.5)
  gdn("g_a.3", N)
  conv("g_a.4", N, N, 5, 2.5)
  gdn("g_a.5", N)
  conv("g_a.6", N, M, 5, 1.5)
  conv("g_s.0", M, N, 5, 0.2, transposed=True)
  gdn("g_s.1", N)
  conv("g_s.2", N, N, 5, 0.5, transposed=True)
  gdn("g_s.3", N)
  conv("g_s.4", N, N, 5, 0.5, transposed=True)
  gdn("g_s.5", N)
  conv("g_s.6", N, 3, 5, 0.3, transposed=True)
  conv("h_a.0", M, N, 3, 0.8)
  conv("h_a.2", N, N, 5, 0.8)
  conv("h_a.4", N, N, 5, 4.0)
  if mean_scale:
    conv("h_s.0", N, M, 5, 1.5, transposed=True)
    conv("h_s.2", M, M * 3 // 2, 5, 1.5, transposed=True)
    conv("h_s.4", M * 3 // 2, M * 2, 3, 1.5)
  else:
    conv("h_s.0", N, N, 5, 1.5, transposed=True)
    conv("h_s.2", N, N, 5, 1.5, transposed=True)
    conv("h_s.4", N, M, 3, 1.5)
  filters = (1, 3, 3, 3, 3, 1)
  scale = 10.0 ** (1 / 5)
  for i in range(5):
    init = np.log(np.expm1(1 / scale / filters[i + 1]))
    shape = (N, filters[i + 1], filters[i])
    sd[f"entropy_bottleneck.matrices.{i}"] = (init + 0.3 * rng.standard_normal(shape)).astype(np.float32)
    sd[f"entropy_bottleneck.biases.{i}"] = rng.uniform(-1, 1, (N, filters[i + 1], 1)).astype(np.float32)
    if i < 4:
      sd[f"entropy_bottleneck.factors.{i}"] = (0.5 * rng.standard_normal((N, filters[i + 1], 1))).astype(np.float32)
  return sd
