"""`jaxcomp zoo list [--json]`: the models shipped with the package (`--model zoo:NAME`)."""

import json


def register(subparsers):
  p = subparsers.add_parser("zoo", help="models trained with jaxcomp, shipped with the package")
  sub = p.add_subparsers(dest="zoo_command", metavar="<zoo command>")
  sub.required = True
  lst = sub.add_parser("list", help="list the bundled models and their measured rate/PSNR")
  lst.add_argument("--json", action="store_true",
                   help="also print the list as JSON on the last stdout line")
  lst.add_argument("--verify", action="store_true",
                   help="check every model file's sha256 against the manifest")
  lst.set_defaults(func=run_list)


def run_list(args):
  from jaxcomp import zoo  # pylint: disable=g-import-not-at-top

  rows = []
  for e in zoo.entries():
    if args.verify:
      zoo.resolve(zoo.PREFIX + e["name"])
    rd = e.get("rd", {})
    rows.append({"name": e["name"], "spec": zoo.PREFIX + e["name"], "arch": e["arch"],
                 "N": e["N"], "M": e["M"], "lmbda": e["lmbda"],
                 "bpp": rd.get("bpp"), "psnr_rgb": rd.get("psnr-rgb"),
                 "description": e.get("description", "")})
  print(f"{'model':<22} {'arch':<22} {'N/M':>7} {'lambda':>8} {'bpp':>6} {'PSNR dB':>8}")
  for r in rows:
    bpp = f"{r['bpp']:.3f}" if r["bpp"] is not None else "-"
    psnr = f"{r['psnr_rgb']:.2f}" if r["psnr_rgb"] is not None else "-"
    print(f"{r['spec']:<22} {r['arch']:<22} {r['N']:>3}/{r['M']:<3} {r['lmbda']:>8.4g} "
          f"{bpp:>6} {psnr:>8}")
  if not rows:
    print("(no bundled models)")
  if args.verify:
    print(f"{len(rows)} models verified against the manifest")
  if args.json:
    print(json.dumps(rows))
  return 0
