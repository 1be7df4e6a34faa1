"""Training parity with CompressAI 1.2.8: loss, every gradient, and the initial distributions.

Fixtures: scripts/make_training_parity_fixtures.py (reference environment).
"""

import glob
import os

import jax
import numpy as np
import pytest

import parity_weights
from jaxcomp.codec import compressai_import, models
from jaxcomp.errors import UserError
from jaxcomp.train import parity, step

pytestmark = pytest.mark.usefixtures("fast_compile")

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "train_parity")
ARCHS = ("bmshj2018-hyperprior", "mbt2018-mean")
INIT_SEEDS = 8
Z_LIMIT = 5.0  # standard errors allowed between two sample moments


def _load(name):
  with np.load(os.path.join(HERE, name), allow_pickle=False) as f:
    return {k: f[k] for k in f.files}


def _case(arch):
  fx = _load(f"grads_{arch}.npz")
  N, M = int(fx["N"]), int(fx["M"])
  state_dict = parity_weights.state_dict(arch, N, M)
  x = fx["images"].astype(np.float32) / 255.0
  noise = {"y": fx["noise_y"], "z": fx["noise_z"]}
  return fx, state_dict, x, noise


def test_fixtures_small():
  paths = glob.glob(os.path.join(HERE, "*.npz"))
  assert len(paths) == 4, "run scripts/make_training_parity_fixtures.py in the reference env"
  assert sum(os.path.getsize(p) for p in paths) < 1_000_000


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_loss_and_grads_match_compressai(arch):
  fx, state_dict, x, noise = _case(arch)
  out = parity.loss_and_grads(arch, state_dict, x, noise, float(fx["lmbda"]))
  for key in ("loss", "bpp", "mse"):
    assert out[key] == pytest.approx(float(fx[key]), rel=1e-5), key
  want = {k[len("grad/"):]: v for k, v in fx.items() if k.startswith("grad/")}
  assert set(out["grads"]) == set(want)
  for name, ref in want.items():
    got = out["grads"][name]
    assert got.shape == ref.shape, name
    scale = np.abs(ref).max()
    assert scale > 0, f"{name}: the reference gradient is zero (vacuous fixture)"
    assert np.abs(got - ref).max() <= 1e-4 * scale, (name, np.abs(got - ref).max() / scale)


def _pooled_moments(arch, N, M):
  """{CompressAI name: (mean, std, count)} over INIT_SEEDS jaxcomp initialisations."""
  model = models.build(arch, N, M)
  init = step._init_fn(model, (64, 64))  # pylint: disable=protected-access
  sums = {}
  for seed in range(INIT_SEEDS):
    params = init(jax.random.PRNGKey(seed))["params"]
    for name, value in compressai_import.to_state_dict(params).items():
      v = np.asarray(value, np.float64).ravel()
      acc = sums.setdefault(name, [0.0, 0.0, 0])
      acc[0] += v.sum()
      acc[1] += (v * v).sum()
      acc[2] += v.size
  return {k: (s1 / n, np.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)), n)
          for k, (s1, s2, n) in sums.items()}


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS)
def test_init_moments_match_compressai(arch):
  """Per-tensor mean and std of a from-scratch model against CompressAI's, over 8 seeds each.

  Two sample moments of n_a and n_b i.i.d. draws differ by at most Z_LIMIT standard errors:
  se(mean) = sqrt(s_a^2/n_a + s_b^2/n_b), se(std) ~ sqrt((kurtosis-1)/4 (s_a^2/n_a + s_b^2/n_b))
  with kurtosis <= 3 (uniform: 1.8). Deterministic tensors (GDN, the density's matrices and
  factors) have the same values for every seed, so their moments must agree to float rounding.
  """
  fx = _load(f"init_{arch}.npz")
  assert int(fx["seeds"]) == INIT_SEEDS
  ours = _pooled_moments(arch, int(fx["N"]), int(fx["M"]))
  names = {k[len("mean/"):] for k in fx if k.startswith("mean/")}
  assert set(ours) == names
  for name in sorted(names):
    mean_c, std_c, n_c = float(fx[f"mean/{name}"]), float(fx[f"std/{name}"]), int(fx[f"count/{name}"])
    mean_j, std_j, n_j = ours[name]
    assert n_j == n_c, name
    var_sum = std_c**2 / n_c + std_j**2 / n_j
    rounding = 1e-6 * max(abs(mean_c), std_c, 1e-3)
    assert abs(mean_j - mean_c) <= Z_LIMIT * np.sqrt(var_sum) + rounding, (name, mean_j, mean_c)
    assert abs(std_j - std_c) <= Z_LIMIT * np.sqrt(0.5 * var_sum) + rounding, (name, std_j, std_c)


def _small():
  arch, N, M = "bmshj2018-hyperprior", 8, 12
  x = np.full((1, 64, 64, 3), 0.5, np.float32)
  noise = {"y": np.zeros((1, 4, 4, M), np.float32), "z": np.zeros((1, 1, 1, N), np.float32)}
  return arch, parity_weights.state_dict(arch, N, M), x, noise


def _error(arch, state_dict, x, noise, lmbda=0.01):
  with pytest.raises(UserError) as info:
    parity.loss_and_grads(arch, state_dict, x, noise, lmbda)
  message = str(info.value)
  assert "\n" not in message and message
  return message


def test_bad_input_is_one_line_user_error():
  arch, sd, x, noise = _small()
  assert "unknown architecture" in _error("cheng2020-anchor", sd, x, noise)
  missing = {k: v for k, v in sd.items() if k != "g_s.2.weight"}
  assert "missing" in _error(arch, missing, x, noise)
  misshapen = {**sd, "h_a.2.bias": np.zeros(5, np.float32)}
  assert "shape mismatch" in _error(arch, misshapen, x, noise)
  assert "g_a.0.weight" in _error(arch, {}, x, noise)
  assert "noise['y']" in _error(arch, sd, x, {**noise, "y": noise["y"][..., :-1]})
  assert "noise['z']" in _error(arch, sd, x, {**noise, "z": np.full_like(noise["z"], 0.7)})
  assert "keys" in _error(arch, sd, x, {"y": noise["y"]})
  assert "multiples of 64" in _error(arch, sd, x[:, :48], noise)
  assert "[0, 1]" in _error(arch, sd, x * 255, noise)
  assert "lmbda" in _error(arch, sd, x, noise, lmbda=float("nan"))
