"""Saliency-driven compression: saliency-weighted losses, the distortion grammar, encoders with a
saliency input (learned bit allocation) through training, export and real bitstreams."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxcomp import cli
from jaxcomp.codec import export, models
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from jaxcomp.metrics import registry
from jaxcomp.train import distortion, train
from perceptual_fixtures import NEEDS_WEIGHTS as NEEDS_LPIPS
from train_fixtures import load_config_file, tiny_config

pytestmark = pytest.mark.usefixtures("fast_compile")


def _pair(size=(176, 168), seed=0):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.uniform(k1, (2,) + size + (3,))
  y = jnp.clip(x + 0.08 * jax.random.normal(k2, x.shape), 0.0, 1.0)
  return x, y


SPATIAL = ["mse", "l1", "ssim", "ms_ssim"]


@pytest.mark.parametrize("name", SPATIAL + [pytest.param("lpips", marks=NEEDS_LPIPS)])
def test_weighted_loss_with_unit_weights_is_the_loss(name):
  metric = registry.get(name)
  x, y = _pair()
  w = jnp.ones(x.shape[:3])
  np.testing.assert_allclose(metric.weighted_loss_fn(metric.params, x, y, w),
                             metric.loss_fn(metric.params, x, y), rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("name", SPATIAL + [pytest.param("lpips", marks=NEEDS_LPIPS)])
def test_weighting_follows_where_the_error_is(name):
  """Errors only in the left half: weighting the left half up raises the loss, the right half
  up lowers it."""
  metric = registry.get(name)
  x, _ = _pair()
  noise = 0.1 * jax.random.normal(jax.random.PRNGKey(3), x.shape)
  left = jnp.arange(x.shape[2]) < x.shape[2] // 2
  y = jnp.clip(x + noise * left[None, None, :, None], 0.0, 1.0)
  s = jnp.broadcast_to(left, x.shape[:3]).astype(jnp.float32)
  plain = metric.loss_fn(metric.params, x, y)
  on_error = metric.weighted_loss_fn(metric.params, x, y, distortion.saliency_weights(s, 4.0))
  off_error = metric.weighted_loss_fn(metric.params, x, y,
                                      distortion.saliency_weights(1.0 - s, 4.0))
  assert np.all(on_error > 1.2 * plain) and np.all(off_error < 0.8 * plain)


def test_saliency_weights_have_mean_one():
  s = jax.random.uniform(jax.random.PRNGKey(0), (3, 20, 30))
  w = distortion.saliency_weights(s, 4.0)
  np.testing.assert_allclose(jnp.mean(w, axis=(1, 2)), 1.0, rtol=1e-6)
  ratio = jnp.max(w, axis=(1, 2)) / jnp.min(w, axis=(1, 2))
  assert np.all(ratio <= 5.0 + 1e-5) and np.all(ratio > 3.0)


def test_parse_terms():
  terms = distortion.parse("ms_ssim + 0.1*lpips + 2*l1@saliency")
  assert terms == (distortion.Term(1.0, "ms_ssim"), distortion.Term(0.1, "lpips"),
                   distortion.Term(2.0, "l1", True))
  assert distortion.parse("dpl:/runs/heads@saliency") == (
      distortion.Term(1.0, "dpl:/runs/heads", True),)
  for bad in ("", "mse +", "x*mse", "0*mse", "-1*mse", "mse@sal", "2*3*mse"):
    with pytest.raises(UserError):
      distortion.parse(bad)


def test_distortion_is_the_weighted_sum():
  x, y = _pair((64, 64))
  s = jax.random.uniform(jax.random.PRNGKey(5), x.shape[:3])
  dist, params = distortion.create("mse + 0.5*l1@saliency + 2*ssim", 4.0)
  w = distortion.saliency_weights(s, 4.0)
  want = (255.0**2 * jnp.mean((x - y) ** 2, axis=(1, 2, 3))
          + 0.5 * registry.get("l1").weighted_loss_fn(None, x, y, w)
          + 2 * registry.get("ssim").loss_fn(None, x, y))
  np.testing.assert_allclose(dist(params, x, y, saliency=s), want, rtol=1e-5)
  with pytest.raises(ValueError, match="saliency"):
    dist(params, x, y)


def test_unweightable_and_unknown_terms_are_user_errors():
  with pytest.raises(UserError, match="no spatial map"):
    distortion.create("gmsd@saliency", 4.0)
  with pytest.raises(UserError, match="unknown metric"):
    distortion.create("mse + 0.1*no_such_metric", 4.0)
  with pytest.raises(UserError, match="not available as a loss"):
    distortion.create("psnr", 4.0)


def _saliency_model(arch="bmshj2018-hyperprior", hyper=True):
  return models.build(arch, 8, 12, saliency_input=True, saliency_hyper=hyper)


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(models.ARCHS))
def test_saliency_inputs_change_only_the_encoder_inputs(arch):
  plain = models.init(models.build(arch, 8, 12), jax.random.PRNGKey(0))
  sal = models.init(_saliency_model(arch), jax.random.PRNGKey(0))
  flat_p = {k: v.shape for k, v in export.flatten(plain).items()}
  flat_s = {k: v.shape for k, v in export.flatten(sal).items()}
  changed = sorted(k for k in flat_p if flat_p[k] != flat_s[k])
  assert changed == ["params/g_a/layer_0/kernel", "params/h_a/layer_0/kernel"]
  assert flat_s["params/g_a/layer_0/kernel"][2] == 4
  assert flat_s["params/h_a/layer_0/kernel"][2] == flat_p["params/h_a/layer_0/kernel"][2] + 1


@pytest.mark.slow
def test_saliency_model_needs_a_map_of_the_right_size():
  model = _saliency_model()
  variables = models.init(model, jax.random.PRNGKey(0))
  x = jnp.full((1, 40, 50, 3), 0.5)
  with pytest.raises(ValueError, match="saliency map"):
    model.apply(variables, x, training=False)
  with pytest.raises(ValueError, match="does not match"):
    model.apply(variables, x, training=False, saliency=jnp.zeros((1, 40, 40)))
  out = model.apply(variables, x, training=False, saliency=jnp.zeros((1, 40, 50)))
  assert out["x_hat"].shape == x.shape


@pytest.mark.slow
def test_zero_extended_init_reproduces_the_plain_model():
  """Fine-tuning starts at the loaded model: zero saliency kernels ignore the map."""
  plain_model = models.build("bmshj2018-hyperprior", 8, 12)
  plain = models.init(plain_model, jax.random.PRNGKey(1))
  model = _saliency_model()
  fresh = models.init(model, jax.random.PRNGKey(2))["params"]
  leaves = []
  for path, value in jax.tree_util.tree_flatten_with_path(fresh)[0]:
    name = jax.tree_util.keystr(path)
    loaded = plain["params"]
    for key in path:
      loaded = loaded[key.key]
    widened = train._widen_inputs(loaded, value.shape, name)  # pylint: disable=protected-access
    leaves.append(loaded if widened is None else widened)
  params = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(fresh), leaves)
  x = jax.random.uniform(jax.random.PRNGKey(3), (1, 64, 64, 3))
  s = jax.random.uniform(jax.random.PRNGKey(4), (1, 64, 64))
  a = plain_model.apply(plain, x, training=False)
  b = model.apply({"params": params, "quantiles": plain["quantiles"]}, x, training=False,
                  saliency=s)
  np.testing.assert_allclose(a["x_hat"], b["x_hat"], atol=1e-6)
  np.testing.assert_allclose(a["likelihoods"]["y"], b["likelihoods"]["y"], rtol=1e-5)


@pytest.mark.slow
def test_finetune_with_saliency_then_compress_and_decompress(photos, tmp_path, monkeypatch):
  """MSE run -> saliency fine-tune (zero-extended kernels, a new step branch) -> export -> CLI
  round trip."""
  base = tiny_config(photos, num_train_steps=2, checkpoint_every_steps=2)
  train.train_and_evaluate(base, str(tmp_path / "mse"))

  config = tiny_config(
      photos, load_config_file("saliency").get_config("tiny,weighted,input,hyper,step"),
      num_train_steps=2, checkpoint_every_steps=2, init_from=str(tmp_path / "mse"))
  config.eval.every_steps = 2
  config.eval.patch_size = 64
  config.eval.metrics = "psnr"
  state = train.train_and_evaluate(config, str(tmp_path / "sal"))
  kernel = state.params["g_a"]["layer_0"]["kernel"]
  assert kernel.shape[2] == 4
  # The saliency channel started at zero (zero-extended) and has been trained: gradients reach it.
  assert float(jnp.max(jnp.abs(kernel[:, :, 3]))) > 0
  assert float(jnp.max(jnp.abs(state.params["h_a"]["layer_0"]["kernel"][:, :, -1]))) > 0
  assert float(jnp.max(jnp.abs(state.params["h_q"]["layer_4"]["kernel"]))) > 0  # left step 1

  monkeypatch.setattr(cli, "COMMAND_MODULES", ("jaxcomp.train.cli", "jaxcomp.coding.cli"))
  model_dir = str(tmp_path / "model")
  assert cli.main(["export", "--workdir", str(tmp_path / "sal"), "--out", model_dir]) == 0
  described = export.read_config(model_dir)
  assert described["saliency"] == {"model": "sdsp", "input": True, "hyper_input": True}
  assert described["adaptive_step"] is True
  src = os.path.join(photos, "photo0.png")
  jxc, png = str(tmp_path / "a.jxc"), str(tmp_path / "a.png")
  assert cli.main(["compress", "--model", model_dir, src, jxc]) == 0
  assert cli.main(["decompress", "--model", model_dir, jxc, png]) == 0
  assert np.asarray(Image.open(png)).shape == np.asarray(Image.open(src)).shape


@pytest.mark.slow
def test_bitstream_depends_on_the_saliency_map(tmp_path):
  """The encoder uses S; the decoder does not need it."""
  model = _saliency_model()
  variables = models.init(model, jax.random.PRNGKey(0))
  kernel = variables["params"]["g_a"]["layer_0"]["kernel"]
  variables["params"]["g_a"]["layer_0"]["kernel"] = kernel.at[:, :, 3].set(0.5)  # S matters
  variables = models.refit_quantiles(variables)
  path = str(tmp_path / "m")
  export.save(path, "bmshj2018-hyperprior", 8, 12, jax.device_get(variables),
              saliency={"model": "sdsp", "input": True, "hyper_input": True})
  cm = compression.CodingModel(path)
  rng = np.random.default_rng(0)
  image = (np.kron(rng.uniform(size=(1, 8, 8, 3)), np.ones((1, 16, 16, 1))) * 255).astype(np.uint8)
  with_sdsp = compression.compress(cm, image)[0]
  flat = np.zeros_like(cm.saliency_map(image))
  y, z = cm.analysis(compression.padded_input(image), saliency=flat)
  with_flat = compression.encode(cm, compression.symbols(cm, y[0], z[0]), 128, 128, 3)
  assert with_sdsp != with_flat
  for data in (with_sdsp, with_flat):
    assert compression.decompress(cm, data).shape == (128, 128, 3)


@pytest.mark.slow
def test_export_refuses_a_missing_learned_saliency_folder(tmp_path):
  model = _saliency_model()
  variables = models.refit_quantiles(models.init(model, jax.random.PRNGKey(0)))
  with pytest.raises(UserError, match="saliency model folder not found"):
    export.save(str(tmp_path / "m"), "bmshj2018-hyperprior", 8, 12, jax.device_get(variables),
                saliency={"model": str(tmp_path / "nothing"), "input": True})
  assert not os.path.exists(tmp_path / "m")


def test_saliency_source_carries_the_whole_image_map(photos):
  from jaxcomp import saliency  # pylint: disable=g-import-not-at-top
  from jaxcomp.train import input_pipeline  # pylint: disable=g-import-not-at-top

  folder = input_pipeline.ImageFolder(photos, 32)
  source = input_pipeline.SaliencySource(folder, saliency.load("sdsp"), cache=1)
  image = folder[1]
  item = source[1]
  assert item.shape == image.shape[:2] + (5,) and item.dtype == np.uint8
  np.testing.assert_array_equal(item[..., :3], image)
  want = np.asarray(saliency.sdsp(image[None].astype(np.float32) / 255.0))[0]
  np.testing.assert_allclose(item[..., 3] / 255.0, want, atol=0.5 / 255 + 1e-6)
  np.testing.assert_allclose(item[..., 4] / 255.0, want.mean(), atol=0.5 / 255 + 1e-6)
  np.testing.assert_array_equal(source[1], item)  # cached
  crop = input_pipeline.CropStream(source, 32, seed=0).example(0)
  assert crop.shape == (32, 32, 5)


def test_crops_are_weighted_by_their_whole_image():
  """A crop of the background weighs less than one of the salient region."""
  background = jnp.zeros((1, 8, 8))
  salient = jnp.ones((1, 8, 8))
  mean = jnp.array([0.25])
  w_bg = distortion.saliency_weights(background, 4.0, mean)
  w_sal = distortion.saliency_weights(salient, 4.0, mean)
  np.testing.assert_allclose(w_bg, 0.5)
  np.testing.assert_allclose(w_sal, 2.5)
  np.testing.assert_allclose(distortion.saliency_weights(background, 4.0), 1.0)


def test_crop_losses_add_up_to_the_whole_image_loss():
  """Weighted MSE of the crops of an image, normalised by the image's mean, averages to the whole
  image's weighted MSE."""
  x, y = _pair((64, 64))
  s = jax.random.uniform(jax.random.PRNGKey(7), x.shape[:3]) ** 3
  dist, params = distortion.create("mse@saliency", 8.0)
  whole = dist(params, x, y, saliency=s)
  crops = [(slice(0, 32), slice(0, 32)), (slice(0, 32), slice(32, 64)),
           (slice(32, 64), slice(0, 32)), (slice(32, 64), slice(32, 64))]
  parts = [dist(params, x[:, r, c], y[:, r, c], saliency=s[:, r, c],
                saliency_mean=jnp.mean(s, axis=(1, 2))) for r, c in crops]
  np.testing.assert_allclose(sum(parts) / 4, whole, rtol=1e-5)
