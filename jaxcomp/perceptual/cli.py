"""`jaxcomp perceptual`: 2AFC data, scoring and training of deep perceptual metrics.

    jaxcomp perceptual score --data DIR --metrics lpips,psnr,ssim [--json]
    jaxcomp perceptual build --photos DIR --out DIR [--triplets N] [--synthetic-judges]
    jaxcomp perceptual train --data DIR --out HEADS_DIR [--init lpips|uniform] [--steps N]
                             [--val DIR] [--decay-steps N] [--train-backbone]
                             [--workdir DIR [--checkpoint-every N]] [--eval-every N]

`score` prints a table of 2AFC scores (ties count one half; similarities are negated) with the
human ceiling mean(p^2 + (1 - p)^2) beside; with --json the last stdout line is
{"n": N, "human_ceiling": c, "scores": {name: score}}. `build` writes a compression 2AFC split
(see perceptual/build.py; judges only with --synthetic-judges, a hidden stand-in rule). `train`
fits LPIPS-style heads (perceptual/train.py), optionally fine-tuning the VGG16 backbone too, with
LPIPS's schedule (constant, then linear decay over --decay-steps), on all local devices; with
--workdir it checkpoints (resuming when rerun) and writes TensorBoard scalars. It saves the heads
(and a fine-tuned backbone) for the metric `dpl:HEADS_DIR`. It builds configs/dpl_heads.py's
config from its flags and runs `jaxcomp.perceptual.train.train_and_evaluate` (also
`python -m jaxcomp.train --config=dpl_heads.py --workdir=DIR --config.data.dir=SPLIT`).
"""

import json
import os

from jaxcomp.errors import UserError


def register(subparsers):
  p = subparsers.add_parser(
      "perceptual", help="2AFC data, scores and learned (LPIPS-style) perceptual metrics",
      description="Two-alternative forced-choice (BAPPS layout) data, 2AFC scores of metrics, "
                  "and LPIPS-style metrics trained on judgments.")
  sub = p.add_subparsers(dest="perceptual_command", metavar="<action>", parser_class=type(p))
  sub.required = True
  s = sub.add_parser("score", help="2AFC score of registered metrics on a BAPPS-layout split")
  s.add_argument("--data", required=True, metavar="DIR",
                 help="split folder with ref/, p0/, p1/ and judge/")
  s.add_argument("--metrics", required=True,
                 help="comma-separated metric names, e.g. lpips,psnr,ssim,dpl:HEADS_DIR")
  s.add_argument("--json", action="store_true", help="print a JSON object as the last line")
  s.set_defaults(func=run)
  b = sub.add_parser("build", help="make a compression 2AFC split from a folder of photos")
  b.add_argument("--photos", required=True, metavar="DIR", help="folder of PNG/JPEG photos")
  b.add_argument("--out", required=True, metavar="DIR", help="split folder to write")
  b.add_argument("--triplets", type=int, default=100, help="number of triplets (default 100)")
  b.add_argument("--size", type=int, default=64, help="patch side in pixels (default 64)")
  b.add_argument("--anchors", default="jpeg,webp", help="codecs (default jpeg,webp)")
  b.add_argument("--seed", type=int, default=0,
                 help="seed of the patch, codec and quality draws (default 0)")
  b.add_argument("--synthetic-judges", action="store_true",
                 help="write judges from a hidden chroma-error rule (tests, demonstrations)")
  b.set_defaults(func=run)
  t = sub.add_parser("train", help="train LPIPS-style heads on a 2AFC split")
  t.add_argument("--data", required=True, metavar="DIR", help="training split folder")
  t.add_argument("--out", required=True, metavar="HEADS_DIR", help="folder for the heads")
  t.add_argument("--init", choices=("lpips", "uniform"), default="lpips",
                 help="start from LPIPS v0.1 heads or uniform 1/C heads (default lpips)")
  t.add_argument("--steps", type=int, default=1000, help="optimisation steps (default 1000)")
  t.add_argument("--batch", type=int, default=50, help="triplets per step (default 50)")
  t.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
  t.add_argument("--seed", type=int, default=0,
                 help="seed of the initialisation and the batch order (default 0)")
  t.add_argument("--val", metavar="DIR",
                 help="held-out split: print its 2AFC score before and after training")
  t.add_argument("--decay-steps", type=int, metavar="N",
                 help="decay the learning rate linearly towards 0 over the last N steps "
                      "(default: half of --steps, LPIPS's nepoch_decay = nepoch; 0: constant)")
  t.add_argument("--train-backbone", action="store_true",
                 help="fine-tune the VGG16 backbone with the heads (LPIPS's --train_trunk); "
                      "slower: features are computed per batch; the backbone is saved too")
  t.add_argument("--workdir", metavar="DIR",
                 help="checkpoints, TensorBoard scalars and run settings; rerunning with the "
                      "same workdir resumes from its newest checkpoint")
  t.add_argument("--checkpoint-every", type=int, metavar="N",
                 help="steps between checkpoints (needs --workdir; default 1000; one is also "
                      "saved at the end)")
  t.add_argument("--eval-every", type=int, metavar="N",
                 help="steps between held-out 2AFC scores (needs --val; default: at the end only)")
  t.add_argument("--log-every", type=int, default=50, metavar="N",
                 help="steps between progress lines (default 50)")
  t.set_defaults(func=run)


