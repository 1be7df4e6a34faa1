"""Fine-tune an MSE-trained hyperprior with one distortion: the study's second stage.

Mohammadi & Ascenso (PCS 2022) train one codec with MSE, then fine-tune it at lr 1e-5 with each
of MSE, SSIM, MS-SSIM, FSIM, GMSD, LPIPS, DISTS, NLPD and VSI as D in L = bpp + lambda * D.
CompressAI made its MS-SSIM models the same way ("fine-tuned from pre-trained MSE networks",
lr 1e-5).

Args (after ':', comma-separated): one distortion name, optionally q1..q8 (default q3),
`mean_scale` (mbt2018-mean instead of bmshj2018-hyperprior), `tiny` (the tiny model and crops,
for trying the pipeline), `calibration=PATH` (lambda from a table written by `jaxcomp calibrate`,
its lambdas.json or calibration.json, instead of LAMBDAS below). `--config.init_from` must name
the MSE run: its workdir or its exported model, of the same architecture and quality. The file
is found from any directory by name: `--config=finetune.py:lpips,q3` (jaxcomp.train.config_lib.resolve_config_file).

Crops: each metric's minimum image size is respected (`patch_size_for`): MS-SSIM needs 161 pixels
(five scales of an 11-tap window), so `ms_ssim,tiny` trains on 192-pixel crops instead of the
tiny config's 64; the other metrics work at 64 (SSIM 11, NLPD 17, LPIPS/DISTS 16). A smaller
`--config.patch_size` stops the run at start with one line naming the minimum. Validation
(`eval.metrics`) always includes the metric being trained.

    python -m jaxcomp.train --config=configs/finetune.py:lpips,q3 --workdir=runs/lpips-q3 \
        --config.init_from=runs/mse-q3 --config.data.dir=/data/clic/train

D is the metric registry's loss (jaxcomp.metrics.registry: 1 - SSIM, 1 - MS-SSIM, GMSD, LPIPS,
DISTS, 1 - FSIM, 1 - VSI, NLPD), except 'mse', which is 255^2 MSE as in pretraining. A name not
registered when the run starts stops it with `error: unknown metric ...`.

Lambdas (LAMBDAS below, or a calibrated table with `calibration=PATH`: the lambda per distortion
and quality at which the fine-tuned model lands at its MSE parent's bpp, found by `jaxcomp
calibrate`, jaxcomp/train/calibrate.py; --config.lmbda overrides either):
  mse      CompressAI's MSE lambdas, 0.0018 .. 0.18 (fine-tuning MSE with MSE: the control).
  ms_ssim  CompressAI's MS-SSIM lambdas, 2.40 .. 220 (reference/codec.md): about 1300x the MSE
           lambda of the same quality.
  others   lambda_D(q) = lambda_MS-SSIM(q) * g_D, with g_D = ||grad 1-MS-SSIM|| / ||grad D||, the
           ratio of the gradient norms with respect to x_hat at the MSE model's operating point
           (photos compressed to 27..41 dB PSNR, the range of CompressAI's MSE models q1..q8;
           scripts/calibrate_finetune_lambdas.py). So each fine-tune starts with the push on x_hat
           that CompressAI's MS-SSIM fine-tune has at that quality, and the rate keeps the weight
           it had: the bitrates stay near the MSE model's, which the study's low/medium/high-rate
           comparison needs. Measured g_D (median over crops; quartiles in GRADIENT_RATIOS'
           comments). FSIM, VSI and NLPD were not registered when this was measured: their g_D
           are stand-ins by kinship (FSIM, VSI: similarity indices in [0, 1] built like SSIM from
           local gradient/phase terms -> SSIM's g; NLPD: a normalized-Laplacian distance on the
           scale of GMSD's deviations -> GMSD's g); rerun the script once they are registered.
           Sweep lambda_D / 2 .. 2 lambda_D if the fine-tuned rate drifts from the MSE model's.
"""

from jaxcomp.codec import models
from jaxcomp.errors import UserError
from jaxcomp.metrics import dists, lpips, nlpd, ssim
from jaxcomp.train import config_lib, lambda_table

DISTORTIONS = ("mse", "ssim", "ms_ssim", "gmsd", "lpips", "dists", "fsim", "vsi", "nlpd")
DEFAULT_QUALITY = 3

# CompressAI's MS-SSIM lambdas, L = bpp + lambda * (1 - MS-SSIM), quality 1..8.
MS_SSIM_LAMBDAS = {1: 2.40, 2: 4.58, 3: 8.73, 4: 16.64, 5: 31.73, 6: 60.50, 7: 115.37, 8: 220.0}

