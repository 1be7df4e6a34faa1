"""`jaxcomp eval` (rate-distortion evaluation with real files) and `jaxcomp bdrate`.

    jaxcomp eval --model DIR [--model DIR ...] --images DIR --out results.json
                 [--plot rd.png] [--anchors jpeg,webp] [--metrics a,b]
                 [--saliency sdsp|MODEL_DIR|MAPS_DIR] [--salient-fraction 0.25] [--rate-maps DIR]
    jaxcomp bdrate --anchor A.json --test B.json --metric KEY --method {cubic,pchip,akima} --json
    jaxcomp bdrate-matrix --anchor A.json --test B.json C.json ... [--metrics a,b] --out M.md
                          [--plot M.png] [--out-json M.json]

`eval` writes one CompressAI-layout results file per curve. The models given by --model DIR form
one curve named --name (one point per model); --model NAME=DIR puts a model on the curve NAME
instead, so one run can compare model families. The first curve (models first, in the order given,
then anchors) goes to --out, every other one beside it as <out stem>.<curve name>.json (e.g.
results.jpeg-420.json). Exit status 0 when everything succeeded; 1 when the files were written but
some images or points failed (each failure is reported on stderr and listed in the files'
"errors"); 2 for user errors (nothing written).

With --saliency every image's salient region (the --salient-fraction of its pixels with the highest
saliency in the original) gets PSNR inside and outside for every curve, and for model curves the
share of the bits and the bpp inside and outside, from the model's rate map
(`jaxcomp.evaluate.saliency_stats`); the keys join each image's table and the curve means, and one
summary line per curve is printed. --rate-maps DIR draws every model point's rate map over each
image, the salient region outlined (DIR/<curve>/<image stem>.p<point index>.png).

`bdrate`: with --json the last stdout line is {"bd_rate": percent, "bd_quality": x}. For metrics
where lower is better (mse, lpips, dists, gmsd, nlpd, dpl) the metric is negated before fitting:
bd_rate < 0 still means the test saves bits, and bd_quality > 0 means the test's distance is lower
by that much on average.

`bdrate-matrix`: the BD-rate of each test file against the anchor on each metric, every cell as
`bdrate` computes it (`jaxcomp.evaluate.bdrate_matrix`); cells whose curves cannot be compared
are '—' with the reason listed under the table.
"""

import json
import os
import sys
import warnings

from jaxcomp import pixels
from jaxcomp.errors import UserError

DEFAULT_METHOD = "pchip"
DEFAULT_SALIENT_FRACTION = 0.25  # saliency_stats.DEFAULT_FRACTION, without importing numpy here


def _add_bd_flags(parser, overlap):
  """--method, --mode, --min-overlap: how `bdrate` and `bdrate-matrix` compute a BD value."""
  parser.add_argument("--method", default=DEFAULT_METHOD, choices=["cubic", "pchip", "akima"],
                      help=f"interpolation (default {DEFAULT_METHOD})")
  parser.add_argument("--mode", default="curve", choices=["curve", "per-image"],
                      help="BD of the averaged curves (default), or per image then averaged")
  parser.add_argument("--min-overlap", type=float, default=0.75,
                      help=f"{overlap} less than this fraction (default 0.75)")


