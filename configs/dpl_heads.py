"""Deep perceptual loss heads (jaxcomp/perceptual/train.py): LPIPS-style linear heads on VGG16
taps fitted to 2AFC judgments with LPIPS's recipe (Adam lr 1e-4, b1 0.5, batch 50, the learning
rate constant and then decaying linearly to 0 over the last half).

Args (after ':', comma-separated):
  (none)    start from LPIPS v0.1's heads, 1000 steps.
  uniform   start from uniform 1/C heads instead.
  tiny      5 steps of batch 4 (tests, demonstrations).

    python -m jaxcomp.train --config=configs/dpl_heads.py --workdir=runs/dpl \\
        --config.data.dir=twoafc/train --config.val.dir=twoafc/val

Needs the VGG16 (and, for the lpips init, LPIPS) weights: `jaxcomp weights fetch`. The heads
folder (config.out, default WORKDIR/heads) is the metric `dpl:WORKDIR/heads`.
`jaxcomp perceptual train` sets these fields from its flags.
"""

import ml_collections
from ml_collections import config_dict

from jaxcomp.train import config_lib

ARGS = ("uniform", "tiny")


def get_config(arg=None):
  tokens = config_lib.parse_tokens(arg, ARGS)
  config = ml_collections.ConfigDict()
  config.trainer = "dpl_heads"  # python -m jaxcomp.train dispatches on this

  config.data = ml_collections.ConfigDict()
  config.data.dir = ""  # training split (BAPPS layout: ref/, p0/, p1/, judge/)
  config.val = ml_collections.ConfigDict()
  config.val.dir = ""  # held-out split: 2AFC before and after training ('' = none)

  config.init = "uniform" if "uniform" in tokens else "lpips"  # 'lpips' v0.1 heads or 'uniform'
  config.train_backbone = False  # fine-tune VGG16 with the heads (LPIPS's --train_trunk)

  config.num_train_steps = 1000
  config.batch_size = 50  # triplets per step, split over the local devices
  config.learning_rate = 1e-4
  config.b1 = 0.5  # Adam beta1
  # the learning rate decays linearly to 0 over the last decay_steps (None: half the steps)
  config.decay_steps = config_dict.placeholder(int)
  config.seed = 0  # ranking-network init and batch order

  config.log_every_steps = 50
  config.checkpoint_every_steps = 1000  # plus at the end and on a preemption signal
  config.eval_every_steps = 0  # held-out 2AFC (0: at the end only)
  config.out = ""  # heads folder ('' = WORKDIR/heads)

  if "tiny" in tokens:
    config.num_train_steps = 5
    config.batch_size = 4
    config.log_every_steps = 1
    config.checkpoint_every_steps = 2
  return config