# g_D = ||d(1 - MS-SSIM)/d x_hat|| / ||dD/d x_hat|| at 27..41 dB (see the module docstring),
# measured on 59 JPEG-compressed 256x256 crops of 6 photos. In the comments: the median of
# r_D = ||d(255^2 MSE)/d x_hat|| / ||dD/d x_hat|| and its quartiles; r_MS-SSIM = 496 (395 .. 685)
# (CompressAI's own lambdas give 1222 .. 1333: JPEG is not the codec, hence the MS-SSIM anchor).
GRADIENT_RATIOS = {
    "ssim": 0.44,  # r 218 (170 .. 293): single finest scale, steeper than MS-SSIM
    "gmsd": 0.69,  # r 340 (242 .. 569)
    "lpips": 0.061,  # r 30.3 (16.4 .. 47.3): deep features react strongly to small changes
    "dists": 0.052,  # r 25.8 (13.5 .. 46.5)
    "fsim": 0.44,  # stand-in: SSIM's (not registered when measured)
    "vsi": 0.44,  # stand-in: SSIM's
    "nlpd": 0.69,  # stand-in: GMSD's
}

# Smallest image side each distortion accepts (the others: 2 pixels or fewer).
MIN_SIZES = {"ssim": ssim.WIN_SIZE, "ms_ssim": ssim.MS_SSIM_MIN_SIZE, "lpips": lpips.MIN_SIZE,
             "dists": dists.MIN_SIZE, "nlpd": nlpd.MIN_SIZE}
CROP_MULTIPLE = 64  # the hyperprior's total down-sampling: crops are multiples of it


def patch_size_for(distortion, patch_size):
  """The smallest multiple of CROP_MULTIPLE >= patch_size that the distortion accepts."""
  needed = max(patch_size, MIN_SIZES.get(distortion, 0))
  return -(-needed // CROP_MULTIPLE) * CROP_MULTIPLE


# Per distortion, quality -> lambda.
LAMBDAS = {
    "mse": dict(models.MSE_LAMBDAS),
    "ms_ssim": MS_SSIM_LAMBDAS,
    **{name: {q: round(lmbda * g, 4) for q, lmbda in MS_SSIM_LAMBDAS.items()}
       for name, g in GRADIENT_RATIOS.items()},
}


def split_calibration(arg):
  """'lpips,q2,calibration=PATH' -> ('lpips,q2', 'PATH' or None)."""
  tokens, path = [], None
  for token in (arg or "").split(","):
    if token.startswith("calibration="):
      path = token[len("calibration="):]
      if not path:
        raise ValueError("calibration= needs the path of a lambda table (jaxcomp calibrate)")
    else:
      tokens.append(token)
  return ",".join(tokens), path


def get_config(arg=None):
  arg, calibration = split_calibration(arg)
  tokens, quality = config_lib.parse_arg(arg, set(DISTORTIONS) | {"tiny", "mean_scale"})
  names = [t for t in tokens if t in DISTORTIONS]
  if len(names) != 1:
    raise ValueError(f"give exactly one distortion ({', '.join(DISTORTIONS)}), e.g. "
                     f"configs/finetune.py:lpips,q3")
  quality = quality or DEFAULT_QUALITY
  arch = "mbt2018-mean" if "mean_scale" in tokens else "bmshj2018-hyperprior"
  config = config_lib.base(arch, quality)
  if "tiny" in tokens:
    config = config_lib.tiny(config)
  config.distortion = names[0]
  config.lmbda = LAMBDAS[names[0]][quality]
  if calibration:
    try:
      config.lmbda = lambda_table.lookup(lambda_table.read(calibration), names[0], quality,
                                         calibration)
    except UserError as e:  # config files report bad arguments as ValueError (absl's one line)
      raise ValueError(str(e)) from None
  config.patch_size = patch_size_for(names[0], config.patch_size)
  config.eval.patch_size = patch_size_for(names[0], config.eval.patch_size)
  if config.eval.metrics != "all" and names[0] not in config.eval.metrics.split(","):
    config.eval.metrics += f",{names[0]}"  # validation reports the metric being trained
  config.learning_rate = 1e-5
  config.lr_drop_fractions = ()
  if "tiny" not in tokens:
    config.num_train_steps = 100_000  # a tenth of pretraining (the papers give no length)
  config.init_required = True  # refuse to start without init_from (fine-tuning from scratch)
  return config
