"""Rate-distortion evaluation with real files: every image through every point of every method.

For each image and each point of each method (an exported model, or an anchor at one quality):
write the compressed file, bpp = 8 * file size / (H * W) of the original image, decode the file
back to 8-bit RGB, and compute every metric of the decoded image against the original (both as
[1, H, W, 3] float32 in [0, 1]). Encoding and decoding are timed; a point's first image of each
size is coded once untimed beforehand, so JIT compilation is not in the times.

Failures are per image: an unreadable image is left out; a point that raises on an image (the
model, the anchor or a metric) gives null values for that image and point, and the image is left
out of that method's means (`results` module). Everything that failed is listed in `errors`.

Saliency (optional): given a saliency map of each original image, every point also gets the
salient-region keys of `saliency_stats` (PSNR inside / outside the region for every method; the
share of bits and bpp inside / outside for methods whose points have a rate map, i.e. models), and
with `rate_map_dir` every model point writes its rate map over the image
(`<rate_map_dir>/<curve>/<image stem>.p<point index>.png`, `plots.rate_map_overlay`).
"""

import dataclasses
import functools
import os
import sys
import tempfile
import time
from typing import Callable, Optional, Tuple

import jax
import numpy as np
from PIL import Image

from jaxcomp import images
from jaxcomp.codec import export
from jaxcomp.codec import ratemap
from jaxcomp.coding import compression
from jaxcomp.errors import UserError
from jaxcomp.evaluate import plots
from jaxcomp.evaluate import results, saliency_stats
from jaxcomp.metrics import registry


@dataclasses.dataclass(frozen=True)
class Point:
  """One operating point of a method.

  Attributes:
    label: e.g. 'q=50' or the model directory.
    extension: of its compressed files, with the dot.
    encode: (image [H, W, 3] uint8, path) -> None; writes the compressed file.
    decode: path -> [H, W, 3] uint8.
    warm_up: code each new image size once untimed first (for JIT-compiled methods).
    rate_map: optional image [H, W, 3] uint8 -> [H, W] bits per pixel the point spends where
      (`jaxcomp.codec.ratemap`); None for methods without one (anchors).
  """

  label: str
  extension: str
  encode: Callable[[np.ndarray, str], None]
  decode: Callable[[str], np.ndarray]
  warm_up: bool = False
  rate_map: Optional[Callable[[np.ndarray], np.ndarray]] = None


@dataclasses.dataclass(frozen=True)
class Method:
  """A compression method evaluated as one named curve: its points, low to high rate where that
  is known (an anchor swept over qualities, or a list of exported models)."""

  name: str
  description: str
  points: Tuple[Point, ...]


def anchor_method(anchor, qualities=None):
  """`Method` of an `anchors.Anchor` swept over `qualities` (default: the anchor's own)."""
  sweep = tuple(anchor.qualities if qualities is None else qualities)
  points = tuple(
      Point(label=f"q={q}", extension=anchor.extension,
            encode=lambda image, path, q=q: anchor.save(image, path, q), decode=anchor.load)
      for q in sweep)
  return Method(name=anchor.name, description=f"{anchor.description}, quality {list(sweep)}",
                points=points)


def model_method(model_dirs, name):
  """`Method` whose points are exported model directories (loaded here; UserError if invalid)."""
  points = []
  for path in model_dirs:
    cm = compression.CodingModel(path)

    def encode(image, out, cm=cm):
      data = compression.compress(cm, image[None], channels=[3])[0]
      with open(out, "wb") as f:
        f.write(data)

    def decode(src, cm=cm):
      with open(src, "rb") as f:
        return compression.decompress(cm, f.read(), where=src)

    points.append(Point(label=path, extension=".jxc", encode=encode, decode=decode, warm_up=True,
                        rate_map=_model_rate_map(path)))
  archs = sorted({_arch(p) for p in model_dirs})
  return Method(name=name, description=f"jaxcomp real bitstreams ({', '.join(archs)})",
                points=tuple(points))



def _model_rate_map(model_dir):
  """image [H, W, 3] uint8 -> [H, W] bits per pixel of an exported model (loaded on first use).

  The model runs in eval mode, y and z rounded as the encoder rounds them; a model whose encoder
  takes a saliency map gets the map of its own saliency model (`export.saliency_model`), as the
  encoder does.
  """

  @functools.lru_cache(maxsize=1)
  def loaded():
    model, variables, config = export.load(model_dir)
    encoder_saliency = export.saliency_model(model_dir, config)
    if encoder_saliency is not None:  # as `CodingModel.saliency_map` computes it
      encoder_saliency = functools.partial(jax.jit(encoder_saliency.apply),
                                           encoder_saliency.params)
    return model, jax.device_put(variables), encoder_saliency

  def rate_map(image):
    model, variables, encoder_saliency = loaded()
    saliency = None
    if encoder_saliency is not None:
      saliency = np.asarray(encoder_saliency(image[None].astype(np.float32) / 255.0), np.float32)
    return ratemap.model_rate_map(model, variables, image[None], saliency)[0]

  return rate_map


