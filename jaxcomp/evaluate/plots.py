"""Rate-distortion plots (matplotlib, Agg): one panel per metric, one line per curve.

What a reviewer needs to read them:
  * every curve has its own colour *and* marker, for any number of curves (`curve_styles`);
  * learned codecs are solid lines with filled markers; classical anchors (JPEG, WebP, BPG, VTM
    ... `is_anchor`) dashed, lighter, in greys, with hollow markers, so they never share a
    colour with a learned codec; published learned curves (reference results files) dash-dotted;
  * axes say what and in which unit ('rate [bpp]', 'PSNR-RGB [dB]', `axis_label`) and whether
    higher or lower is better;
  * each panel's range is that of the learned curves (plus a margin): anchors, which often run to
    several bpp, are clipped instead of squashing the learned codecs into a corner (a note under
    the figure says so when it happens); learned curves at a single rate show everything;
  * one legend for the whole figure, beside the panels.

The format follows the file extension (.png, .svg, .pdf). The file is written atomically.

`rate_map_overlay` draws one image with its rate map (bits per pixel, `jaxcomp.codec.ratemap`)
over it and the salient region's outline.
"""

import colorsys
import math

import numpy as np

from jaxcomp.evaluate import results
from jaxcomp.fileio import atomic_path

PANEL_INCHES = (5.0, 3.8)
DPI = 120
RATE_LABEL = "rate [bpp]"
MARGIN = 0.05  # of the learned curves' span, on each side of a panel
# Names of classical codecs (a curve's name starting with one of them is an anchor), e.g. the
# anchors of `jaxcomp eval` and the files of CompressAI's results/image/kodak.
CLASSICAL_CODECS = ("jpeg", "webp", "bpg", "vtm", "hm", "av1", "avif", "jxl", "heic", "hevc",
                    "vvc", "x265", "x264", "openjpeg", "kakadu")
# Learned codecs: tab10 without its grey (greys belong to the anchors), then tab20's lighter
# shades of the same hues; beyond that, evenly spaced saturated hues.
LEARNED_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                   "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
                   "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*")
ANCHOR_ALPHA = 0.65
# Results keys -> (axis name, unit or ''); other keys are shown upper-case, without a unit.
AXIS_NAMES = {
    "psnr-rgb": ("PSNR-RGB", "dB"),
    "ms-ssim-rgb": ("MS-SSIM-RGB", ""),
    results.MS_SSIM_DB_KEY: ("MS-SSIM-RGB", "dB"),  # -10 log10(1 - MS-SSIM)
    "ssim-rgb": ("SSIM-RGB", ""),
    "mse-rgb": ("MSE-RGB, pixel values in [0, 1]", ""),
    "l1-rgb": ("L1-RGB, pixel values in [0, 1]", ""),
    "lpips-rgb": ("LPIPS (VGG)", ""),
    "dists-rgb": ("DISTS", ""),
    "gmsd-rgb": ("GMSD", ""),
    "fsim-rgb": ("FSIMc", ""),
    "fsim-gray-rgb": ("FSIM (luma)", ""),
    "vsi-rgb": ("VSI", ""),
    "nlpd-rgb": ("NLPD", ""),
    "dpl-rgb": ("deep perceptual loss", ""),
    "psnr_salient": ("PSNR in the salient region", "dB"),
    "psnr_nonsalient": ("PSNR outside the salient region", "dB"),
}


def plot_keys(documents):
  """Quality keys present in any document, PSNR and MS-SSIM first, derived keys left out."""
  keys = []
  for document in documents:
    for key in document["results"]:
      if key not in results.NON_QUALITY_KEYS and key not in keys:
        keys.append(key)
  first = [k for k in ("psnr-rgb", "ms-ssim-rgb") if k in keys]
  return first + [k for k in keys if k not in first]


