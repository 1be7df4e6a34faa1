"""`jaxcomp saliency`: train, evaluate and run saliency models.

    jaxcomp saliency train --images DIR --maps DIR [--fixations DIR] --out WEIGHTS_DIR
                           [--steps N] [--batch B] [--size S] [--lr LR] [--seed SEED]
                           [--loss kl=1,cc=1,nss=0.1] [--val-images DIR --val-maps DIR
                           [--val-fixations DIR]] [--backbone vgg16|random] [--train-backbone]
                           [--logdir DIR] [--workdir DIR [--checkpoint-every N]]
    jaxcomp saliency eval --model sdsp|centre|DIR[,...] --images DIR --maps DIR
                          [--fixations DIR] [--json]
    jaxcomp saliency predict --model sdsp|centre|DIR IMAGE OUT.png

Data layout and checks: data.py. `eval` prints a table of AUC-Judd, CC, NSS, KLD and SIM
(evaluation.py) per model; with --json the last stdout line is
{"n": N, "fixations": bool, "results": {model: {"auc_judd": x, "cc": x, "nss": x, "kld": x,
"sim": x}}} (AUC-Judd and NSS null without --fixations). `predict` writes an 8-bit grayscale
PNG (or JPEG) of the map. `train` saves a weights folder usable as `learned:DIR` anywhere a
saliency model is named; it builds configs/saliency_net.py's config from its flags and runs
`jaxcomp.saliency.train.train_and_evaluate` (also `python -m jaxcomp.train
--config=saliency_net.py --workdir=DIR --config.data.images=...`).
"""

import json
import os

from jaxcomp.errors import UserError


def register(subparsers):
  p = subparsers.add_parser(
      "saliency", help="saliency models: train, evaluate (AUC-Judd, CC, NSS, KLD, SIM), predict",
      description="Saliency models (SDSP, a centre-bias baseline, learned VGG16-decoder models): "
                  "training on folder-pair saliency data, benchmark metrics, prediction.")
  sub = p.add_subparsers(dest="saliency_command", metavar="<action>", parser_class=type(p))
  sub.required = True
  t = sub.add_parser("train", help="train a learned saliency model on images + saliency maps")
  t.add_argument("--images", required=True, metavar="DIR", help="training images (PNG/JPEG)")
  t.add_argument("--maps", required=True, metavar="DIR",
                 help="ground-truth saliency maps, same stems as the images")
  t.add_argument("--fixations", metavar="DIR", help="binary fixation maps (for the NSS loss)")
  t.add_argument("--out", required=True, metavar="WEIGHTS_DIR", help="folder for the weights")
  t.add_argument("--steps", type=int, default=2000, help="optimisation steps (default 2000)")
  t.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
  t.add_argument("--size", type=int, default=256,
                 help="side S: images and maps are resized to S x S, and the model resizes "
                      "every input to S x S (default 256)")
  t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
  t.add_argument("--seed", type=int, default=0,
                 help="seed of the initialisation (and of --backbone random) and the batch order "
                      "(default 0)")
  t.add_argument("--loss", default="kl=1,cc=1,nss=0.1",
                 help="loss weights, e.g. kl=1,cc=1,nss=0.1 or kl+cc (default kl=1,cc=1,nss=0.1;"
                      " nss needs --fixations)")
  t.add_argument("--val-images", metavar="DIR", help="held-out images: metrics after training")
  t.add_argument("--val-maps", metavar="DIR", help="held-out saliency maps")
  t.add_argument("--val-fixations", metavar="DIR", help="held-out fixation maps")
  t.add_argument("--backbone", choices=("vgg16", "random"), default="vgg16",
                 help="vgg16: ImageNet weights from the cache (default); random: a seeded random "
                      "VGG16 (tests and demos without the pretrained weights)")
  t.add_argument("--train-backbone", action="store_true",
                 help="fine-tune VGG16 too (slower; the backbone is saved with the decoder)")
  t.add_argument("--width", type=int, default=64, help="decoder conv channels (default 64)")
  t.add_argument("--feature-cache-mb", type=int, default=2048,
                 help="memory for precomputed VGG16 taps of a frozen backbone (default 2048)")
  t.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
  t.add_argument("--logdir", metavar="DIR",
                 help="write TensorBoard scalars here (default: the --workdir, if any)")
  t.add_argument("--workdir", metavar="DIR",
                 help="checkpoints, TensorBoard scalars and config.json; rerunning with the same "
                      "workdir resumes from its newest checkpoint")
  t.add_argument("--checkpoint-every", type=int, metavar="N",
                 help="steps between checkpoints (needs --workdir; default 500; one is also "
                      "saved at the end)")
  t.set_defaults(func=run)
  e = sub.add_parser("eval", help="AUC-Judd, CC, NSS, KLD, SIM of saliency models on a dataset")
  e.add_argument("--model", default="sdsp",
                 help="comma-separated models: sdsp, centre, learned:DIR or DIR (default sdsp)")
  e.add_argument("--images", required=True, metavar="DIR", help="test images (PNG/JPEG)")
  e.add_argument("--maps", required=True, metavar="DIR",
                 help="ground-truth saliency maps named after the images' stems")
  e.add_argument("--fixations", metavar="DIR", help="binary fixation maps (AUC-Judd and NSS)")
  e.add_argument("--json", action="store_true", help="print a JSON object as the last line")
  e.set_defaults(func=run)
  r = sub.add_parser("predict", help="write the saliency map of one image")
  r.add_argument("--model", default="sdsp", help="sdsp, centre, learned:DIR or DIR (default sdsp)")
  r.add_argument("image", help="input image (PNG/JPEG)")
  r.add_argument("out", help="output map (.png or .jpg, 8-bit grayscale)")
  r.set_defaults(func=run)


