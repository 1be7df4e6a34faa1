"""The recipes of the bundled model zoo (`jaxcomp zoo list`): small hyperpriors a 2-core CPU trains.

bmshj2018-hyperprior with N=64, M=96 on 128x128 crops of the 16 photos in
../shared/data/train (batch 8, Adam, gradient clipping 1.0). One base model is trained from scratch
at CompressAI's quality-2 lambda; the other rate points are fine-tuned from it at their own lambda
(fewer steps, lr 1e-4), as CompressAI's own higher/lower-rate models share their recipe.

Args (after ':'):
  base        from scratch, lambda 0.0035 (CompressAI q2), 6,500 steps, lr 3e-4 -> 3e-5 at 85 %.
  q1 .. q8    fine-tune at that quality's lambda (CompressAI's MSE lambdas 0.0018 .. 0.18) from
              the base: set --config.init_from to the base run's workdir or exported model.
              1,500 steps, lr 1e-4 -> 1e-5 at 80 %.
  quickstart  what `jaxcomp quickstart` trains in a few minutes: N=48, M=64, 128x128 crops.

    python -m jaxcomp.train --config=configs/zoo.py:base --workdir=runs/zoo-base \
        --config.data.dir=../shared/data/train
    python -m jaxcomp.train --config=configs/zoo.py:q1 --workdir=runs/zoo-q1 \
        --config.init_from=runs/zoo-base --config.data.dir=../shared/data/train

scripts/build_zoo.py runs all of it, exports the models into jaxcomp/zoo/models/, evaluates them
with real bitstreams against JPEG and WebP and writes jaxcomp/zoo/manifest.json and docs/zoo.md.
"""

from jaxcomp.train import config_lib

ARCH = "bmshj2018-hyperprior"
BASE_QUALITY = 2


def _small(config):
  """The zoo's model size and data recipe (what a 2-core CPU trains in an hour or two)."""
  config.N, config.M = 64, 96
  config.patch_size = 128
  config.batch_size = 8
  config.grad_clip_norm = 1.0
  config.eval.every_steps = 0  # the zoo is evaluated on held-out photos with real bitstreams
  config.log_every_steps = 100
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  config.data.cache_images = 16
  return config


def get_config(arg=None):
  tokens, quality = config_lib.parse_arg(arg, {"base", "quickstart"})
  if "quickstart" in tokens:
    return config_lib.quickstart(config_lib.base(ARCH, quality or 3))
  if "base" in tokens or quality is None:
    config = _small(config_lib.base(ARCH, quality or BASE_QUALITY))
    config.num_train_steps = 6_500
    config.learning_rate = 3e-4
    config.lr_drop_fractions = (0.85,)
    return config
  config = _small(config_lib.base(ARCH, quality))
  config.init_required = True  # a fine-tune: --config.init_from names the base run
  config.num_train_steps = 1_500
  config.learning_rate = 1e-4
  config.lr_drop_fractions = (0.8,)
  return config
