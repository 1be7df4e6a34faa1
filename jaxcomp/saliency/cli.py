"""`jaxcomp saliency`: train, evaluate and run saliency models.

    jaxcomp saliency train --images DIR --maps DIR [--fixations DIR] --out WEIGHTS_DIR
                           [--steps N] [--batch B] [--size S] [--lr LR] [--seed SEED]
                           [--loss kl=1,cc=1,nss=0.1] [--val-images DIR --val-maps DIR
                           [--val-fixations DIR]] [--backbone vgg16|random] [--train-backbone]
                           [--logdir DIR]
    jaxcomp saliency eval --model sdsp|centre|DIR[,...] --images DIR --maps DIR
                          [--fixations DIR] [--json]
    jaxcomp saliency predict --model sdsp|centre|DIR IMAGE OUT.png

Data layout and checks: data.py. `eval` prints a table of AUC-Judd, CC, NSS, KLD and SIM
(evaluation.py) per model; with --json the last stdout line is
{"n": N, "fixations": bool, "results": {model: {"auc_judd": x, "cc": x, "nss": x, "kld": x,
"sim": x}}} (AUC-Judd and NSS null without --fixations). `predict` writes an 8-bit grayscale
PNG (or JPEG) of the map. `train` saves a weights folder usable as `learned:DIR` anywhere a
saliency model is named.
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
  t.add_argument("--logdir", metavar="DIR", help="write TensorBoard scalars here")
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


def _run_train(args):
  from jaxcomp.saliency import data  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import evaluation  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import learned  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import losses  # pylint: disable=g-import-not-at-top
  from jaxcomp.saliency import train  # pylint: disable=g-import-not-at-top

  for name in ("steps", "batch", "width", "log_every"):
    if getattr(args, name) < 1:
      raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
  if args.size < learned.MIN_INPUT_SIZE:
    raise UserError(f"--size must be at least {learned.MIN_INPUT_SIZE}, got {args.size}")
  if not args.lr > 0:
    raise UserError(f"--lr must be positive, got {args.lr}")
  if (args.val_images is None) != (args.val_maps is None):
    raise UserError("--val-images and --val-maps go together")
  if args.val_fixations and not args.val_images:
    raise UserError("--val-fixations needs --val-images and --val-maps")
  try:
    weights = losses.parse_weights(args.loss)
  except ValueError as e:
    raise UserError(f"--loss: {e}") from e
  if weights.get("nss") and not args.fixations:
    weights.pop("nss")
    if not any(weights.values()):
      raise UserError("--loss: the NSS loss needs --fixations")
    print("note: no --fixations, so the NSS loss term is off")
  backbone = "vgg16" if args.backbone == "vgg16" else f"random:{args.seed}"
  config = learned.default_config(input_size=args.size, backbone=backbone, width=args.width)
  samples = data.pair_files(args.images, args.maps, args.fixations)
  val_samples = (data.pair_files(args.val_images, args.val_maps, args.val_fixations)
                 if args.val_images else None)
  if args.backbone == "vgg16":
    from jaxcomp.nets import weights as weights_lib  # pylint: disable=g-import-not-at-top
    weights_lib.load("vgg16")  # fail before reading the data if the weights are missing
  dataset = data.load_resized(samples, args.size, log=print)
  print(f"training on {len(dataset)} images at {args.size}x{args.size}"
        f"{' with fixations' if dataset.fixations is not None else ''}; loss "
        + " ".join(f"{k}={v:g}" for k, v in weights.items()))
  params, record = train.train(
      dataset, config, steps=args.steps, batch=args.batch, lr=args.lr, seed=args.seed,
      weights=weights, train_backbone=args.train_backbone,
      feature_cache_mb=args.feature_cache_mb, log=print, log_every=args.log_every,
      logdir=args.logdir)
  if args.train_backbone:
    config = dict(config, backbone="included")
  meta = {"images": args.images, "maps": args.maps, "fixations": args.fixations,
          "n_train": len(dataset), "steps": args.steps, "batch": args.batch, "lr": args.lr,
          "seed": args.seed, "loss_weights": weights, **record}
  if val_samples is not None:
    from jaxcomp import saliency  # pylint: disable=g-import-not-at-top
    model = saliency.SaliencyModel("trained", params, learned.make_apply(config))
    results = evaluation.evaluate_models([model], val_samples)
    for line in evaluation.format_table(results, len(val_samples), bool(args.val_fixations)):
      print("held-out " + line if line.startswith("model") else "         " + line)
    meta.update(val_images=args.val_images, val_maps=args.val_maps, n_val=len(val_samples),
                val_metrics=results["trained"])
  learned.save(args.out, params, config, meta)
  print(f"saliency weights saved to {args.out} (use as the saliency model learned:{args.out})")
  return 0