def run(args):
  return {"train": _run_train, "eval": _run_eval, "predict": _run_predict}[
      args.saliency_command](args)


def _models(spec):
  from jaxcomp import saliency  # pylint: disable=g-import-not-at-top

  names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
  if not names:
    raise UserError("--model: give at least one saliency model")
  return [saliency.load(n) for n in names]


def _run_eval(args):
  from jaxcomp.saliency import data  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import evaluation  # pylint: disable=g-import-not-at-top

  models = _models(args.model)
  samples = data.pair_files(args.images, args.maps, args.fixations)
  results = evaluation.evaluate_models(models, samples)
  for line in evaluation.format_table(results, len(samples), args.fixations is not None):
    print(line)
  if args.json:
    print(json.dumps({"n": len(samples), "fixations": args.fixations is not None,
                      "results": results}))
  return 0


def _run_predict(args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from jaxcomp import images  # pylint: disable=g-import-not-at-top
  from jaxcomp.fileio import atomic_path  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import data  # pylint: disable=g-import-not-at-top

  ext = os.path.splitext(args.out)[1].lower()
  if ext not in data.EXTENSIONS:
    raise UserError(f"{args.out}: output must end in .png, .jpg or .jpeg")
  (model,) = _models(args.model)
  image = images.read_rgb(args.image)
  smap = np.asarray(model(image[None].astype(np.float32) / 255.0))[0]
  pixels = np.round(np.clip(smap, 0.0, 1.0) * 255.0).astype(np.uint8)
  with atomic_path(args.out) as tmp:
    Image.fromarray(pixels, "L").save(tmp, format="PNG" if ext == ".png" else "JPEG", quality=95)
  print(f"wrote {args.out} ({pixels.shape[1]}x{pixels.shape[0]}, model {model.name})")
  return 0


# config field -> the flag that sets it, so that errors name the flag (`train.check_config`)
TRAIN_FLAGS = {"num_train_steps": "--steps", "batch_size": "--batch", "width": "--width",
               "log_every_steps": "--log-every", "input_size": "--size", "learning_rate": "--lr",
               "loss": "--loss", "data.images": "--images", "data.maps": "--maps",
               "data.fixations": "--fixations", "val.images": "--val-images",
               "val.maps": "--val-maps", "val.fixations": "--val-fixations",
               "backbone": "--backbone", "out": "--out",
               "checkpoint_every_steps": "--checkpoint-every"}


def train_config(args):
  """configs/saliency_net.py's config with the `saliency train` flags applied."""
  from jaxcomp.train import config_files  # pylint: disable=g-import-not-at-top

  config = config_files.load("saliency_net")
  config.data.images, config.data.maps = args.images, args.maps
  config.data.fixations = args.fixations or ""
  config.val.images, config.val.maps = args.val_images or "", args.val_maps or ""
  config.val.fixations = args.val_fixations or ""
  config.num_train_steps, config.batch_size = args.steps, args.batch
  config.input_size, config.learning_rate, config.seed = args.size, args.lr, args.seed
  config.loss, config.backbone, config.width = args.loss, args.backbone, args.width
  config.train_backbone, config.feature_cache_mb = args.train_backbone, args.feature_cache_mb
  config.log_every_steps, config.logdir, config.out = args.log_every, args.logdir or "", args.out
  if args.checkpoint_every is not None:
    config.checkpoint_every_steps = args.checkpoint_every
  return config


def _run_train(args):
  from jaxcomp.saliency import train  # pylint: disable=g-import-not-at-top

  if args.checkpoint_every is not None and not args.workdir:
    raise UserError("--checkpoint-every needs --workdir (where checkpoints go)")
  train.train_and_evaluate(train_config(args), args.workdir, names=TRAIN_FLAGS, log=print)
  return 0
