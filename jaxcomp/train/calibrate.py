"""Lambda calibration: per distortion and rate point, the lambda whose fine-tune lands at a bpp.

The PCS 2022 study compares codecs fine-tuned with nine distortions *at the same rate*. A lambda
taken from gradient ratios (configs/finetune.py) only starts near it; this module finds, for each
distortion D and each parent (an MSE model at one rate point), the lambda for which the model
fine-tuned from that parent with L = bpp + lambda * D lands at a target bpp on a validation set
(by default the parent's own bpp there, so that every fine-tune stays at its MSE parent's rate).

Search (`search`): the fine-tuned rate is close to linear in log lambda, so the search works in
(log lambda, log bpp). Probe 1 is the start lambda (configs/finetune.py's); probe 2 steps from it
with a prior slope d log bpp / d log lambda (`PRIOR_SLOPE`); later probes interpolate between the
nearest probes below and above the target once they bracket it (regula falsi, kept off the bracket
ends), else extrapolate with the secant of the two nearest (the prior slope if that secant is flat
or falling). Each step moves lambda by at most `MAX_FACTOR`. It stops when a probe is within the
tolerance of the target, or after `max_probes`; the result is the probe closest to the target.
The rates of one metric are calibrated in the order given; each after the first starts from its
configs lambda times the ratio the previous rate needed, with the previous rate's measured slope
(`next_hint`), so it usually needs one or two probes.

Probe (`Calibrator.probe`): a short fine-tune with `jaxcomp.train.train.train_and_evaluate` (the
ordinary trainer, configs/finetune.py's config for the distortion and the parent's quality, the
parent's N and M, the scale given by `Scale`), exported (`checkpoint.export_model`: model.json
records distortion, lambda, quality, parent and steps), then the validation images are compressed
to real .jxc bitstreams (`jaxcomp.coding.compression.compress`) and bpp = 8 * bytes / pixels,
averaged over the images. The likelihood estimate of the same model (coding mode: rounding, refit
quantiles) is recorded beside it ("bpp_likelihood") as a check.

Cache: every probe is a folder `<out>/probes/<metric>-<label>-<lambda>-<key>/` whose key hashes
everything the measured bpp depends on (parent fingerprint, metric, lambda, steps, learning rate,
batch, crop, seed, config overrides, training and validation files); `probe.json` holds the
result, `model/` the exported fine-tune when models are kept. A rerun reuses finished probes; a
probe killed mid-run restarts its fine-tune.

Validation set: the last `holdout` photos (sorted names) of the training folder are held out
(`split_data`: symlink folders `<out>/data/train` and `<out>/data/val`), or a separate folder;
each validation image contributes its centre crop of `val_size` pixels.
"""

import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import os
import shutil
import time

import jax
import numpy as np

from jaxcomp import images as images_lib
from jaxcomp import zoo
from jaxcomp.codec import export, models
from jaxcomp.coding import compression as coding
from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.train import checkpoint, config_files, input_pipeline, lambda_table, train

FORMAT = "jaxcomp-calibration"
VERSION = 1
# d log bpp / d log lambda assumed before two probes measure it. Measured on 50-step probes
# from hyperprior-small-q1 (CPU scale): 0.10 for MSE, 0.31 for LPIPS.
PRIOR_SLOPE = 0.3
MIN_SLOPE = 0.02  # a measured slope below this (flat or falling: noise) is not trusted
MAX_FACTOR = 8.0  # the most one step multiplies or divides lambda by
KEEP_OFF_ENDS = 0.1  # regula falsi stays this fraction of the bracket (in log lambda) off its ends
LAMBDA_DIGITS = 4  # significant digits of probed lambdas (cache keys, tables)


def round_lambda(lmbda):
  """lambda rounded to LAMBDA_DIGITS significant digits (a probe's identity)."""
  return float(f"{lmbda:.{LAMBDA_DIGITS}g}")


def relative_error(bpp, target):
  return bpp / target - 1.0


# ----------------------------------------------------------------------------- the search


