"""`jaxcomp train ...` (the absl main, same flags), `jaxcomp export --workdir DIR --out MODEL_DIR`
and `jaxcomp quickstart`."""

import argparse


def register(subparsers):
  train = subparsers.add_parser(
      "train", help="train a codec: --config=configs/<file>.py:<arg> --workdir=DIR [--config.x=v] "
      "(configs/saliency_net.py, configs/dpl_heads.py: the saliency net, DPL heads)",
      description="Same flags as `python -m jaxcomp.train` (absl): --config, --workdir, "
      "--config.<field>=value; --help lists them. The config's `trainer` field picks the trainer "
      "(codec, saliency_net, dpl_heads).", add_help=False, prefix_chars="+")
  train.add_argument("flags", nargs=argparse.REMAINDER, help="absl flags")
  train.set_defaults(func=run_train)

  export = subparsers.add_parser(
      "export", help="training checkpoint -> exported model directory (z quantiles refit)")
  export.add_argument("--workdir", required=True, help="training workdir (python -m jaxcomp.train)")
  export.add_argument("--out", required=True, help="exported model directory to write")
  export.add_argument("--step", type=int, help="checkpoint step (default: the newest)")
  export.set_defaults(func=run_export)

  quickstart = subparsers.add_parser(
      "quickstart", help="the bundled zoo against JPEG and WebP on a held-out photo, then train "
      "a small codec for a few minutes and compare (CPU)")
  from jaxcomp.train import quickstart as quickstart_lib  # pylint: disable=g-import-not-at-top

  quickstart_lib.add_arguments(quickstart)
  quickstart.set_defaults(func=quickstart_lib.run)


def run_train(args):
  from jaxcomp.train import main  # pylint: disable=g-import-not-at-top

  main.run(["jaxcomp train"] + args.flags)
  return 0


def run_export(args):
  from jaxcomp.train import checkpoint  # pylint: disable=g-import-not-at-top

  step = checkpoint.export_model(args.workdir, args.out, args.step)
  print(f"exported step {step} of {args.workdir} to {args.out}")
  return 0
