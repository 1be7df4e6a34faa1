"""What every training config shares: `base(arch, quality)` and the `:arg` parser.

configs/*.py build on these (big_vision's configs/common.py pattern), so that a field means the
same in every experiment and `--config.<field>=value` works for all of them.
"""

import ml_collections

from jaxcomp.codec import models


def parse_arg(arg, allowed):
  """'a,b,q3' -> ({'a', 'b'}, 3 or None); ValueError for an unknown token.

  Args:
    arg: the text after ':' in --config=file.py:arg (None or '' for none).
    allowed: the plain tokens this config file accepts besides q1..q8.
  """
  tokens, quality = set(), None
  for token in filter(None, (arg or "").split(",")):
    if token[0] == "q" and token[1:].isdigit() and 1 <= int(token[1:]) <= 8:
      quality = int(token[1:])
    elif token in allowed:
      tokens.add(token)
    else:
      raise ValueError(f"unknown config argument {token!r} (use {', '.join(sorted(allowed))} "
                       f"or q1..q8)")
  return tokens, quality


def parse_tokens(arg, allowed):
  """'a,b' -> {'a', 'b'} for a config file without quality tokens; ValueError for an unknown one.

  Args:
    arg: the text after ':' in --config=file.py:arg (None or '' for none).
    allowed: the tokens this config file accepts, in the order its error message lists them.
  """
  tokens = set(filter(None, (arg or "").split(",")))
  if tokens - set(allowed):
    raise ValueError(f"unknown config argument {sorted(tokens - set(allowed))[0]!r} "
                     f"(use {', '.join(allowed)})")
  return tokens


def base(arch, quality):
  """Full training config for an architecture at a CompressAI quality (MSE, from scratch)."""
  N, M = models.ARCHS[arch].channels[quality]
  config = ml_collections.ConfigDict()
  config.arch = arch  # a key of jaxcomp.codec.models.ARCHS
  config.quality = quality  # CompressAI quality 1..8 (documents N, M, lmbda below)
  config.N = N  # channels of the hidden layers and of z
  config.M = M  # channels of y
  config.ste = False  # straight-through rounded y into g_s (noise for the rate either way)
  config.dtype = "float32"  # transforms' compute dtype: 'bfloat16' for mixed precision on GPU/TPU
  # A quantization step per latent location, predicted from z_hat (models.Hyperprior): lets the
  # encoder make quantization finer where it wants more bits (e.g. salient regions).
  config.adaptive_step = False

  # 'mse' = 255^2 MSE; else a jaxcomp.metrics.registry loss name, or a weighted sum of terms,
  # each optionally saliency-weighted: 'ms_ssim + 0.1*lpips + 2*l1@saliency'
  # (jaxcomp/train/distortion.py).
  config.distortion = "mse"
  config.lmbda = models.MSE_LAMBDAS[quality]  # L = bpp + lmbda * distortion

  # Saliency (jaxcomp.saliency), used by '@saliency' distortion terms and the encoder inputs.
  config.saliency = ml_collections.ConfigDict()
  config.saliency.model = "sdsp"  # 'sdsp', 'centre' or a learned saliency weights folder
  config.saliency.alpha = 4.0  # '@saliency' weights w = normalise(1 + alpha S), mean 1 per image
  config.saliency.input = False  # S as a 4th input channel of g_a (learned bit allocation)
  config.saliency.hyper_input = False  # S pooled to the latent grid as an extra input of h_a
  # 'image': S of the whole training image, cropped with it (what the encoder sees at test time);
  # 'crop': S of each crop, computed in the training step (no per-image maps to compute/cache).
  config.saliency.scope = "image"

  config.num_train_steps = 1_000_000  # tensorflow-compression's bmshj2018 default (1000 x 1000)
  config.batch_size = 8  # global: split over hosts, then over each host's devices
  config.patch_size = 256  # random square crops; smaller images are skipped
  config.learning_rate = 1e-4  # Adam
  config.lr_drop_fractions = (0.9,)  # lr x 0.1 after each of these fractions of the run
  config.grad_clip_norm = 1.0  # global-norm clipping (CompressAI's clip_max_norm); 0 = off
  config.seed = 0  # model init, noise and data order
  config.init_from = ""  # start from a training workdir or an exported model (fine-tuning)

  config.data = ml_collections.ConfigDict()
  config.data.dir = ""  # image folder (PNG/JPEG, recursive); used unless tfds_name is set
  config.data.tfds_name = ""  # e.g. 'clic': a prepared TFDS dataset, read with tfds.data_source
  config.data.tfds_split = "train"
  config.data.tfds_data_dir = ""  # TFDS data_dir ('' = TFDS's default)
  config.data.flip = True  # random horizontal flips
  config.data.cache_images = 0  # decoded images kept in memory (0 = decode every crop)

  config.eval = ml_collections.ConfigDict()
  config.eval.every_steps = 10_000  # validation batch metrics (0 = never)
  config.eval.batch_size = 8  # crops drawn with seed + 1 from eval.dir (or the training data)
  config.eval.patch_size = 256  # MS-SSIM needs >= 161, the VGG metrics >= 32
  config.eval.dir = ""  # validation images ('' = the training source)
  config.eval.metrics = "all"  # 'all' registered metrics that load, or 'a,b,...'

  config.log_every_steps = 100  # TensorBoard scalars and the console progress line
  config.checkpoint_every_steps = 5000  # plus at the end and on a preemption signal
  config.keep_checkpoints = 3
  return config


def tiny(config):
  """Shrinks a config to minutes on a 2-core CPU (lambda stays the quality's)."""
  config.N, config.M = 32, 48
  config.patch_size = 64
  config.batch_size = 8
  config.num_train_steps = 400
  config.learning_rate = 1e-3  # small model, few steps: a larger step size than 1e-4
  config.lr_drop_fractions = (0.8,)
  config.eval.every_steps = 200
  config.eval.batch_size = 4
  config.eval.patch_size = 192
  config.eval.metrics = "psnr,ssim,ms_ssim"
  config.log_every_steps = 20
  config.checkpoint_every_steps = 100
  config.data.cache_images = 64
  return config


def quickstart(config):
  """`jaxcomp quickstart`'s recipe: the best model a 2-core CPU trains in about five minutes.

  N=48, M=64 on 128x128 crops (z is 2x2 latent pixels per crop, not 1x1 as at 64x64), batch 8,
  Adam 1e-3 dropped x0.1 at 75 %, 1200 steps; lambda stays the quality's.
  """
  config.N, config.M = 48, 64
  config.patch_size = 128
  config.batch_size = 8
  config.num_train_steps = 1200
  config.learning_rate = 1e-3
  config.lr_drop_fractions = (0.75,)
  config.eval.every_steps = 0
  config.log_every_steps = 50
  config.checkpoint_every_steps = 200
  config.data.cache_images = 64
  return config
