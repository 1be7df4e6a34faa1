"""`jaxcomp perceptual`: 2AFC data, scoring and training of deep perceptual metrics.

    jaxcomp perceptual score --data DIR --metrics lpips,psnr,ssim [--json]
    jaxcomp perceptual build --photos DIR --out DIR [--triplets N] [--synthetic-judges]
    jaxcomp perceptual train --data DIR --out HEADS_DIR [--init lpips|uniform] [--steps N]
                             [--val DIR]

`score` prints a table of 2AFC scores (ties count one half; similarities are negated) with the
human ceiling mean(p^2 + (1 - p)^2) beside; with --json the last stdout line is
{"n": N, "human_ceiling": c, "scores": {name: score}}. `build` writes a compression 2AFC split
(see perceptual/build.py; judges only with --synthetic-judges, a hidden stand-in rule). `train`
fits LPIPS-style heads (perceptual/train.py) and saves them for the metric `dpl:HEADS_DIR`.
"""

import json

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
  b.add_argument("--seed", type=int, default=0)
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
  t.add_argument("--seed", type=int, default=0)
  t.add_argument("--val", metavar="DIR",
                 help="held-out split: print its 2AFC score before and after training")
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


def _run_train(args):
  from jaxcomp.metrics import vgg16  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import heads  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import train  # pylint: disable=g-import-not-at-top
  from jaxcomp.perceptual import twoafc  # pylint: disable=g-import-not-at-top

  _positive("steps", args.steps)
  _positive("batch", args.batch)
  init = heads.lpips_heads() if args.init == "lpips" else heads.uniform_heads()
  vgg = vgg16.load_params()
  split = twoafc.load_split(args.data)
  val = twoafc.load_split(args.val) if args.val else None
  trained, loss = train.train(vgg, split, init, steps=args.steps, batch=args.batch, lr=args.lr,
                              seed=args.seed)
  meta = {"init": args.init, "steps": args.steps, "batch": args.batch, "lr": args.lr,
          "seed": args.seed, "data": args.data, "triplets": len(split), "final_loss": loss}
  if val is not None:
    stats0, stats1 = train.split_stats(vgg, val)
    before, after = (train.score_heads(h, stats0, stats1, val.judge) for h in (init, trained))
    ceiling = twoafc.human_ceiling(val.judge)
    print(f"held-out 2AFC ({len(val)} triplets): {args.init} heads {before:.4f} -> trained "
          f"{after:.4f} (human ceiling {ceiling:.4f})")
    meta.update(val=args.val, val_2afc_init=before, val_2afc_trained=after)
  heads.save(args.out, trained, meta)
  print(f"heads saved to {args.out} (use as the metric dpl:{args.out})")
  return 0