def _arch(model_dir):
  config = export.read_config(model_dir)
  return f"{config['arch']} N={config['N']} M={config['M']}"


@dataclasses.dataclass(frozen=True)
class MetricFn:
  """A registered metric ready to apply to one decoded/original pair."""

  key: str
  fn: Callable
  params: object


def load_metrics(names=None):
  """[MetricFn] for registry names, each `compute` jitted once (weights passed as an argument).

  Args:
    names: registry names; None for every registered metric whose weights are available.

  Returns:
    ([MetricFn], {name: reason} of the metrics skipped for lack of weights when names is None).
  """

  skipped = {}
  everything = names is None
  if everything:
    names = [n for n in registry.names() if not n.endswith(":<arg>")]
  fns = []
  for name in names:
    try:
      metric = registry.get(name)
    except UserError as e:
      if not everything:
        raise
      skipped[name] = str(e)
      continue
    fns.append(MetricFn(key=results.metric_key(name), fn=jax.jit(metric.compute),
                        params=metric.params))
  return fns, skipped


def list_images(folder):
  """Sorted paths of the image files (by extension) directly in `folder`; UserError if none."""
  if not os.path.isdir(folder):
    if os.path.exists(folder):
      raise UserError(f"--images: not a folder: {folder}")
    raise FileNotFoundError(2, "No such folder", folder)
  extensions = set(Image.registered_extensions())
  paths = sorted(os.path.join(folder, n) for n in os.listdir(folder)
                 if not n.startswith(".") and os.path.splitext(n)[1].lower() in extensions)
  if not paths:
    raise UserError(f"--images: no image files in {folder}")
  return paths


def measure(point, image, path, metrics, region=None, rate_map=None):
  """{key: value} of one image at one point: bpp, times, every metric (and salient-region keys).

  Args:
    point: `Point`.
    image: [H, W, 3] uint8 original.
    path: where to write the compressed file.
    metrics: [MetricFn].
    region: optional [H, W] bool salient region (`saliency_stats.salient_region`): adds
      `saliency_stats.QUALITY_KEYS`, and with `rate_map` also `saliency_stats.RATE_KEYS`.
    rate_map: optional [H, W] bits per pixel of this point on this image.
  """
  if os.path.exists(path):
    os.remove(path)
  began = time.perf_counter()
  point.encode(image, path)
  encoded = time.perf_counter()
  decoded = point.decode(path)
  finished = time.perf_counter()
  if decoded.shape != image.shape:
    raise ValueError(f"decoded image is {decoded.shape}, expected {image.shape}")
  height, width = image.shape[:2]
  values = {results.RATE_KEY: 8.0 * os.path.getsize(path) / (height * width),
            "encoding_time": encoded - began, "decoding_time": finished - encoded}
  x = decoded[None].astype(np.float32) / 255.0
  y = image[None].astype(np.float32) / 255.0
  for metric in metrics:
    value = float(np.asarray(metric.fn(metric.params, x, y))[0])
    if np.isnan(value):
      raise ValueError(f"{metric.key} is NaN")
    values[metric.key] = value
  if region is not None:
    stats = saliency_stats.quality(image, decoded, region)
    if rate_map is not None:
      stats.update(saliency_stats.rates(rate_map, region))
    for key, value in stats.items():
      if np.isnan(value):
        raise ValueError(f"{key} is NaN")
    values.update(stats)
  return values


class Progress:
  """One line per finished unit on stderr, with elapsed time and an ETA."""

  def __init__(self, total, stream=None):
    self.total, self.done, self.began = total, 0, time.perf_counter()
    self.stream = stream or sys.stderr

  def step(self, message):
    self.done += 1
    elapsed = time.perf_counter() - self.began
    eta = elapsed / self.done * (self.total - self.done)
    self.stream.write(f"[{self.done}/{self.total}] {message} | elapsed {_clock(elapsed)}, "
                      f"ETA {_clock(eta)}\n")
    self.stream.flush()


def _clock(seconds):
  minutes, seconds = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


def _read(path):
  try:
    return images.read(path)[0]
  except (UserError, OSError) as e:
    raise UserError(str(e) if isinstance(e, UserError) else f"cannot read {path}: {e}") from None


