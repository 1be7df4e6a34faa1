"""Data parallelism: 8 (forced CPU) devices train exactly like 1 device on the same global batch."""

import jax
import numpy as np
import pytest

from jaxcomp.train import config_lib, step, train

pytestmark = pytest.mark.usefixtures("fast_compile")


def tiny_config():
  config = config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.N, config.M = 8, 12
  return config


def _run(config, batches, devices):
  """Params after one pmapped step per batch, over `devices`."""
  model = train.build_model(config.arch, config.N, config.M, ste=config.ste,
                            dtype=jax.numpy.dtype(config.dtype))
  tx, _ = train.create_optimizer(config)
  init_key, noise_key = jax.random.split(jax.random.PRNGKey(config.seed))
  state = step.create_state(model, init_key, image_size=train.INIT_IMAGE_SIZE, optimizer=tx)
  p_step = step.make_pmap_step(step.mse_distortion, tuple(devices))
  r_state = step.replicate(state, devices)
  no_params = step.replicate(None, devices)
  d = len(devices)
  for k, x in enumerate(batches):
    firsts = k * len(x) + (len(x) // d) * np.arange(d)
    r_state, metrics = p_step(r_state, x.reshape((d, -1) + x.shape[1:]), noise_key, config.lmbda,
                              no_params, firsts, no_params)
  return jax.device_get(jax.tree.map(lambda a: a[0], r_state.params)), jax.device_get(metrics)


@pytest.mark.slow
def test_eight_devices_equal_one_device_with_the_same_global_batch():
  assert jax.local_device_count() == 8, "tests/conftest.py forces 8 CPU devices"
  config = tiny_config()
  rng = np.random.default_rng(0)
  batches = [rng.uniform(size=(8, 64, 64, 3)).astype(np.float32) for _ in range(3)]
  one, one_metrics = _run(config, batches, jax.local_devices()[:1])
  eight, eight_metrics = _run(config, batches, jax.local_devices())
  diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), one, eight))
  print(f"max |params(8 devices) - params(1 device)| after 3 steps: {max(diffs):.3g}")
  assert max(diffs) <= 1e-5
  np.testing.assert_allclose(one_metrics["loss"][0], eight_metrics["loss"], rtol=1e-5)
  start = jax.device_get(step.create_state(
      train.build_model(config.arch, config.N, config.M, ste=False,
                        dtype=jax.numpy.dtype(config.dtype)),
      jax.random.split(jax.random.PRNGKey(config.seed))[0]).params)
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), one, start))
  assert max(moved) > 1e-4  # the steps did train


def test_per_example_noise_does_not_depend_on_the_split():
  keys = step.example_keys(jax.random.PRNGKey(0), 0, 8)
  halves = np.concatenate([step.example_keys(jax.random.PRNGKey(0), i, 4) for i in (0, 4)])
  np.testing.assert_array_equal(keys, halves)
