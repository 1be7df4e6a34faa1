"""bfloat16 transforms with float32 entropy models stay within the stated tolerances of float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coding_models
from jaxcomp.bench import precision
from jaxcomp.codec import compressai_import, models

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("arch", ["bmshj2018-hyperprior", "mbt2018-mean"])
def test_bfloat16_rates_and_reconstructions_within_tolerance(arch):
  variables, n, m = compressai_import.convert(arch, coding_models.state_dict(arch, 16, 24))
  model = models.build(arch, n, m)
  x = (coding_models.fixture_image("kite_96x80.png").astype(np.float32) / 255)[None]
  r = precision.compare(model, variables, x)
  assert r["bpp_float32"] > 0.1  # a model that actually spends bits
  assert r["rate_rel_diff"] <= precision.RATE_TOLERANCE
  assert r["psnr_diff_db"] <= precision.PSNR_TOLERANCE_DB
  assert r["agreement_psnr_db"] >= precision.AGREEMENT_PSNR_DB


def test_transforms_compute_in_bfloat16_and_entropy_models_in_float32():
  model = models.build("bmshj2018-hyperprior", 16, 24, dtype=jnp.bfloat16)
  variables = jax.eval_shape(lambda: models.init(model, jax.random.PRNGKey(0)))  # shapes only
  x = jnp.zeros((1, 64, 64, 3))
  forward = lambda v: model.apply(v, x, training=False)  # pylint: disable=unnecessary-lambda-assignment
  jaxpr = str(jax.make_jaxpr(forward)(variables))
  convs = [line for line in jaxpr.splitlines() if "conv_general_dilated" in line]
  assert convs and all("bf16" in line for line in convs)
  out = jax.eval_shape(forward, variables)
  assert out["x_hat"].dtype == jnp.float32
  assert all(l.dtype == jnp.float32 for l in out["likelihoods"].values())
  assert jax.tree.leaves(variables)[0].dtype == jnp.float32