def register(subparsers):
  p = subparsers.add_parser(
      "eval", help="rate-distortion evaluation with real bitstreams, anchors and plots",
      description="Compresses and decompresses every image with every model (and anchor), "
                  "measures bpp from the files and every metric, writes CompressAI-layout "
                  "results files.")
  p.add_argument("--model", action="append", default=[], metavar="[NAME=]DIR",
                 help="exported model directory, one RD point; repeat for the points of a curve; "
                      "NAME= puts it on the curve NAME")
  p.add_argument("--name", default="jaxcomp",
                 help="curve of the models given without NAME= (default jaxcomp)")
  p.add_argument("--images", required=True, metavar="DIR", help="folder of test images")
  p.add_argument("--out", required=True, metavar="RESULTS.json",
                 help="results file of the first curve; the others go to <stem>.<name>.json")
  p.add_argument("--plot", metavar="FILE", help="RD plot (.png, .svg or .pdf)")
  p.add_argument("--anchors", metavar="A,B", help="classical anchors, e.g. jpeg,webp "
                 "(jpeg = jpeg-420 and jpeg-444)")
  p.add_argument("--anchor-qualities", metavar="Q,Q,...",
                 help="quality sweep for every anchor (default: each anchor's own)")
  p.add_argument("--metrics", metavar="A,B",
                 help="metric names (default: every registered metric whose weights are present)")
  p.add_argument("--published", action="append", default=[], metavar="FILE.json",
                 help="results file drawn dashed in the plot and included in the table")
  p.add_argument("--bpp-targets", default="0.23,0.37,0.67,1.0", metavar="B,B,...",
                 help="bpp of the rate-matched table (default 0.23,0.37,0.67,1.0)")
  p.add_argument("--table", metavar="FILE.md", help="also write the rate-matched table here")
  p.add_argument("--saliency", metavar="SPEC",
                 help="salient-region statistics from a saliency model ('sdsp', 'centre', a "
                      "learned weights folder DIR or learned:DIR) or a folder of saliency maps "
                      "named after the images' stems")
  p.add_argument("--salient-fraction", type=float, metavar="F",
                 help="share of each image's pixels in its salient region, 0 < F < 1 "
                      f"(default {DEFAULT_SALIENT_FRACTION})")
  p.add_argument("--rate-maps", metavar="DIR",
                 help="write each model point's rate map over each image (PNG) here")
  pixels.add_argument(p)
  p.set_defaults(func=run_eval)

  b = subparsers.add_parser(
      "bdrate", help="Bjøntegaard-delta rate and quality between two results files",
      description="BD-rate (percent, negative = test saves bits) and BD-quality of TEST against "
                  "ANCHOR; same numbers as the bjontegaard package 1.3.0.")
  b.add_argument("--anchor", required=True, metavar="A.json", help="anchor results file")
  b.add_argument("--test", required=True, metavar="B.json", help="test results file")
  b.add_argument("--metric", default="psnr-rgb",
                 help="results key (psnr-rgb, ms-ssim-rgb, ms-ssim-db-rgb, lpips-rgb ...) or "
                      "metric name (psnr, ms_ssim, lpips ...); default psnr-rgb")
  _add_bd_flags(b, overlap="warn when the curves overlap")
  direction = b.add_mutually_exclusive_group()
  direction.add_argument("--lower-is-better", dest="higher_is_better", action="store_false",
                         default=None, help="treat the metric as a distance")
  direction.add_argument("--higher-is-better", dest="higher_is_better", action="store_true",
                         help="treat the metric as a similarity")
  b.add_argument("--json", action="store_true", help="print a JSON object as the last line")
  b.set_defaults(func=run_bdrate)

  m = subparsers.add_parser(
      "bdrate-matrix", help="BD-rate of many models against one anchor on many metrics",
      description="Cross-metric BD-rate matrix: one row per TEST curve, one column per metric, "
                  "each cell the BD-rate against ANCHOR exactly as `jaxcomp bdrate` computes it; "
                  "markdown table, heat map and JSON.")
  m.add_argument("--anchor", required=True, metavar="A.json",
                 help="anchor results file (e.g. the MSE model's)")
  m.add_argument("--test", required=True, nargs="+", metavar="B.json",
                 help="test results files, one row each (the anchor's own file is skipped)")
  m.add_argument("--metrics", metavar="A,B",
                 help="columns: metric names or results keys (default every quality key of the "
                      "anchor)")
  _add_bd_flags(m, overlap="mark cells whose curves overlap")
  m.add_argument("--out", metavar="MATRIX.md", help="write the markdown table here")
  m.add_argument("--plot", metavar="MATRIX.png", help="write the heat map here (.png/.svg/.pdf)")
  m.add_argument("--out-json", metavar="MATRIX.json", help="write the matrix as JSON here")
  m.add_argument("--title", help="heat-map title (default names the anchor and the method)")
  m.add_argument("--json", action="store_true",
                 help="print the matrix as one JSON object on the last stdout line")
  m.set_defaults(func=run_bdrate_matrix)


def _warnings_to_stderr():
  warnings.showwarning = (
      lambda message, *args, **kwargs: sys.stderr.write(f"warning: {message}\n"))