def run(args):
  return {"score": _run_score, "build": _run_build, "train": _run_train}[
      args.perceptual_command](args)


def _run_score(args):
  from jaxcomp.perceptual import score  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import twoafc  # pylint: disable=g-import-not-at-top

  names = list(dict.fromkeys(n.strip() for n in args.metrics.split(",") if n.strip()))
  if not names:
    raise UserError("--metrics: give at least one metric name")
  split = twoafc.load_split(args.data)
  scores = score.score_metrics(names, split)
  ceiling = twoafc.human_ceiling(split.judge)
  width = max(len(n) for n in names + ["metric"])
  print(f"{'metric':{width}s}  2AFC    human ceiling  ({len(split)} triplets)")
  for name, value in scores.items():
    print(f"{name:{width}s}  {value:.4f}  {ceiling:.4f}")
  if args.json:
    print(json.dumps({"n": len(split), "human_ceiling": ceiling, "scores": scores}))
  return 0


def _positive(name, value):
  if value < 1:
    raise UserError(f"--{name} must be at least 1, got {value}")


def _run_build(args):
  import dataclasses  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import build  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import twoafc  # pylint: disable=g-import-not-at-top

  _positive("triplets", args.triplets)
  if args.size < 16:
    raise UserError(f"--size must be at least 16 (VGG16 taps), got {args.size}")
  split, info = build.build_split(args.photos, args.triplets, size=args.size,
                                  anchor_spec=args.anchors, seed=args.seed)
  if args.synthetic_judges:
    split = dataclasses.replace(split, judge=build.synthetic_judges(split, seed=args.seed))
    info["judges"] = ("synthetic (jaxcomp.perceptual.build.synthetic_judges: chroma MSE, "
                      f"{build.OBSERVERS} simulated observers)")
  twoafc.write_split(args.out, split, info)
  print(f"wrote {len(split)} triplets to {args.out}"
        + ("" if args.synthetic_judges else " (no judges yet)"))
  return 0


# config field -> the flag that sets it, so that errors name the flag (`train.check_config`)
TRAIN_FLAGS = {"num_train_steps": "--steps", "batch_size": "--batch",
               "log_every_steps": "--log-every", "learning_rate": "--lr",
               "decay_steps": "--decay-steps", "checkpoint_every_steps": "--checkpoint-every",
               "eval_every_steps": "--eval-every", "data.dir": "--data", "val.dir": "--val",
               "init": "--init", "out": "--out"}


def train_config(args):
  """configs/dpl_heads.py's config with the `perceptual train` flags applied."""
  from jaxcomp.train import config_files  # pylint: disable=g-import-not-at-top

  config = config_files.load("dpl_heads")
  config.data.dir, config.val.dir, config.out = args.data, args.val or "", args.out
  config.init, config.train_backbone = args.init, args.train_backbone
  config.num_train_steps, config.batch_size = args.steps, args.batch
  config.learning_rate, config.seed = args.lr, args.seed
  config.decay_steps = args.decay_steps
  config.log_every_steps = args.log_every
  if args.checkpoint_every is not None:
    config.checkpoint_every_steps = args.checkpoint_every
  if args.eval_every is not None:
    config.eval_every_steps = args.eval_every
  return config


def _run_train(args):
  from jaxcomp.perceptual import train  # pylint: disable=g-import-not-at-top

  config = train_config(args)
  train.check_config(config, TRAIN_FLAGS)
  if args.checkpoint_every is not None and not args.workdir:
    raise UserError("--checkpoint-every needs --workdir (where checkpoints go)")
  if args.eval_every is not None:
    if not args.val:
      raise UserError("--eval-every needs --val (the held-out split to score)")
    _positive("eval-every", args.eval_every)
  train.train_and_evaluate(config, args.workdir, names=TRAIN_FLAGS, log=print)
  return 0
