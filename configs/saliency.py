"""Fine-tune an MSE-trained hyperprior to spend its bits on salient regions.

The saliency-driven codec of Patel, Appalaraju, Manmatha (WACV 2021) uses a saliency map S in two
ways: "(a) more bits are allocated to the salient regions and (b) higher weight is given to their
reconstruction". Here both are configuration (`config.saliency`, jaxcomp/train/distortion.py):

  weighted  the distortion's terms are saliency-weighted: 'mse@saliency', i.e. 255^2 MSE with the
            squared-error map averaged under w = (1 + alpha S) / mean(1 + alpha S).
  input     S is a fourth input channel of the analysis transform g_a (learned bit allocation).
  hyper     S, pooled to the latent grid, is an extra input channel of the hyper-analysis h_a.
  step      adaptive quantization (`config.adaptive_step`): a quantization step per latent
            location, predicted from z_hat, so the encoder can make quantization finer where S is
            high by what it writes into z (use with 'hyper'); the decoder still needs no map.
  plain     none of these: the control fine-tune (255^2 MSE, no saliency), same schedule.

Args (after ':', comma-separated): any of weighted, input, hyper, step (default:
weighted,input), or plain (which may take step: the same architecture without saliency); q1..q8 (default q3); mean_scale; tiny. `--config.init_from` names the MSE run (a training
workdir or exported model of the same architecture and size); the kernels of g_a's (and h_a's)
first convolution gain zero-initialised saliency channels (and h_q starts at step 1), so the
fine-tune starts at that model.
The decoder is untouched, and the exported model compresses and decompresses with the usual
commands (the encoder computes S itself with `config.saliency.model`).

    python -m jaxcomp.train --config=configs/saliency.py:q3 --workdir=runs/sal-q3 \
        --config.init_from=runs/mse-q3 --config.data.dir=/data/clic/train
    python -m jaxcomp.train --config=configs/saliency.py:weighted,tiny ... \
        --config.distortion='ms_ssim + 0.1*lpips + 2*l1@saliency' --config.saliency.alpha=8

Other distortions: set --config.distortion (any sum of terms; '@saliency' on those with a spatial
map) and --config.lmbda to match. scripts/saliency_experiment.py compares `plain` and the default
on held-back photos at matched rate.
"""

from jaxcomp.codec import models
from jaxcomp.train import config_lib

DEFAULT_QUALITY = 3
MODES = ("weighted", "input", "hyper", "step", "plain")


def get_config(arg=None):
  tokens, quality = config_lib.parse_arg(arg, set(MODES) | {"tiny", "mean_scale"})
  modes = tokens & set(MODES)
  if "plain" in modes and modes - {"plain", "step"}:
    raise ValueError("'plain' is the control without saliency: do not combine it with "
                     f"{', '.join(sorted(modes - {'plain', 'step'}))}")
  if not modes - {"step"}:
    modes |= {"weighted", "input"}
  quality = quality or DEFAULT_QUALITY
  arch = "mbt2018-mean" if "mean_scale" in tokens else "bmshj2018-hyperprior"
  config = config_lib.base(arch, quality)
  if "tiny" in tokens:
    config = config_lib.tiny(config)
  config.distortion = "mse@saliency" if "weighted" in modes else "mse"
  config.lmbda = models.MSE_LAMBDAS[quality]
  config.saliency.input = "input" in modes
  config.saliency.hyper_input = "hyper" in modes
  config.adaptive_step = "step" in modes
  config.learning_rate = 1e-5 if "tiny" not in tokens else 1e-4
  config.lr_drop_fractions = ()
  if "tiny" not in tokens:
    config.num_train_steps = 100_000  # as configs/finetune.py
  else:
    config.num_train_steps = 300
    config.eval.every_steps = 0
  config.init_required = True
  return config
