"""What the perceptual (2AFC, learned-metric) tests share: the BAPPS-layout sample, the marker for
tests that need the cached VGG16/LPIPS weights, the perceptual-commands-only CLI fixture and the
VGG16 weights. The fixture is registered once for the session (`pytest_plugins` in conftest.py);
a module opts in with `pytestmark = pytest.mark.usefixtures("only_perceptual_commands")`."""

import functools
import os

import pytest

from jaxcomp import cli
from jaxcomp.nets import weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "perceptual")
SAMPLE = os.path.join(FIXTURES, "bapps_sample")
NEEDS_WEIGHTS = pytest.mark.skipif(
    not weights.available(("vgg16", "lpips_vgg_v0.1")),
    reason=f"pretrained weights not cached in {weights.cache_dir()} (run `jaxcomp weights fetch`)")


@pytest.fixture
def only_perceptual_commands(monkeypatch):
  """`jaxcomp` sees only the perceptual sub-commands (faster CLI start-up)."""
  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.perceptual.cli",))


@functools.lru_cache(maxsize=None)
def vgg():
  """The pretrained VGG16 variables (loaded once per session)."""
  from jaxcomp.nets import vgg16  # pylint: disable=g-import-not-at-top
  return vgg16.load_params()