def next_lambda(probes, target, start, prior_slope=PRIOR_SLOPE, max_factor=MAX_FACTOR):
  """The lambda to probe next.

  Args:
    probes: [(lambda, bpp)] measured so far (bpp > 0), in probing order.
    target: target bpp (> 0).
    start: the first lambda (used when `probes` is empty).
    prior_slope: d log bpp / d log lambda assumed until two probes measure it.
    max_factor: bound on lambda's change per step, relative to the probe it steps from.

  Returns:
    lambda (rounded, `round_lambda`).
  """
  if not probes:
    return round_lambda(start)
  t = math.log(target)
  pts = sorted((math.log(l), math.log(b)) for l, b in probes)
  below = [p for p in pts if p[1] < t]
  above = [p for p in pts if p[1] > t]
  cap = math.log(max_factor)
  if below and above:
    lo = max(below, key=lambda p: p[1])  # the highest rate under the target ...
    hi = min(above, key=lambda p: p[1])  # ... and the lowest over it
    if lo[0] < hi[0]:  # a monotone bracket: interpolate inside it
      frac = (t - lo[1]) / (hi[1] - lo[1])
      frac = min(max(frac, KEEP_OFF_ENDS), 1.0 - KEEP_OFF_ENDS)
      return round_lambda(math.exp(lo[0] + frac * (hi[0] - lo[0])))
  nearest = sorted(pts, key=lambda p: abs(p[1] - t))
  base = nearest[0]
  slope = prior_slope
  if len(nearest) > 1:
    other = nearest[1]
    if other[0] != base[0]:
      measured = (other[1] - base[1]) / (other[0] - base[0])
      if measured > MIN_SLOPE:
        slope = measured
  step = min(max((t - base[1]) / slope, -cap), cap)
  return round_lambda(math.exp(base[0] + step))


def search(measure, target, start, tolerance=0.03, max_probes=4, prior_slope=PRIOR_SLOPE,
           max_factor=MAX_FACTOR, on_probe=None):
  """Finds lambda with measure(lambda) within `tolerance` (relative) of `target`.

  Args:
    measure: lambda -> bpp (a fine-tune and its measurement; increasing in lambda).
    target: target bpp.
    start: first lambda.
    tolerance: accepted |bpp / target - 1|.
    max_probes: the most probes (>= 1).
    prior_slope, max_factor: as in `next_lambda`.
    on_probe: optional callback(index, lambda, bpp) after each probe.

  Returns:
    {'lambda', 'bpp', 'error' (bpp / target - 1), 'converged' (bool), 'probes': [[lambda, bpp]]}
    with lambda and bpp of the probe closest to the target.
  """
  probes = []
  for i in range(max_probes):
    lmbda = next_lambda(probes, target, start, prior_slope, max_factor)
    if any(l == lmbda for l, _ in probes):
      break  # the search cannot refine further at LAMBDA_DIGITS digits
    bpp = float(measure(lmbda))
    if not (math.isfinite(bpp) and bpp > 0):
      raise UserError(f"probe lambda={lmbda} measured bpp {bpp}: not a positive number")
    probes.append((lmbda, bpp))
    if on_probe is not None:
      on_probe(i, lmbda, bpp)
    if abs(relative_error(bpp, target)) <= tolerance:
      break
  lmbda, bpp = min(probes, key=lambda p: abs(math.log(p[1] / target)))
  error = relative_error(bpp, target)
  return {"lambda": lmbda, "bpp": bpp, "error": error, "converged": abs(error) <= tolerance,
          "probes": [list(p) for p in probes]}


# ------------------------------------------------------------------------ data and measurement


def image_files(folder):
  """Sorted image paths directly or recursively under `folder` (the trainer's extensions)."""
  if not os.path.isdir(folder):
    raise UserError(f"data folder not found: {folder}")
  found = sorted(os.path.join(d, f) for d, _, files in os.walk(folder, followlinks=True)
                 for f in files if f.lower().endswith(input_pipeline.IMAGE_EXTENSIONS))
  if not found:
    raise UserError(f"no PNG/JPEG images in {folder}")
  return found


def _link_folder(path, files):
  """Replaces `path` by a folder of symlinks to `files` (names kept)."""
  with atomic_path(path) as tmp:
    os.makedirs(tmp)
    for f in files:
      os.symlink(os.path.abspath(f), os.path.join(tmp, os.path.basename(f)))


