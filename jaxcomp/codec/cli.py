"""`jaxcomp convert compressai`: a CompressAI checkpoint -> an exported jaxcomp model."""

import os


def register(subparsers):
  parser = subparsers.add_parser("convert", help="import a model from another library")
  sub = parser.add_subparsers(dest="source", metavar="<source>", parser_class=type(parser))
  sub.required = True
  p = sub.add_parser("compressai", help="CompressAI state_dict -> exported model directory")
  p.add_argument("--arch", required=True, choices=["bmshj2018-hyperprior", "mbt2018-mean"],
                 help="CompressAI model class the state_dict belongs to")
  p.add_argument("--checkpoint", required=True,
                 help="state_dict file (.pth/.pth.tar with torch installed, or .npz/.safetensors)")
  p.add_argument("--out", required=True, help="output model directory")
  p.set_defaults(func=run_convert_compressai)


def run_convert_compressai(args):
  from jaxcomp.codec import compressai_import, export  # pylint: disable=g-import-not-at-top

  if not os.path.isfile(args.checkpoint):
    raise FileNotFoundError(2, "No such file", args.checkpoint)
  state_dict = compressai_import.read_checkpoint(args.checkpoint)
  variables, N, M = compressai_import.convert(args.arch, state_dict)
  export.save(args.out, args.arch, N, M, variables,
              source=f"compressai:{os.path.basename(args.checkpoint)}")
  print(f"wrote {args.out} ({args.arch}, N={N}, M={M})")
  return 0