def evaluate(image_paths, methods, metrics, stream=None, saliency=None,
             fraction=saliency_stats.DEFAULT_FRACTION, rate_map_dir=None):
  """Runs every point of every method on every image.

  Args:
    image_paths: [I] image files.
    methods: [Method].
    metrics: [MetricFn].
    stream: progress output (default stderr).
    saliency: optional (image name, image [H, W, 3] uint8) -> [H, W] saliency map of the
      original (`saliency_maps.Source`); adds the salient-region keys (module docstring).
    fraction: share of the pixels in the salient region (`saliency_stats.salient_region`).
    rate_map_dir: optional folder for the rate-map overlays of the points that have rate maps.

  Returns:
    [C] curve documents (`results.curve_document`), in the order of `methods`.
  """
  keys = {c.name: method_keys(c, metrics, saliency is not None) for c in methods}
  per_image = {c.name: {} for c in methods}
  errors = {c.name: [] for c in methods}
  warmed = set()
  progress = Progress(len(image_paths) * len(methods), stream)
  with tempfile.TemporaryDirectory(prefix="jaxcomp-eval-") as workdir:
    for image_path in image_paths:
      name = os.path.basename(image_path)
      try:
        image = _read(image_path)
        region = _region(saliency, name, image, fraction)
      except UserError as e:
        for method in methods:
          errors[method.name].append({"image": name, "error": str(e)})
          progress.step(f"{method.name} {name}: unusable image ({e})")
        continue
      for c, method in enumerate(methods):
        began = time.perf_counter()
        table = {k: [None] * len(method.points) for k in keys[method.name]}
        failed = []
        for i, point in enumerate(method.points):
          out = os.path.join(workdir, f"curve{c}-point{i}{point.extension}")
          try:
            if point.warm_up and (method.name, i, image.shape) not in warmed:
              point.decode(_encoded(point, image, out))
              warmed.add((method.name, i, image.shape))
            rate_map = None
            if point.rate_map is not None and (region is not None or rate_map_dir):
              rate_map = point.rate_map(image)
            values = measure(point, image, out, metrics, region, rate_map)
            if rate_map_dir and rate_map is not None:
              _overlay(rate_map_dir, method, i, name, image, rate_map, region, values)
          except Exception as e:  # pylint: disable=broad-except
            message = f"{type(e).__name__}: {e}" if not isinstance(e, UserError) else str(e)
            errors[method.name].append({"image": name, "point": point.label, "error": message})
            failed.append(f"{point.label}: {message}")
            continue
          for k in keys[method.name]:
            table[k][i] = values[k]
        per_image[method.name][name] = table
        status = (f"FAILED at {len(failed)} of {len(method.points)} points ({failed[0]}"
                  f"{' ...' if len(failed) > 1 else ''})") if failed else (
                      f"{len(method.points)} points, "
                      f"{_summary(table, keys[method.name])}")
        progress.step(f"{method.name} {name}: {status}, {time.perf_counter() - began:.1f} s")
  return [_document(c, keys[c.name], per_image[c.name], errors[c.name]) for c in methods]


def method_keys(method, metrics, with_saliency):
  """The keys of a method's results: bpp, metrics, [salient-region keys], times."""
  keys = [results.RATE_KEY, *[m.key for m in metrics]]
  if with_saliency:
    keys += saliency_stats.QUALITY_KEYS
    if all(p.rate_map is not None for p in method.points):
      keys += saliency_stats.RATE_KEYS
  return keys + list(results.TIME_KEYS)


def _region(saliency, name, image, fraction):
  """The salient region of one original image, or None without saliency; UserError if unusable."""
  if saliency is None:
    return None
  try:
    return saliency_stats.salient_region(saliency(name, image), fraction)
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"saliency map: {type(e).__name__}: {e}") from None


def rate_map_path(folder, curve, point_index, image_name):
  """Where the rate-map overlay of one image at one point goes."""
  stem = os.path.splitext(image_name)[0]
  return os.path.join(folder, curve, f"{stem}.p{point_index}.png")


def _overlay(folder, method, i, name, image, rate_map, region, values):
  title = (f"{name}, {method.name} point {i} ({os.path.basename(method.points[i].label)}): "
           f"{values[results.RATE_KEY]:.3f} bpp file, {float(np.mean(rate_map)):.3f} bpp map")
  if "salient_bits_share" in values:
    title += (f"\nsalient region ({int(region.sum())} px): "
              f"{100 * values['salient_bits_share']:.1f}% of the bits, "
              f"{values['bpp_salient']:.3f} vs {values['bpp_nonsalient']:.3f} bpp, PSNR "
              f"{values['psnr_salient']:.2f} vs {values['psnr_nonsalient']:.2f} dB")
  plots.rate_map_overlay(rate_map_path(folder, method.name, i, name), image, rate_map, region,
                         title)


def _encoded(point, image, path):
  point.encode(image, path)
  return path


def _summary(table, keys):
  """'bpp 0.12-1.85, psnr-rgb 27.1-40.3' for a progress line (first quality key only)."""
  parts = []
  for k in keys[:2]:
    values = [v for v in table[k] if v is not None]
    if values:
      parts.append(f"{k} {min(values):.3g}-{max(values):.3g}")
  return ", ".join(parts)


def _document(method, keys, per_image, errors):
  """Means over the images that succeeded at every point of the method."""
  complete = [t for t in per_image.values()
              if all(v is not None for k in keys for v in t[k])]
  means = {k: [float(np.mean([t[k][i] for t in complete])) if complete else None
               for i in range(len(method.points))] for k in keys}
  return results.curve_document(method.name, method.description, [p.label for p in method.points],
                                means, per_image, errors)


def complete_images(document):
  """Number of images in a curve document's means (those with every value at every point)."""
  return sum(1 for table in document["per_image"].values()
             if all(v is not None for values in table.values() for v in values))
