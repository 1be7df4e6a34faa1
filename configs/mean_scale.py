"""mbt2018-mean (mean-scale hyperprior) trained for 255^2 MSE from scratch.

Args (after ':', comma-separated):
  q1 .. q8  CompressAI's quality: (N, M) and lambda (0.0018 .. 0.18).
  mse       the study's MSE pretraining run (quality 3 unless a q is given); the default.
  tiny      N=32, M=48 on 64x64 crops for a few hundred steps: trains in minutes on a 2-core
            CPU (the quickstart and the tests use it).

    python -m jaxcomp.train --config=configs/mean_scale.py:q3 --workdir=/tmp/ms-q3 \
        --config.data.dir=/data/clic/train
    python -m jaxcomp.train --config=configs/mean_scale.py:tiny --workdir=/tmp/tiny \
        --config.data.dir=~/photos --config.num_train_steps=300
"""

from jaxcomp.train import config_lib

ARCH = "mbt2018-mean"
DEFAULT_QUALITY = 3


def get_config(arg=None):
  tokens, quality = config_lib.parse_arg(arg, {"mse", "tiny"})
  config = config_lib.base(ARCH, quality or DEFAULT_QUALITY)
  return config_lib.tiny(config) if "tiny" in tokens else config
