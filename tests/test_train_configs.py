"""Config files: every documented argument builds, bad arguments fail clearly."""


import pytest

from jaxcomp.codec import models
from train_fixtures import load_config_file

load = load_config_file


@pytest.mark.parametrize("name,arch", [("hyperprior", "bmshj2018-hyperprior"),
                                       ("mean_scale", "mbt2018-mean")])
def test_qualities_follow_compressai(name, arch):
  module = load(name)
  for q in range(1, 9):
    config = module.get_config(f"q{q}")
    assert (config.arch, config.quality) == (arch, q)
    assert (config.N, config.M) == models.ARCHS[arch].channels[q]
    assert config.lmbda == models.MSE_LAMBDAS[q]
    assert config.distortion == "mse" and config.data.dir == ""
  assert module.get_config("mse").quality == 3
  tiny = module.get_config("tiny")
  assert (tiny.N, tiny.M, tiny.patch_size) == (32, 48, 64) and tiny.num_train_steps <= 1000


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="unknown config argument 'q9'"):
    load("hyperprior").get_config("q9")
  with pytest.raises(ValueError, match="exactly one distortion"):
    load("finetune").get_config("ssim,lpips")


def test_finetune_configs_for_every_distortion():
  module = load("finetune")
  for name in ("mse", "ssim", "ms_ssim", "gmsd", "lpips", "dists", "fsim", "vsi", "nlpd"):
    for q in range(1, 9):
      config = module.get_config(f"{name},q{q}")
      assert config.distortion == name and config.learning_rate == 1e-5
      assert config.init_required and config.lmbda > 0
  assert module.get_config("ms_ssim,q1").lmbda == 2.40
  assert module.get_config("ms_ssim,q8").lmbda == 220.0
  assert module.get_config("mse,q3").lmbda == models.MSE_LAMBDAS[3]
  assert module.get_config("lpips,mean_scale").arch == "mbt2018-mean"
