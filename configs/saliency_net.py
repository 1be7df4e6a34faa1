"""The learned saliency network (jaxcomp/saliency/learned.py): a decoder on VGG16 taps fitted to
ground-truth saliency maps (and fixations) with KL - CC - NSS.

Args (after ':', comma-separated):
  (none)    ImageNet VGG16 backbone (frozen), 256x256 inputs, 2000 steps of batch 8.
  tiny      a seeded random VGG16 at 64x64 for 40 steps: runs in seconds on a CPU, needs no
            pretrained weights (tests, demonstrations).

    python -m jaxcomp.train --config=configs/saliency_net.py --workdir=runs/sal-net \\
        --config.data.images=salicon/train/images --config.data.maps=salicon/train/maps \\
        --config.data.fixations=salicon/train/fixations --config.val.images=... \\
        --config.val.maps=...

The weights folder (config.out, default WORKDIR/weights) is a saliency model anywhere one is
named: `learned:WORKDIR/weights`. `jaxcomp saliency train` sets these fields from its flags.
"""

import ml_collections

from jaxcomp.train import config_lib

ARGS = ("tiny",)


def get_config(arg=None):
  tokens = config_lib.parse_tokens(arg, ARGS)
  config = ml_collections.ConfigDict()
  config.trainer = "saliency_net"  # python -m jaxcomp.train dispatches on this

  config.data = ml_collections.ConfigDict()
  config.data.images = ""  # training images (PNG/JPEG)
  config.data.maps = ""  # ground-truth saliency maps, same stems as the images
  config.data.fixations = ""  # binary fixation maps ('' = none: the NSS term is off)
  config.val = ml_collections.ConfigDict()
  config.val.images = ""  # held-out images: AUC-Judd, CC, NSS, KLD, SIM after training ('' = none)
  config.val.maps = ""
  config.val.fixations = ""

  config.input_size = 256  # images and maps resized to S x S; the model resizes every input
  config.backbone = "vgg16"  # 'vgg16': ImageNet weights from the cache; 'random': seeded random
  config.width = 64  # decoder conv channels
  config.train_backbone = False  # fine-tune VGG16 too (saved with the decoder)
  config.loss = "kl=1,cc=1,nss=0.1"  # weights of KL, CC and NSS (nss needs data.fixations)

  config.num_train_steps = 2000
  config.batch_size = 8
  config.learning_rate = 1e-3  # Adam, constant
  config.seed = 0  # decoder init, random backbone, batch order
  config.feature_cache_mb = 2048  # memory for precomputed VGG16 taps of a frozen backbone

  config.log_every_steps = 50  # progress line and TensorBoard scalars
  config.checkpoint_every_steps = 500  # plus at the end and on a preemption signal
  config.keep_checkpoints = 3
  config.logdir = ""  # TensorBoard folder ('' = the workdir)
  config.out = ""  # weights folder ('' = WORKDIR/weights)

  if "tiny" in tokens:
    config.input_size = 64
    config.backbone = "random"
    config.width = 16
    config.num_train_steps = 40
    config.log_every_steps = 10
    config.checkpoint_every_steps = 20
  return config