def axis_label(key):
  """'psnr-rgb' -> 'PSNR-RGB [dB]'; an unknown key 'foo-rgb' -> 'FOO-RGB'."""
  name, unit = AXIS_NAMES.get(key, (key.upper(), ""))
  return f"{name} [{unit}]" if unit else name


def is_anchor(document):
  """Whether a curve is a classical codec, by its name ('jpeg-420', 'webp', 'VTM (published)')."""
  name = document.get("name", "").lower().lstrip()
  return any(name.startswith(codec) and not name[len(codec):len(codec) + 1].isalpha()
             for codec in CLASSICAL_CODECS)


def learned_colours(n):
  """[n] distinct colours ('#rrggbb') for learned codecs, none of them grey."""
  if n <= len(LEARNED_COLOURS):
    return list(LEARNED_COLOURS[:n])
  return ["#{:02x}{:02x}{:02x}".format(*(round(255 * c) for c in colorsys.hsv_to_rgb(
      k / n, 0.85 if k % 2 else 0.65, 0.85 if k % 2 else 0.6))) for k in range(n)]


def anchor_colours(n):
  """[n] distinct greys ('#rrggbb', dark to mid) for anchors."""
  levels = [0.1 + 0.45 * k / max(n - 1, 1) for k in range(n)]
  return ["#{0:02x}{0:02x}{0:02x}".format(round(255 * v)) for v in levels]


def curve_styles(documents):
  """One matplotlib style (dict of `Axes.plot` keywords) per document, in order.

  Learned codecs: solid ('-.' for published ones, named '... (published)'), filled markers,
  `learned_colours`. Anchors (`is_anchor`): dashed, `ANCHOR_ALPHA`, hollow markers,
  `anchor_colours`. Colours are distinct within each group and the groups share none; markers
  cycle through `MARKERS` in each group.
  """
  anchor_flags = [is_anchor(d) for d in documents]
  learned = iter(learned_colours(anchor_flags.count(False)))
  greys = iter(anchor_colours(anchor_flags.count(True)))
  styles, counts = [], [0, 0]
  for document, anchor in zip(documents, anchor_flags):
    k = counts[anchor]
    counts[anchor] += 1
    marker = MARKERS[k % len(MARKERS)]
    if anchor:
      colour = next(greys)
      styles.append(dict(color=colour, marker=marker, linestyle="--", alpha=ANCHOR_ALPHA,
                         markerfacecolor="none", markeredgecolor=colour, linewidth=1.2,
                         markersize=5, zorder=1))
    else:
      published = document.get("name", "").endswith("(published)")
      styles.append(dict(color=next(learned), marker=marker, linestyle="-." if published else "-",
                         linewidth=1.6, markersize=5, zorder=2))
  return styles


def _span(values):
  """(lo, hi) of values with `MARGIN` on each side (a single value gets +-5% of itself)."""
  lo, hi = min(values), max(values)
  pad = (hi - lo) * MARGIN if hi > lo else (abs(hi) * MARGIN or 0.5)
  return lo - pad, hi + pad


