"""`jaxcomp plot`: re-draws rate-distortion figures from results files, without re-evaluating.

    jaxcomp plot RESULTS.json [RESULTS.json ...] --out rd.png [--metrics psnr,ms_ssim,lpips]
                 [--title TEXT]

Any CompressAI-layout results file works: those `jaxcomp eval` writes (results.json and its
siblings results.<curve>.json, so `jaxcomp plot results*.json --out rd.png` re-draws an eval's
figure), CompressAI's own results/image/kodak/*.json, published curves. One panel per metric
(default: every quality key of any file, PSNR and MS-SSIM first); the figure's conventions
(colour x marker per curve, units, anchors dashed and clipped, one legend) are `plots.rd_figure`'s.
Curves whose names start with a classical codec's (JPEG, WebP, BPG, VTM, HM, AV1 ...) are drawn
as anchors. Two files with the same curve name are told apart by their file names.
"""

import os

from jaxcomp.errors import UserError


def register(subparsers):
  p = subparsers.add_parser(
      "plot", help="re-draw rate-distortion plots from results files (no re-evaluation)",
      description="Draws the RD figure of one or more results files (jaxcomp eval's or "
                  "CompressAI's layout): one panel per metric, learned codecs solid, classical "
                  "anchors dashed and clipped to the learned codecs' range, one legend.")
  p.add_argument("results", nargs="+", metavar="RESULTS.json",
                 help="results files, one curve each (e.g. results*.json from jaxcomp eval)")
  p.add_argument("--out", required=True, metavar="FILE",
                 help="figure to write (.png, .svg or .pdf), written whole or not at all")
  p.add_argument("--metrics", metavar="A,B",
                 help="panels: metric names or results keys (psnr, ms_ssim, ms_ssim_db, lpips, "
                      "psnr-rgb ...); default every quality key of any file")
  p.add_argument("--title", help="figure title (default none)")
  p.set_defaults(func=run_plot)


def check_figure_path(path, flag="--out"):
  """UserError unless matplotlib can write `path`'s extension."""
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top

  extension = os.path.splitext(path)[1].lower().lstrip(".")
  if extension not in backend_agg.FigureCanvasAgg.get_supported_filetypes():
    raise UserError(f"{flag}: unknown figure format '.{extension}' (use .png, .svg or .pdf)")


def _distinct_names(documents, paths):
  """Documents renamed '<name> (<file>)' where several share a name (copies, not in place)."""
  names = [d["name"] for d in documents]
  return [{**d, "name": f"{d['name']} ({os.path.basename(path)})"} if names.count(d["name"]) > 1
          else d for d, path in zip(documents, paths)]


def panel_keys(documents, spec):
  """The panels' results keys: `spec` ('a,b' names or keys) resolved, or every quality key.

  UserError for an empty spec or a metric no document has (listing the keys available).
  """
  from jaxcomp.evaluate import plots, results  # pylint: disable=g-import-not-at-top

  if spec is None:
    return plots.plot_keys(documents)
  names = [n.strip() for n in spec.split(",") if n.strip()]
  if not names:
    raise UserError("--metrics: give at least one metric name")
  available = list(dict.fromkeys(k for d in documents for k in results.quality_keys(d)))
  keys = []
  for name in names:
    key = next((c for c in (name, results.metric_key(name)) if c in available), None)
    if key is None:
      raise UserError(f"--metrics: no file has '{name}' values (available: "
                      f"{', '.join(available) or 'none'})")
    if key not in keys:
      keys.append(key)
  return keys


def run_plot(args):
  from jaxcomp.evaluate import plots, results  # pylint: disable=g-import-not-at-top

  check_figure_path(args.out)
  documents = _distinct_names([results.load(path) for path in args.results], args.results)
  keys = panel_keys(documents, args.metrics)
  if not keys:
    raise UserError("the results files have no quality values to plot (only 'bpp' and times)")
  fig_clipped = plots.rd_plot(args.out, documents, keys=keys, title=args.title)
  anchors = sum(plots.is_anchor(d) for d in documents)
  print(f"plot -> {args.out}: {len(documents)} curves ({len(documents) - anchors} learned, "
        f"{anchors} anchors), panels: {', '.join(keys)}"
        f"{'; anchor points outside the learned range clipped' if fig_clipped else ''}")
  return 0