def split_data(data_dir, out_dir, holdout=4, val_dir=None):
  """(training folder, validation files): the fine-tunes never see a validation image.

  Without `val_dir`, the last `holdout` images of `data_dir` (sorted) are held out and the rest
  linked into `<out_dir>/data/train` (the folder to fine-tune on, in the calibration and after).
  With `val_dir`, all of `data_dir` trains and `val_dir`'s images validate; UserError if the two
  share a file.
  """
  files = image_files(data_dir)
  if val_dir:
    val = image_files(val_dir)
    shared = {os.path.realpath(f) for f in files} & {os.path.realpath(f) for f in val}
    if shared:
      raise UserError(f"--val-data shares {len(shared)} image(s) with --data (e.g. "
                      f"{sorted(shared)[0]}): the validation set must be held out")
    train_files = files
  else:
    if not 1 <= holdout < len(files):
      raise UserError(f"--holdout {holdout}: {data_dir} has {len(files)} images; hold out at "
                      f"least 1 and leave at least 1 to train on")
    train_files, val = files[:-holdout], files[-holdout:]
  train_dir = os.path.join(out_dir, "data", "train")
  current = sorted(os.path.join(train_dir, n) for n in os.listdir(train_dir)) if os.path.isdir(
      train_dir) else None
  if current is None or [os.path.realpath(p) for p in current] != [
      os.path.realpath(f) for f in sorted(train_files, key=os.path.basename)]:
    _link_folder(train_dir, train_files)
  if not val_dir:
    _link_folder(os.path.join(out_dir, "data", "val"), val)
  return train_dir, val


def centre_crops(paths, size):
  """uint8 [K, size, size, 3]: the centre crop of each image; UserError if one is smaller."""
  crops = []
  for path in paths:
    image = images_lib.read_rgb(path)
    h, w = image.shape[:2]
    if min(h, w) < size:
      raise UserError(f"validation image {path} is {w}x{h}, smaller than --val-size {size}")
    top, left = (h - size) // 2, (w - size) // 2
    crops.append(image[top:top + size, left:left + size])
  return np.stack(crops)


def files_digest(paths):
  """sha256 over (name, size) of files: identifies a data set without reading it."""
  h = hashlib.sha256()
  for p in paths:
    h.update(f"{os.path.basename(p)}:{os.path.getsize(p)}\n".encode())
  return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _likelihood_fn(model):
  def bpp(variables, x):
    out = model.apply(variables, x, training=False)
    return models.rate_bits(out["likelihoods"]) / (x.shape[1] * x.shape[2])
  return jax.jit(bpp)


def measure_bpp(model_dir, crops):
  """{'bpp': real .jxc bits per pixel (mean over images), 'bpp_likelihood': the model's estimate}.

  Args:
    model_dir: exported model directory (or zoo:NAME).
    crops: uint8 [K, S, S, 3], S a multiple of 64 (no padding: both figures count the same
      pixels).
  """
  cm = coding.CodingModel(zoo.resolve(model_dir))
  streams = coding.compress(cm, crops)
  pixels = crops.shape[1] * crops.shape[2]
  real = float(np.mean([8.0 * len(s) / pixels for s in streams]))
  model, variables, _ = export.load(zoo.resolve(model_dir))
  estimate = float(np.mean(_likelihood_fn(model)(variables, crops.astype(np.float32) / 255.0)))
  return {"bpp": real, "bpp_likelihood": estimate}


# ------------------------------------------------------------------------------------- probes


@dataclasses.dataclass(frozen=True)
class Scale:
  """The fine-tune of one probe (the CPU scale by default).

  batch 4 of 64-pixel crops (configs/finetune.py raises the crop to each metric's minimum, e.g.
  192 for MS-SSIM, and `batch_for` then lowers the batch to about the same pixels per step),
  Adam at 1e-4 without decay, `steps` steps; the paper fine-tunes at 1e-5 for 100k+ steps, a
  rate a probe of a hundred steps could not move.
  """

  steps: int = 100
  batch_size: int = 4
  patch_size: int = 64
  learning_rate: float = 1e-4
  seed: int = 0


