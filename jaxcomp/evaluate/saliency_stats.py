"""Bits and quality inside and outside an image's salient region.

The salient region is a fixed share of the pixels: the `fraction` (default 0.25) with the highest
saliency, taken from the saliency map of the *original* image, so every codec and every point is
judged on the same pixels and the region has the same size in every image. The pixels are
ranked by saliency, ties (flat or binary maps) broken in favour of pixels nearer the image centre
(the centre bias of human fixations), then nearer the top-left, so the region always holds exactly
round(fraction * H * W) pixels (at least 1, at most H * W - 1).

Per image and codec point (`quality`, `rates`):

    psnr_salient        PSNR (dB, RGB in [0, 1], as the psnr metric) over the region's pixels
    psnr_nonsalient     PSNR over the other pixels
    salient_bits_share  bits in the region / all bits of the rate map
    bpp_salient         bits in the region / pixels in the region
    bpp_nonsalient      bits outside / pixels outside

The bit keys come from a rate map (`jaxcomp.codec.ratemap`: the model's eval-mode likelihoods,
the bitstream's quantisation); codecs without one (the JPEG and WebP anchors) get the PSNR keys
only. PSNR is +inf where the decoded pixels equal the original, as for the psnr metric.
"""

import numpy as np

DEFAULT_FRACTION = 0.25
QUALITY_KEYS = ("psnr_salient", "psnr_nonsalient")
RATE_KEYS = ("salient_bits_share", "bpp_salient", "bpp_nonsalient")
KEYS = QUALITY_KEYS + RATE_KEYS


def salient_region(saliency, fraction=DEFAULT_FRACTION):
  """The salient region of one image.

  Args:
    saliency: [H, W] float saliency map (finite; only the order of the values matters).
    fraction: share of the pixels in the region, 0 < fraction < 1.

  Returns:
    [H, W] bool, True on exactly clip(round(fraction * H * W), 1, H * W - 1) pixels.
  """
  saliency = np.asarray(saliency, np.float64)
  if saliency.ndim != 2 or saliency.size < 2:
    raise ValueError(f"saliency map must be [H, W] with at least 2 pixels, got {saliency.shape}")
  if not 0.0 < fraction < 1.0:
    raise ValueError(f"salient fraction must be within (0, 1), got {fraction}")
  height, width = saliency.shape
  count = int(np.clip(round(fraction * height * width), 1, height * width - 1))
  i, j = np.mgrid[0:height, 0:width]
  centre = (i - (height - 1) / 2.0) ** 2 + (j - (width - 1) / 2.0) ** 2
  # np.lexsort sorts by the last key first: saliency descending, then distance to the centre,
  # then raster order (the sort is stable).
  order = np.lexsort((centre.ravel(), -saliency.ravel()))
  region = np.zeros(height * width, bool)
  region[order[:count]] = True
  return region.reshape(height, width)


def _psnr(original, decoded, mask):
  """PSNR over the pixels where mask is True; images [H, W, 3] uint8, mask [H, W] bool."""
  diff = (decoded[mask].astype(np.float64) - original[mask].astype(np.float64)) / 255.0
  mse = float(np.mean(diff * diff))
  return float("inf") if mse == 0.0 else float(10.0 * np.log10(1.0 / mse))


def quality(original, decoded, region):
  """{'psnr_salient', 'psnr_nonsalient'} of one decoded image.

  Args:
    original, decoded: [H, W, 3] uint8.
    region: [H, W] bool (`salient_region`), with pixels on both sides.
  """
  if original.shape != decoded.shape or original.shape[:2] != region.shape:
    raise ValueError(f"shapes differ: original {original.shape}, decoded {decoded.shape}, "
                     f"region {region.shape}")
  return {"psnr_salient": _psnr(original, decoded, region),
          "psnr_nonsalient": _psnr(original, decoded, ~region)}


def rates(rate_map, region):
  """{'salient_bits_share', 'bpp_salient', 'bpp_nonsalient'} of one rate map.

  Args:
    rate_map: [H, W] bits per pixel (non-negative).
    region: [H, W] bool, with pixels on both sides.
  """
  rate_map = np.asarray(rate_map, np.float64)
  if rate_map.shape != region.shape:
    raise ValueError(f"rate map {rate_map.shape} does not match the region {region.shape}")
  inside, outside = float(rate_map[region].sum()), float(rate_map[~region].sum())
  total = inside + outside
  return {"salient_bits_share": inside / total if total > 0 else float("nan"),
          "bpp_salient": inside / int(region.sum()),
          "bpp_nonsalient": outside / int((~region).sum())}
