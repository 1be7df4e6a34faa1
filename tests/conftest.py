"""Test session setup: the JAX CPU backend with 8 forced devices (for multi-device tests)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

# Shared fixtures, registered once so that session fixtures (exported models) are built once per
# session, not once per importing module. Test modules import only their helper functions.
pytest_plugins = ("coding_models", "train_fixtures", "perceptual_fixtures")
