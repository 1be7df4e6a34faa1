"""Adaptive quantization steps (`models.Hyperprior.adaptive_step`): a step per latent location
predicted from z_hat, through the model, fine-tuning, export and real bitstreams."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import coding_models
from jaxcomp.codec import compressai_import, export, models, transforms
from jaxcomp.coding import compression, container
from jaxcomp.errors import UserError
from jaxcomp.train import train
from train_fixtures import load_config_file

pytestmark = pytest.mark.usefixtures("fast_compile")


def _bias_for_step(step):
  """The h_q output t with exp(r tanh(t / r)) = step."""
  r = transforms.LOG_STEP_RANGE
  return r * np.arctanh(np.log(step) / r)


def _without_h_q(variables):
  return {**variables, "params": {k: v for k, v in variables["params"].items() if k != "h_q"}}


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_a_new_step_branch_leaves_the_model_unchanged(arch):
  """h_q starts at step 1: bit for bit the model without it, in training and evaluation."""
  model = models.build(arch, 8, 12, adaptive_step=True)
  variables = models.init(model, jax.random.PRNGKey(0))
  plain = models.build(arch, 8, 12)
  x = jax.random.uniform(jax.random.PRNGKey(1), (2, 64, 80, 3))
  for training in (False, True):
    rngs = {"noise": jax.random.PRNGKey(2)}
    a = model.apply(variables, x, training=training, rngs=rngs)
    b = plain.apply(_without_h_q(variables), x, training=training, rngs=rngs)
    for key in ("x_hat", "y_hat"):
      np.testing.assert_array_equal(a[key], b[key])
    for key in ("y", "z"):
      np.testing.assert_array_equal(a["likelihoods"][key], b["likelihoods"][key])


@pytest.mark.slow
def test_steps_quantize_y_and_trade_rate_for_distortion():
  model = models.build("mbt2018-mean", 8, 12, adaptive_step=True)
  variables = models.init(model, jax.random.PRNGKey(0))
  # y well spread over several integers (a fresh init puts it within +-0.5).
  variables["params"]["g_a"]["layer_6"]["kernel"] *= 20.0
  x = jax.random.uniform(jax.random.PRNGKey(1), (1, 64, 64, 3)) * 4.0
  outs = {}
  for step in (0.5, 1.0, 2.0):
    variables["params"]["h_q"]["layer_4"]["bias"] = jnp.full((1,), _bias_for_step(step))
    out = model.apply(variables, x, training=False)
    y, _ = model.apply(variables, x, method=model.analysis)
    _, means, steps = model.apply(variables, out["z_hat"], method=model.hyper_synthesis)
    np.testing.assert_allclose(steps, step, rtol=1e-5)
    np.testing.assert_allclose(out["y_hat"], jnp.round((y - means) / steps) * steps + means,
                               atol=1e-5)
    error = jnp.abs(out["y_hat"] - y)
    assert float(jnp.max(error)) <= step / 2 + 1e-5
    outs[step] = (float(models.rate_bits(out["likelihoods"])[0]), float(jnp.mean(error)))
  rates, errors = zip(*(outs[s] for s in (0.5, 1.0, 2.0)))
  assert rates[0] > rates[1] > rates[2]  # coarser steps, fewer bits
  assert errors[0] < errors[1] < errors[2]  # and a coarser y_hat
  variables["params"]["h_q"]["layer_4"]["bias"] = jnp.full((1,), 100.0)
  z_hat = model.apply(variables, x, training=False)["z_hat"]
  steps = model.apply(variables, z_hat, method=model.hyper_synthesis)[2]
  np.testing.assert_allclose(steps, 8.0, rtol=1e-5)  # bounded to [1/8, 8]


@pytest.fixture(scope="module", params=list(models.ARCHS))
def step_model_dir(request, tmp_path_factory):
  """An exported 16/24 test model (`coding_models`) with a spatially varying step branch."""
  arch = request.param
  variables, n, m = compressai_import.convert(arch, coding_models.state_dict(arch, 16, 24))
  h_q = models.init(models.build(arch, n, m, adaptive_step=True),
                    jax.random.PRNGKey(0))["params"]["h_q"]
  kernel = h_q["layer_4"]["kernel"]
  h_q["layer_4"]["kernel"] = 0.05 * jax.random.normal(jax.random.PRNGKey(1), kernel.shape)
  h_q["layer_4"]["bias"] = jnp.full((1,), 0.3)
  variables = {**variables, "params": {**variables["params"], "h_q": h_q}}
  path = str(tmp_path_factory.mktemp("models") / arch)
  export.save(path, arch, n, m, jax.device_get(variables), adaptive_step=True)
  return path


@pytest.mark.slow
def test_bitstreams_of_a_step_model_decode_to_the_model_output(step_model_dir):
  """Real files: decoding reproduces the model's own reconstruction, the file size is the model's
  rate (within 1 %), and the steps it coded with vary over the image."""
  assert export.read_config(step_model_dir)["adaptive_step"] is True
  cm = compression.CodingModel(step_model_dir)
  model, variables, _ = export.load(step_model_dir)
  image = np.concatenate([coding_models.fixture_image("kite_96x80.png")] * 2, axis=1)[:, :150]
  x = image[None].astype(np.float32) / 255.0
  out = model.apply(variables, x, training=False)
  data = compression.compress(cm, image[None])[0]
  decoded = compression.decompress(cm, data)
  want = np.round(np.clip(np.asarray(out["x_hat"][0]), 0, 1) * 255).astype(np.uint8)
  np.testing.assert_array_equal(decoded, want)
  estimate = float(models.rate_bits(out["likelihoods"])[0])
  assert abs(8 * (len(data) - container.OVERHEAD_BYTES) - estimate) <= 0.01 * estimate
  y, z = cm.analysis(compression.padded_input(image[None]))
  steps = compression.symbols(cm, y[0], z[0]).steps
  assert steps.shape == y.shape[1:3] + (1,) and float(steps.max() / steps.min()) > 1.05


@pytest.mark.slow
def test_model_description_must_say_true_or_false(tmp_path, step_model_dir):
  config = export.read_config(step_model_dir)
  config["adaptive_step"] = "yes"
  bad = tmp_path / "bad"
  bad.mkdir()
  (bad / export.CONFIG_FILE).write_text(json.dumps(config))
  with pytest.raises(UserError, match="adaptive_step"):
    export.read_config(str(bad))


@pytest.mark.slow
def test_fine_tuning_adds_a_neutral_step_branch(tmp_path):
  """init_from a model without h_q: its weights load, h_q keeps its step-1 initialization."""
  plain = models.refit_quantiles(models.init(models.build("bmshj2018-hyperprior", 8, 12),
                                             jax.random.PRNGKey(0)))
  path = str(tmp_path / "plain")
  export.save(path, "bmshj2018-hyperprior", 8, 12, jax.device_get(plain))
  model = models.build("bmshj2018-hyperprior", 8, 12, saliency_hyper=True, adaptive_step=True)
  fresh = models.init(model, jax.random.PRNGKey(5))["params"]
  params = train.load_init_params(path, fresh)
  np.testing.assert_array_equal(params["g_s"]["layer_0"]["kernel"],
                                plain["params"]["g_s"]["layer_0"]["kernel"])
  for name, value in params["h_q"].items():
    np.testing.assert_array_equal(value["kernel"], fresh["h_q"][name]["kernel"])
  assert not np.any(params["h_q"]["layer_4"]["kernel"])


def test_saliency_config_modes_with_steps():
  config_file = load_config_file("saliency")
  step_only = config_file.get_config("tiny,step")
  assert step_only.adaptive_step and step_only.saliency.input
  assert step_only.distortion == "mse@saliency"
  control = config_file.get_config("tiny,plain,step")
  assert control.adaptive_step and control.distortion == "mse"
  assert not (control.saliency.input or control.saliency.hyper_input)
  assert not config_file.get_config("tiny,plain").adaptive_step
  with pytest.raises(ValueError, match="plain"):
    config_file.get_config("tiny,plain,hyper")
