"""`jaxcomp calibrate`: per metric and rate point, the fine-tuning lambda that keeps the rate.

    jaxcomp calibrate --parent low=zoo:hyperprior-small-q1 --parent medium=zoo:hyperprior-small-q2 \
        --parent high=zoo:hyperprior-small-q3 --metrics mse,ssim,ms_ssim,gmsd,lpips,dists,fsim,vsi,nlpd \
        --data /work/shared/data/train --steps 100 --out runs/calibration --keep-models

Writes OUT/calibration.json (per metric and rate: target, lambda, achieved bpp, every probe, the
model) and OUT/lambdas.json (`{metric: {quality: lambda}}`, read by
`--config=finetune.py:METRIC,qQ,calibration=OUT/lambdas.json`). See jaxcomp/train/calibrate.py.
"""

import argparse
import sys

from jaxcomp.errors import UserError


def register(subparsers):
  p = subparsers.add_parser(
      "calibrate", help="find, per metric and rate point, the fine-tuning lambda at which the "
      "fine-tuned model keeps a target bpp (default: its MSE parent's)",
      description="Bisection in log lambda on short fine-tunes from each parent, bpp measured "
      "with real bitstreams on held-out photos; cached per probe. Extra --config.<field>=value "
      "options override every probe's fine-tune config (configs/finetune.py).")
  p.add_argument("--parent", action="append", default=[], metavar="LABEL=MODEL", required=True,
                 help="a rate point: label and its MSE model (exported folder or zoo:NAME); "
                 "repeat for each rate, e.g. --parent low=zoo:hyperprior-small-q1")
  p.add_argument("--metrics", required=True,
                 help="comma-separated distortions: mse,ssim,ms_ssim,gmsd,lpips,dists,fsim,vsi,nlpd")
  p.add_argument("--data", required=True, help="training photos (the last --holdout of them, "
                 "sorted by name, validate unless --val-data is given)")
  p.add_argument("--out", required=True, help="output folder (calibration.json, lambdas.json, "
                 "probes/, data/train: the fine-tuning split)")
  p.add_argument("--steps", type=int, default=100, help="fine-tuning steps per probe (default 100)")
  p.add_argument("--batch-size", type=int, default=4,
                 help="crops per step at --patch-size (default 4); metrics needing larger crops "
                 "(ms_ssim: 192) get a smaller batch of the same pixel count (at least 1)")
  p.add_argument("--patch-size", type=int, default=64, help="crop side (default 64)")
  p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (default 1e-4)")
  p.add_argument("--seed", type=int, default=0, help="data order and noise seed (default 0)")
  p.add_argument("--tolerance", type=float, default=0.03,
                 help="accepted relative bpp error (default 0.03)")
  p.add_argument("--max-probes", type=int, default=4,
                 help="fine-tunes per metric and rate at most (default 4)")
  p.add_argument("--target", action="append", default=[], metavar="LABEL=BPP",
                 help="explicit target bpp of a rate (default: the parent's validation bpp)")
  p.add_argument("--holdout", type=int, default=4,
                 help="photos of --data held out for validation (default 4)")
  p.add_argument("--val-data", help="validation photos instead of a held-out part of --data")
  p.add_argument("--val-size", type=int, default=512,
                 help="centre-crop side of each validation photo (multiple of 64, default 512)")
  p.add_argument("--keep-models", action="store_true",
                 help="keep every probe's exported model (the final probe is then the "
                 "fine-tuned model of its metric and rate)")
  p.set_defaults(func=run, accepts_config_overrides=True)


def _pairs(values, flag, convert=str):
  out = []
  for value in values:
    label, sep, rest = value.partition("=")
    if not sep or not label or not rest:
      raise UserError(f"{flag} {value!r}: expected LABEL=VALUE, e.g. {flag} low=...")
    try:
      out.append((label, convert(rest)))
    except ValueError:
      raise UserError(f"{flag} {value!r}: {rest!r} is not a number") from None
  labels = [label for label, _ in out]
  dupes = sorted({l for l in labels if labels.count(l) > 1})
  if dupes:
    raise UserError(f"{flag}: label {dupes[0]!r} given twice")
  return out


def parse_overrides(extra):
  """['--config.a.b=v', ...] -> [('a.b', 'v')]; UserError for anything else."""
  out = []
  for arg in extra:
    field, sep, value = arg[len("--config."):].partition("=")
    if not arg.startswith("--config.") or not sep or not field:
      raise UserError(f"unrecognized argument {arg!r} (see 'jaxcomp calibrate --help')")
    out.append((field, value))
  return out


def run(args):
  from jaxcomp.train import calibrate  # pylint: disable=g-import-not-at-top

  overrides = parse_overrides(getattr(args, "extra", []))
  parents = _pairs(args.parent, "--parent")
  targets = dict(_pairs(args.target, "--target", float))
  metrics = [m for m in args.metrics.split(",") if m]
  if not metrics:
    raise UserError("--metrics: give at least one metric")
  for name, value, low in (("--steps", args.steps, 1), ("--batch-size", args.batch_size, 1),
                           ("--patch-size", args.patch_size, 1),
                           ("--max-probes", args.max_probes, 1), ("--holdout", args.holdout, 1)):
    if value < low:
      raise UserError(f"{name} must be at least {low}, got {value}")
  if not 0 < args.tolerance < 1:
    raise UserError(f"--tolerance must be in (0, 1), got {args.tolerance}")
  if not args.lr > 0:
    raise UserError(f"--lr must be positive, got {args.lr}")
  if any(not b > 0 for b in targets.values()):
    raise UserError("--target: bpp must be positive")
  scale = calibrate.Scale(steps=args.steps, batch_size=args.batch_size,
                          patch_size=args.patch_size, learning_rate=args.lr, seed=args.seed)

  def log(line):
    print(line, flush=True)

  document = calibrate.run(parents, metrics, args.data, args.out, scale, targets, args.tolerance,
                           args.max_probes, args.holdout, args.val_data, args.val_size,
                           overrides, args.keep_models, log)
  bad = [f"{m} {label}" for m, per in document["results"].items()
         for label, r in per.items() if not r["converged"]]
  print(f"wrote {args.out}/calibration.json and {args.out}/lambdas.json "
        f"({document['seconds']:.0f} s)" + (f"; not within the tolerance: {', '.join(bad)}"
                                            if bad else ""))
  return 0


if __name__ == "__main__":
  sys.exit(run(argparse.Namespace()))