def rd_figure(documents, published=(), keys=None, title=None):
  """The RD figure (a matplotlib Figure; see the module docstring for its conventions).

  Args:
    documents: curve documents (results files' objects), in legend order.
    published: reference curve documents (their names end in '(published)' when they come from
      `jaxcomp eval --published`); drawn like the others by kind (learned or anchor).
    keys: quality keys to plot, one panel each (default `plot_keys` of all documents); a curve
      without a key is absent from that panel.
    title: optional figure title.

  Returns:
    (figure, clipped): clipped is True if some anchor point lies outside its panel.
  """
  # matplotlib (about half a second to import) only when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  everything = [*documents, *published]
  keys = list(keys) if keys else plot_keys(everything)
  styles = curve_styles(everything)
  columns = min(len(keys), 3) or 1
  rows = max(math.ceil(len(keys) / columns), 1)
  fig, axes = plt.subplots(rows, columns, squeeze=False,
                           figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows))
  anchor_flags = [is_anchor(d) for d in everything]
  handles, clipped = {}, False
  for ax, key in zip(axes.flat, keys):
    learned_x, learned_y, anchor_points = [], [], []
    for k, (document, style, anchor) in enumerate(zip(everything, styles, anchor_flags)):
      if key not in results.quality_keys(document):
        continue
      rates, values = results.curve(document["results"], key)
      if not len(rates):
        continue
      order = rates.argsort()
      (line,) = ax.plot(rates[order], values[order], label=document["name"], **style)
      handles.setdefault(k, line)
      if anchor:
        anchor_points.extend(zip(rates.tolist(), values.tolist()))
      else:
        learned_x.extend(rates.tolist())
        learned_y.extend(values.tolist())
    if len(set(learned_x)) > 1:  # a range to span (one learned rate: show everything instead)
      (x_lo, x_hi), (y_lo, y_hi) = _span(learned_x), _span(learned_y)
      x_lo = max(x_lo, 0.0)
      ax.set_xlim(x_lo, x_hi)
      ax.set_ylim(y_lo, y_hi)
      clipped |= any(not (x_lo <= x <= x_hi and y_lo <= y <= y_hi) for x, y in anchor_points)
    direction = "higher is better" if results.higher_is_better(key) else "lower is better"
    ax.set(xlabel=RATE_LABEL, ylabel=axis_label(key), title=f"{axis_label(key)} ({direction})")
    ax.title.set_fontsize(10)
    ax.ticklabel_format(useOffset=False)
    ax.grid(True, alpha=0.3)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  if handles:
    order = sorted(handles, key=lambda k: (anchor_flags[k], k))  # learned codecs first
    fig.legend([handles[k] for k in order], [everything[k]["name"] for k in order],
               loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
  if clipped:
    fig.text(0.5, -0.01, "axes span the learned codecs; anchor points outside are clipped",
             ha="center", va="top", fontsize=7, color="0.35")
  return fig, clipped


def rd_plot(path, documents, published=(), keys=None, title=None):
  """Writes `rd_figure(documents, published, keys, title)` to `path` (.png, .svg, .pdf ...).

  Returns:
    whether some anchor point was clipped.
  """
  # matplotlib only when a figure is drawn (rd_figure has selected the Agg backend).
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, clipped = rd_figure(documents, published, keys, title)
  try:
    with atomic_path(path) as tmp:
      fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
  finally:
    plt.close(fig)
  return clipped


RATE_CMAP = "inferno"
RATE_ALPHA = 0.6
REGION_COLOR = "cyan"


def rate_map_overlay(path, image, rate_map, region=None, title=None):
  """Writes the image with its rate map overlaid (colormap, alpha) and the region's contour.

  Args:
    path: output file (.png, .svg, .pdf ...), written atomically.
    image: [H, W, 3] uint8 original.
    rate_map: [H, W] bits per pixel (colour scale 0 ... max, with a colour bar).
    region: optional [H, W] bool salient region, outlined.
    title: optional title.
  """
  # matplotlib (about half a second to import) only when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  height, width = image.shape[:2]
  inches = 6.0 / max(height, width)
  fig, ax = plt.subplots(figsize=(width * inches + 1.4, height * inches + 0.7))
  ax.imshow(image, interpolation="nearest")
  rate_map = np.asarray(rate_map, np.float64)
  shown = ax.imshow(rate_map, cmap=RATE_CMAP, alpha=RATE_ALPHA, interpolation="nearest",
                    vmin=0.0, vmax=max(float(rate_map.max()), 1e-9))
  fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03, label="bits per pixel")
  if region is not None and region.any() and not region.all():
    ax.contour(np.asarray(region, np.float32), levels=[0.5], colors=REGION_COLOR, linewidths=1.2)
  ax.set_axis_off()
  if title:
    ax.set_title(title, fontsize=8)
  fig.tight_layout()
  with atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=DPI)
  plt.close(fig)