def _numbers(text, flag, cast=float):
  try:
    values = [cast(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise UserError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
  if not values:
    raise UserError(f"{flag}: give at least one number")
  return values


def run_bdrate(args):
  from jaxcomp.evaluate import compare, results  # pylint: disable=g-import-not-at-top

  _warnings_to_stderr()
  if not 0.0 <= args.min_overlap <= 1.0:
    raise UserError(f"--min-overlap must be within 0 ... 1, got {args.min_overlap}")
  anchor, test = results.load(args.anchor), results.load(args.test)
  result = compare.compare(anchor, test, args.metric, args.method, args.mode,
                           args.higher_is_better, args.min_overlap)
  direction = "higher is better" if result.higher_is_better else "lower is better, negated"
  scope = "averaged curves" if result.images is None else f"mean over {result.images} images"
  print(f"test '{test['name']}' vs anchor '{anchor['name']}' on {result.key} ({direction}), "
        f"{args.method}, {scope}")
  print(f"BD-rate     {result.bd_rate:+.4f} %")
  print(f"BD-quality  {result.bd_quality:+.6f}")
  if args.json:
    print(json.dumps({"bd_rate": result.bd_rate, "bd_quality": result.bd_quality}))
  return 0


def run_bdrate_matrix(args):
  # pylint: disable=g-import-not-at-top
  from jaxcomp.evaluate import bdrate_matrix, plot_cli, results

  if not 0.0 <= args.min_overlap <= 1.0:
    raise UserError(f"--min-overlap must be within 0 ... 1, got {args.min_overlap}")
  if args.plot:
    plot_cli.check_figure_path(args.plot, "--plot")
  anchor = results.load(args.anchor)
  paths = [p for p in dict.fromkeys(args.test)
           if os.path.abspath(p) != os.path.abspath(args.anchor)]
  tests = [results.load(path) for path in paths]
  keys = bdrate_matrix.metric_keys(anchor, args.metrics)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kept per cell, shown in the table
    matrix = bdrate_matrix.matrix(anchor, tests, keys, args.method, args.mode, args.min_overlap)
  bdrate_matrix.write(matrix, args.out, args.plot, args.out_json, args.title)
  print(bdrate_matrix.markdown(matrix), end="")
  for path, what in ((args.out, "table"), (args.plot, "heat map"), (args.out_json, "JSON")):
    if path:
      print(f"{what} -> {path}")
  if args.json:
    print(json.dumps(bdrate_matrix.to_json(matrix)))
  return 0


def _metrics(spec):
  """The metrics to compute: --metrics, or every registered one with its weights present."""
  from jaxcomp.evaluate import rd_eval  # pylint: disable=g-import-not-at-top

  names = None
  if spec:
    names = list(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    if not names:
      raise UserError("--metrics: give at least one metric name")
  metrics, skipped = rd_eval.load_metrics(names)
  for name, reason in skipped.items():
    sys.stderr.write(f"warning: metric {name} skipped: {reason}\n")
  return metrics


def _check_plot_path(path):
  from jaxcomp.evaluate import plot_cli  # pylint: disable=g-import-not-at-top

  plot_cli.check_figure_path(path, "--plot")


def _output_paths(out, names):
  """{curve name: results path}: the first curve at `out`, the others beside it."""
  stem, extension = os.path.splitext(out)
  return {name: out if i == 0 else f"{stem}.{name}{extension or '.json'}"
          for i, name in enumerate(names)}


def _model_curves(specs, default_name):
  """{curve name: [model dir]} from --model values 'DIR' or 'NAME=DIR', in the order given."""
  curves = {}
  for spec in specs:
    name, sep, path = spec.partition("=")
    if not sep or not name or os.path.exists(spec):
      name, path = default_name, spec
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
      raise UserError(f"--model {spec}: curve names may use letters, digits, '-', '_' and '.'")
    curves.setdefault(name, []).append(path)
  return curves


def run_eval(args):
  from jaxcomp import images  # pylint: disable=g-import-not-at-top
  from jaxcomp.evaluate import anchors, rd_eval  # pylint: disable=g-import-not-at-top

  images.show_warnings()
  pixels.set_from_args(args)
  if not args.model and not args.anchors:
    raise UserError("give at least one --model or --anchors")
  targets = _numbers(args.bpp_targets, "--bpp-targets")
  qualities = _numbers(args.anchor_qualities, "--anchor-qualities", int) if (
      args.anchor_qualities) else None
  if args.plot:
    _check_plot_path(args.plot)
  published = [_published(path) for path in args.published]
  anchor_list = anchors.resolve(args.anchors) if args.anchors else []
  image_paths = rd_eval.list_images(args.images)
  curves = _model_curves(args.model, args.name)
  for name in curves:
    if name in {a.name for a in anchor_list}:
      raise UserError(f"model curve '{name}' has an anchor's name; choose another")
  fraction = _salient_fraction(args)
  if args.rate_maps and os.path.exists(args.rate_maps) and not os.path.isdir(args.rate_maps):
    raise UserError(f"--rate-maps: not a folder: {args.rate_maps}")
  if args.rate_maps and not curves:
    sys.stderr.write("warning: --rate-maps: only models have rate maps; none given\n")
  saliency = None
  if args.saliency:
    from jaxcomp.evaluate import saliency_maps  # pylint: disable=g-import-not-at-top
    saliency = saliency_maps.resolve(args.saliency, image_paths)
  metrics = _metrics(args.metrics)
  methods = [rd_eval.model_method(dirs, name) for name, dirs in curves.items()]
  methods += [rd_eval.anchor_method(a, qualities) for a in anchor_list]
  sys.stderr.write(f"evaluating {len(image_paths)} images x {len(methods)} curves "
                   f"({sum(len(c.points) for c in methods)} points), metrics: "
                   f"{', '.join(m.key for m in metrics) or 'none'}"
                   f"{_region_text(saliency, fraction)}\n")
  documents = rd_eval.evaluate(image_paths, methods, metrics, saliency=saliency, fraction=fraction,
                               rate_map_dir=args.rate_maps)
  if saliency is not None:
    for document in documents:
      document["salient_region"] = {"saliency": saliency.description, "fraction": fraction}
  return _write_outputs(args, methods, documents, published, targets, len(image_paths))


def _salient_fraction(args):
  """--salient-fraction, checked (UserError outside (0, 1) or without --saliency)."""
  if args.salient_fraction is None:
    return DEFAULT_SALIENT_FRACTION
  if not args.saliency:
    raise UserError("--salient-fraction needs --saliency")
  if not 0.0 < args.salient_fraction < 1.0:
    raise UserError(f"--salient-fraction must be within (0, 1), got {args.salient_fraction}")
  return args.salient_fraction


def _region_text(saliency, fraction):
  if saliency is None:
    return ""
  return f"; salient region: top {100 * fraction:g}% of the pixels by {saliency.description}"


def _published(path):
  """A reference results file, its name marked '(published)' for the plot and the table."""
  from jaxcomp.evaluate import results  # pylint: disable=g-import-not-at-top

  document = results.load(path)
  return {**document, "name": f"{document['name']} (published)"}


def _write_outputs(args, methods, documents, published, targets, n_images):
  """Results files, table and plot; the exit status (1 if anything failed)."""
  # pylint: disable=g-import-not-at-top
  from jaxcomp.evaluate import plots, rate_matched, rd_eval, results

  counts = {d["name"]: rd_eval.complete_images(d) for d in documents}
  if not any(counts.values()):
    first = next((e for d in documents for e in d["errors"]), {"error": "unknown"})
    raise UserError(f"no image succeeded at every point of any curve (first failure: "
                    f"{first.get('image', '')}: {first['error']}); nothing written")
  paths = _output_paths(args.out, [c.name for c in methods])
  for document in documents:
    results.write(paths[document["name"]], document)
    print(f"{document['name']}: {counts[document['name']]} of {n_images} images -> "
          f"{paths[document['name']]}")
  for document in documents:
    if "salient_region" in document and counts[document["name"]]:
      print(_salient_summary(document))
  if args.rate_maps:
    print(f"rate maps -> {args.rate_maps}")
  usable = [d for d in documents if counts[d["name"]]]
  keys = plots.plot_keys(usable)
  rows = rate_matched.table([*usable, *published], keys, targets)
  text = rate_matched.markdown(rows, targets)
  print(text, end="")
  if args.table:
    from jaxcomp.fileio import atomic_path  # pylint: disable=g-import-not-at-top
    with atomic_path(args.table) as tmp:
      with open(tmp, "w") as f:
        f.write(text)
  if args.plot:
    plots.rd_plot(args.plot, usable, published, keys=keys,
                  title=f"{n_images} images from {os.path.basename(os.path.abspath(args.images))}")
    print(f"plot -> {args.plot}")
  failures = _report_errors(documents)
  for document in documents:
    if not counts[document["name"]]:
      sys.stderr.write(f"error: {document['name']}: no image succeeded at every point; its means "
                       "are empty\n")
  if failures:
    sys.stderr.write(f"error: {failures} failures (listed above and in the results files' "
                     "'errors'); the other results were written\n")
    return 1
  return 0


def _salient_summary(document):
  """One line: a curve's salient-region means, point by point."""
  table = document["results"]

  def values(key, fmt):
    return "/".join("—" if v is None else fmt.format(v) for v in table[key])

  region = document["salient_region"]
  parts = [f"{document['name']}: salient {100 * region['fraction']:g}% of the pixels "
           f"({region['saliency']}), per point:"]
  if "salient_bits_share" in table:
    shares = "/".join("—" if v is None else f"{100 * v:.1f}" for v in table["salient_bits_share"])
    parts.append(f"bits share {shares} %, bpp inside {values('bpp_salient', '{:.3f}')} vs "
                 f"outside {values('bpp_nonsalient', '{:.3f}')};")
  parts.append(f"PSNR inside {values('psnr_salient', '{:.2f}')} vs outside "
               f"{values('psnr_nonsalient', '{:.2f}')} dB")
  return " ".join(parts)


def _report_errors(documents):
  """One stderr line per unreadable image and per failed (curve, image, point); their number."""
  lines = []
  for document in documents:
    for error in document["errors"]:
      if "point" in error:
        lines.append(f"{document['name']}: {error['image']} at {error['point']}: {error['error']}")
      elif f"{error['image']}: {error['error']}" not in lines:
        lines.append(f"{error['image']}: {error['error']}")
  for line in lines:
    sys.stderr.write(f"error: {line}\n")
  return len(lines)