def batch_for(scale, patch_size, devices=1):
  """Crops per step at `patch_size`: the pixels of `scale.batch_size` crops of
  `scale.patch_size`, rounded, at least 1 (MS-SSIM's 192-pixel crops: 1 instead of 4), then
  rounded up to a multiple of the number of local `devices` (the trainer splits the batch)."""
  batch = max(1, round(scale.batch_size * scale.patch_size ** 2 / patch_size ** 2))
  return -(-batch // devices) * devices


@dataclasses.dataclass(frozen=True)
class Parent:
  """One rate point: an exported MSE model."""

  label: str
  spec: str  # as given (zoo:NAME or a folder)
  path: str  # the resolved folder
  fingerprint: str
  quality: int
  N: int
  M: int
  arch: str


def load_parent(label, spec):
  """Parent for `--parent LABEL=SPEC`; UserError for a missing or unusable model."""
  if zoo.is_zoo(spec):
    path = zoo.resolve(spec)
  elif os.path.isdir(spec) and os.path.isfile(os.path.join(spec, export.CONFIG_FILE)):
    path = os.path.abspath(spec)
  elif os.path.isdir(spec) and os.path.isfile(os.path.join(spec, "config.json")):
    raise UserError(f"--parent {label}={spec} is a training workdir: export it first "
                    f"(jaxcomp export --workdir {spec} --out MODEL_DIR)")
  else:
    raise UserError(f"--parent {label}={spec}: no exported model there (a folder with "
                    f"{export.CONFIG_FILE}, or zoo:NAME)")
  config = export.read_config(path)
  try:
    with open(os.path.join(path, export.FINGERPRINT_FILE)) as f:
      fingerprint = f.read().strip()
  except OSError:
    raise UserError(f"--parent {label}={spec}: no {export.FINGERPRINT_FILE}") from None
  training = config.get("training") or {}
  quality = training.get("quality")
  if quality is None:
    matches = [q for q, l in models.MSE_LAMBDAS.items() if l == training.get("lambda")]
    quality = matches[0] if matches else None
  if not isinstance(quality, int) or not 1 <= quality <= 8:
    raise UserError(f"--parent {label}={spec}: its model.json records no quality 1..8 (needed for "
                    "configs/finetune.py's start lambda)")
  return Parent(label, spec, path, fingerprint, quality, int(config["N"]), int(config["M"]),
                config["arch"])


def load_finetune_module():
  """configs/finetune.py as a module (the shipped config, found from any directory)."""
  path = config_files.resolve("finetune.py")
  spec = importlib.util.spec_from_file_location("jaxcomp_configs_finetune", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def parse_value(text, current, field):
  """A --config.<field>=text override converted to the type of the field's current value."""
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
  elif isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      pass
  elif isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      pass
  elif isinstance(current, str):
    return text
  elif isinstance(current, tuple):
    try:
      return tuple(float(v) for v in text.strip("()").split(",") if v.strip())
    except ValueError:
      pass
  raise UserError(f"--config.{field}={text}: expected a {type(current).__name__}")


def apply_overrides(config, overrides):
  """Sets `--config.a.b=v` overrides ([(field path, text)]) on an ml_collections config."""
  for field, text in overrides:
    *parents, last = field.split(".")
    node = config
    for name in parents:
      node = node.get(name) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "get") or last not in node:
      raise UserError(f"--config.{field}: no such config field")
    node[last] = parse_value(text, node[last], field)
  return config


class Calibrator:
  """Probes and searches for one calibration run (one output folder).

  Args:
    out: output folder (probes/, data/, calibration.json, lambdas.json).
    train_dir: the fine-tunes' image folder.
    val_files: validation image paths.
    val_size: centre-crop side (a multiple of 64).
    scale: Scale.
    overrides: [(field, text)] applied to every probe's config (after the scale).
    keep_models: keep each probe's exported model (else only probe.json stays).
    log: callable(str) for progress lines.
  """

  def __init__(self, out, train_dir, val_files, val_size=512, scale=Scale(), overrides=(),
               keep_models=False, log=print):
    if val_size % models.DOWNSAMPLING:
      raise UserError(f"--val-size {val_size} must be a multiple of {models.DOWNSAMPLING}")
    self.out = out
    self.train_dir = train_dir
    self.val_files = list(val_files)
    self.val_size = val_size
    self.scale = scale
    self.overrides = tuple(overrides)
    self.keep_models = keep_models
    self.log = log
    self.finetune = load_finetune_module()
    self.crops = centre_crops(self.val_files, val_size)
    self.train_digest = files_digest(image_files(train_dir))
    self.val_digest = files_digest(self.val_files)
    self.probe_seconds = []  # wall time of each probe run in this process (not cache hits)

  def config(self, parent, metric, lmbda):
    """The fine-tune config of one probe (configs/finetune.py at the parent's quality)."""
    config = self.finetune.get_config(f"{metric},q{parent.quality}")
    config.arch = parent.arch
    config.N, config.M = parent.N, parent.M
    config.lmbda = lmbda
    config.init_from = parent.path
    config.num_train_steps = self.scale.steps
    config.patch_size = self.finetune.patch_size_for(metric, self.scale.patch_size)
    config.batch_size = batch_for(self.scale, config.patch_size, jax.local_device_count())
    config.learning_rate = self.scale.learning_rate
    config.lr_drop_fractions = ()
    config.seed = self.scale.seed
    config.data.dir = self.train_dir
    config.data.cache_images = 16
    config.eval.every_steps = 0  # the probe is measured with real bitstreams instead
    config.log_every_steps = max(self.scale.steps // 4, 1)
    config.checkpoint_every_steps = 0  # one checkpoint, at the end
    config.keep_checkpoints = 1
    return apply_overrides(config, self.overrides)

  def key(self, parent, metric, lmbda):
    """The cache key of a probe: a hash of everything its measured bpp depends on."""
    ident = {"version": VERSION, "parent": parent.fingerprint, "metric": metric,
             "lambda": round_lambda(lmbda), "scale": dataclasses.asdict(self.scale),
             "overrides": list(self.overrides), "train": self.train_digest,
             "val": self.val_digest, "val_size": self.val_size}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:12]

  def probe_dir(self, parent, metric, lmbda):
    return os.path.join(self.out, "probes",
                        f"{metric}-{parent.label}-{round_lambda(lmbda):g}-"
                        f"{self.key(parent, metric, lmbda)}")

  def cached(self, parent, metric, lmbda):
    """The probe's record if it was measured (and its model kept when models are kept)."""
    folder = self.probe_dir(parent, metric, lmbda)
    path = os.path.join(folder, "probe.json")
    if not os.path.isfile(path):
      return None
    with open(path) as f:
      record = json.load(f)
    model = os.path.join(folder, "model")
    if self.keep_models and not os.path.isfile(os.path.join(model, export.CONFIG_FILE)):
      return None
    # where the model is now (the output folder may have been moved or copied since)
    record["model"] = os.path.abspath(model) if self.keep_models else None
    return record

  def probe(self, parent, metric, lmbda):
    """Fine-tunes from `parent` with (metric, lambda), measures it; cached. Returns the record:
    {'lambda', 'bpp', 'bpp_likelihood', 'seconds', 'model' (path or None), 'cached'}."""
    lmbda = round_lambda(lmbda)
    record = self.cached(parent, metric, lmbda)
    if record is not None:
      return {**record, "cached": True}
    folder = self.probe_dir(parent, metric, lmbda)
    workdir, model_dir = os.path.join(folder, "run"), os.path.join(folder, "model")
    if os.path.isdir(workdir):
      shutil.rmtree(workdir)  # an interrupted probe starts again (its config is the same)
    os.makedirs(folder, exist_ok=True)
    start = time.time()
    config = self.config(parent, metric, lmbda)
    train.train_and_evaluate(config, workdir)
    checkpoint.export_model(workdir, model_dir)
    record = {"metric": metric, "parent": parent.spec, "lambda": lmbda,
              **measure_bpp(model_dir, self.crops), "steps": self.scale.steps,
              "seconds": round(time.time() - start, 1),
              "model": os.path.abspath(model_dir) if self.keep_models else None}
    shutil.rmtree(workdir)
    if not self.keep_models:
      shutil.rmtree(model_dir)
    with atomic_path(os.path.join(folder, "probe.json")) as tmp:
      with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    self.probe_seconds.append(record["seconds"])
    return {**record, "cached": False}

  def parent_bpp(self, parent):
    """The parent's own bpp on the validation crops (cached in <out>/parents/)."""
    key = hashlib.sha256(f"{parent.fingerprint}:{self.val_digest}:{self.val_size}".encode())
    path = os.path.join(self.out, "parents", f"{parent.label}-{key.hexdigest()[:12]}.json")
    if os.path.isfile(path):
      with open(path) as f:
        return json.load(f)
    record = {"parent": parent.spec, **measure_bpp(parent.path, self.crops)}
    with atomic_path(path) as tmp:
      with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    return record

  def calibrate(self, parent, metric, target, tolerance=0.03, max_probes=4, on_probe=None,
                hint=None):
    """`search` for one (metric, parent). Returns its result with 'lambda_start', 'target_bpp',
    'quality', 'slope' and per probe its full record.

    The search starts from configs/finetune.py's lambda for the parent's quality, times
    hint['ratio'] (calibrated / configs' lambda of the same metric at another rate) if given, and
    steps with hint['slope'] (that rate's measured slope) instead of PRIOR_SLOPE.
    """
    hint = hint or {}
    start = self.finetune.LAMBDAS[metric][parent.quality] * hint.get("ratio", 1.0)
    records = []

    def measure(lmbda):
      record = self.probe(parent, metric, lmbda)
      records.append(record)
      return record["bpp"]

    result = search(measure, target, start, tolerance, max_probes,
                    prior_slope=hint.get("slope", PRIOR_SLOPE), on_probe=(
                        None if on_probe is None else lambda i, l, b: on_probe(i, records[-1])))
    best = next(r for r in records if r["lambda"] == result["lambda"])
    return {"target_bpp": target, "quality": parent.quality, "lambda_start": round_lambda(start),
            "slope": fitted_slope(result["probes"]),
            "lambda": result["lambda"], "bpp": result["bpp"],
            "bpp_likelihood": best["bpp_likelihood"], "error": result["error"],
            "converged": result["converged"], "model": best.get("model"),
            "probes": [{k: r[k] for k in ("lambda", "bpp", "bpp_likelihood", "seconds", "cached",
                                          "model")} for r in records]}


def fitted_slope(probes):
  """Least-squares d log bpp / d log lambda over [[lambda, bpp]] probes, or None (fewer than two
  lambdas)."""
  if len({l for l, _ in probes}) < 2:
    return None
  x = np.log([l for l, _ in probes])
  y = np.log([b for _, b in probes])
  return float(np.polyfit(x, y, 1)[0])


def next_hint(result, configs_lambda):
  """The start of the same metric's next rate: {'ratio': calibrated / configs' lambda, 'slope':
  the measured slope, clipped to [2 MIN_SLOPE, 1], when there is one}."""
  hint = {"ratio": result["lambda"] / configs_lambda}
  if result.get("slope") is not None:
    hint["slope"] = float(min(max(result["slope"], 2 * MIN_SLOPE), 1.0))
  return hint


def run(parents, metrics, data_dir, out, scale=Scale(), targets=None, tolerance=0.03,
        max_probes=4, holdout=4, val_dir=None, val_size=512, overrides=(), keep_models=False,
        log=print):
  """The whole calibration: every metric x every parent. Writes and returns calibration.json.

  Args:
    parents: [(label, spec)] rate points (exported MSE models or zoo:NAME).
    metrics: distortion names (configs/finetune.py's DISTORTIONS).
    data_dir: training photos (the last `holdout` are held out unless `val_dir`).
    out: output folder.
    scale: Scale of every probe.
    targets: optional {label: bpp}; other labels target their parent's validation bpp.
    tolerance, max_probes: as in `search`.
    val_dir, val_size: as in `split_data`, `centre_crops`.
    overrides: [(config field, text)] for every probe.
    keep_models: keep every probe's exported model.
    log: progress lines.
  """
  parents = [load_parent(label, spec) for label, spec in parents]
  finetune = load_finetune_module()
  unknown = [m for m in metrics if m not in finetune.DISTORTIONS]
  if unknown:
    raise UserError(f"unknown metric {unknown[0]!r} (known: {', '.join(finetune.DISTORTIONS)})")
  apply_overrides(finetune.get_config("mse"), overrides)  # a bad field fails before any work
  targets = dict(targets or {})
  missing = sorted(set(targets) - {p.label for p in parents})
  if missing:
    raise UserError(f"--target {missing[0]}: no --parent with that label")
  os.makedirs(out, exist_ok=True)
  train_dir, val_files = split_data(data_dir, out, holdout, val_dir)
  cal = Calibrator(out, train_dir, val_files, val_size, scale, overrides, keep_models, log)
  rates = {}
  for p in parents:
    own = cal.parent_bpp(p)
    rates[p.label] = {"parent": p.spec, "parent_path": p.path, "parent_fingerprint": p.fingerprint,
                      "quality": p.quality, "parent_bpp": own["bpp"],
                      "parent_bpp_likelihood": own["bpp_likelihood"],
                      "target_bpp": float(targets.get(p.label, own["bpp"]))}
    log(f"rate {p.label}: parent {p.spec} (q{p.quality}) {own['bpp']:.4f} bpp on the validation "
        f"crops; target {rates[p.label]['target_bpp']:.4f} bpp")
  results = {}
  document = {
      "format": FORMAT, "version": VERSION,
      "settings": {**dataclasses.asdict(scale), "tolerance": tolerance, "max_probes": max_probes,
                   "overrides": [f"--config.{f}={v}" for f, v in overrides],
                   "bpp": "real .jxc bitstreams (jaxcomp.coding.compression.compress), "
                          "8*bytes/pixels, mean over the validation crops; bpp_likelihood: the "
                          "model's estimate"},
      "data": {"train_dir": os.path.abspath(train_dir), "data_dir": os.path.abspath(data_dir),
               "validation": [os.path.abspath(f) for f in val_files], "val_size": val_size},
      "rates": rates, "results": results, "lambdas": {}}
  pairs = [(m, p) for m in metrics for p in parents]
  started = time.time()
  hints = {}  # metric -> the start of its next rate (`next_hint`)
  for n, (metric, parent) in enumerate(pairs):
    target = rates[parent.label]["target_bpp"]

    def on_probe(i, record, metric=metric, parent=parent, n=n, target=target):
      err = relative_error(record["bpp"], target)
      how = "cached" if record["cached"] else f"{record['seconds']:.0f} s"
      log(f"[{n + 1}/{len(pairs)}] {metric} {parent.label} probe {i + 1}: lambda "
          f"{record['lambda']:g} -> {record['bpp']:.4f} bpp ({err:+.1%} of {target:.4f}; {how})"
          f"{eta(pairs, n, cal.probe_seconds, results)}")

    result = cal.calibrate(parent, metric, target, tolerance, max_probes, on_probe,
                           hints.get(metric))
    hints[metric] = next_hint(result, finetune.LAMBDAS[metric][parent.quality])
    results.setdefault(metric, {})[parent.label] = result
    document["lambdas"].setdefault(metric, {})[parent.quality] = result["lambda"]
    log(f"[{n + 1}/{len(pairs)}] {metric} {parent.label}: lambda {result['lambda']:g} "
        f"{result['bpp']:.4f} bpp ({result['error']:+.1%}"
        f"{'' if result['converged'] else ', NOT within the tolerance'})")
    write(out, document)
  document["seconds"] = round(time.time() - started, 1)
  write(out, document)
  return document


def eta(pairs, n, probe_seconds, results):
  """'; ETA ~N min' for the remaining pairs from this process's mean probe time and probes per
  finished pair ('' before the first measured probe)."""
  if not probe_seconds:
    return ""
  per_probe = float(np.mean(probe_seconds))
  done = [len(r["probes"]) for per in results.values() for r in per.values()]
  per_pair = float(np.mean(done)) if done else 2.0
  remaining = (len(pairs) - n - 1) * per_pair * per_probe + per_probe  # + this pair's next one
  return f"; ETA ~{remaining / 60:.0f} min"


def write(out, document):
  """calibration.json (everything) and lambdas.json (the table configs/finetune.py reads)."""
  document["lambdas"] = lambda_table.to_json(lambda_table.validate(document["lambdas"]))
  for name, data in (("calibration.json", document), ("lambdas.json", document["lambdas"])):
    with atomic_path(os.path.join(out, name)) as tmp:
      with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
