"""What the training tests share: fast compilation, a folder of small photos, tiny configs and
loading a config file from configs/. The fixtures are registered once for the session
(`pytest_plugins` in conftest.py): a module opts into fast compilation with
`pytestmark = pytest.mark.usefixtures("fast_compile")`; import the helper functions."""

import importlib.util
import os

import jax
import numpy as np
import pytest
from PIL import Image

from jaxcomp.train import config_lib

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


@pytest.fixture(scope="module")
def fast_compile():
  """XLA's optimizations cost more compile time than these tiny steps run (as in flax's tests)."""
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  yield
  jax.config.update("jax_disable_most_optimizations", previous)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """A folder of five smooth 80x96 PNG images."""
  folder = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  for i in range(5):
    smooth = np.kron(rng.uniform(size=(10, 12, 3)), np.ones((8, 8, 1)))
    Image.fromarray((smooth * 255).astype(np.uint8)).save(folder / f"photo{i}.png")
  return str(folder)


def tiny_config(data_dir, config=None, **overrides):
  """A 6-step N=8/M=12 run of `config` (default: the tiny hyperprior) on `data_dir`."""
  config = config or config_lib.tiny(config_lib.base("bmshj2018-hyperprior", 3))
  config.N, config.M = 8, 12
  config.data.dir = data_dir
  config.num_train_steps = 6
  config.checkpoint_every_steps = 3
  config.log_every_steps = 3
  config.eval.every_steps = 0
  config.update(overrides)
  return config


def load_config_file(name):
  """The module configs/<name>.py."""
  spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIGS, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
