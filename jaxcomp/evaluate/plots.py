"""Rate-distortion plots (matplotlib, Agg): one panel per metric, one line per curve.

Curves from `jaxcomp eval` are solid lines with markers; published curves (any CompressAI-layout
results file, e.g. CompressAI's Kodak results) are dashed. The format follows the file extension
(.png, .svg, .pdf). The file is written atomically.

`rate_map_overlay` draws one image with its rate map (bits per pixel, `jaxcomp.codec.ratemap`)
over it and the salient region's outline.
"""

import math

from jaxcomp.evaluate import results
from jaxcomp.fileio import atomic_path

PANEL_INCHES = (5.0, 3.8)
DPI = 120


def plot_keys(documents):
  """Quality keys present in any document, PSNR and MS-SSIM first, derived keys left out."""
  keys = []
  for document in documents:
    for key in document["results"]:
      if key not in results.NON_QUALITY_KEYS and key not in keys:
        keys.append(key)
  first = [k for k in ("psnr-rgb", "ms-ssim-rgb") if k in keys]
  return first + [k for k in keys if k not in first]


def rd_plot(path, documents, published=(), keys=None, title=None):
  """Writes an RD figure.

  Args:
    path: output file (.png, .svg, .pdf ...).
    documents: curve documents drawn solid.
    published: curve documents drawn dashed (reference results).
    keys: quality keys to plot (default `plot_keys` of all documents); a curve without a key
      is absent from that panel.
    title: optional figure title.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  everything = [*documents, *published]
  keys = list(keys) if keys else plot_keys(everything)
  columns = min(len(keys), 3) or 1
  rows = max(math.ceil(len(keys) / columns), 1)
  fig, axes = plt.subplots(rows, columns, squeeze=False,
                           figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows))
  for ax, key in zip(axes.flat, keys):
    for style, group in (("-o", documents), ("--^", published)):
      for document in group:
        if key not in results.quality_keys(document):
          continue
        rates, values = results.curve(document["results"], key)
        order = rates.argsort()
        ax.plot(rates[order], values[order], style, markersize=3.5, linewidth=1.3,
                label=document["name"])
    direction = "higher is better" if results.higher_is_better(key) else "lower is better"
    ax.set(xlabel="bits per pixel", ylabel=key, title=f"{key} ({direction})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  with atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=DPI)
  plt.close(fig)


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
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import numpy as np  # pylint: disable=g-import-not-at-top
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
