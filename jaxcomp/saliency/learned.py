"""A learned saliency network: a small Flax decoder on VGG16 taps, and its weight files.

Architecture (about 136k trainable parameters with the defaults):

  image [B, H, W, 3] in [0, 1]
    -> bilinear resize (antialiased) to the model's input_size S x S (the size it was trained at:
       saliency depends on the whole image, so the model always sees whole images at one scale)
    -> ImageNet normalisation (as LPIPS: ((2x - 1) - shift) / scale) -> VGG16 (max-pool,
       frozen by default) taps relu3_3 [S/4], relu4_3 [S/8], relu5_3 [S/16]
    -> each tap divided by its per-image RMS (scale-free features; keeps random backbones usable),
       1x1 conv to `reduce` channels + ReLU, bilinear resize to the S/4 grid
    -> concatenated with `priors` learned Gaussian centre-bias maps (means and per-axis widths
       trained; the centre bias of ML-Net/SAM)
    -> two 3x3 convs (`width` channels, ReLU; the second dilated by 2) -> 1x1 conv -> logits
  Training (train.py): logits bilinearly upsampled to S x S, log-softmax over pixels = a fixation
  log-density, losses.py's KL / CC / NSS against maps resized to S x S.
  `predict`: logits upsampled to H x W, m = exp(logit - max logit), then per-image min-max to
  [0, 1] (dividing by max(range, 1e-6), so flat maps stay finite and the most salient pixel
  is exactly 1).

Inputs smaller than 16 px still work: everything runs at S x S. Backbones:
  "vgg16"        ImageNet VGG16 from the weights cache (`jaxcomp weights fetch`), not saved here.
  "random:SEED"  a random VGG16 (He-normal, numpy Generator(SEED); `random_backbone`): tests and
                 demos without the pretrained weights (rebuilt at load time, not saved).
  "included"     the backbone was fine-tuned: its weights are saved beside the decoder.

Files in a weights folder: `saliency.safetensors` (decoder, names like `Conv_0/kernel`),
`saliency.json` (format, config, training record) and, for "included", `backbone.safetensors`
(VGG16 layout of nets/vgg16.py). `save` writes the folder atomically; `load` checks the
format, every tensor's shape against the config and that all values are finite.
"""

import functools
import json
import os

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file, save_file

from jaxcomp.errors import UserError
from jaxcomp.fileio import atomic_path
from jaxcomp.nets import vgg16
from jaxcomp.nets import weights
from jaxcomp.registry import parse_spec

FORMAT = "jaxcomp-saliency-learned"
WEIGHTS_FILE = "saliency.safetensors"
META_FILE = "saliency.json"
BACKBONE_FILE = "backbone.safetensors"
DEFAULT_TAPS = ("relu3_3", "relu4_3", "relu5_3")
MIN_INPUT_SIZE = 32
RANGE_FLOOR = 1e-6
RMS_EPS = 1e-6


def default_config(input_size=256, backbone="vgg16", taps=DEFAULT_TAPS, reduce=32, width=64,
                   priors=4):
  """The architecture description stored in saliency.json (see the module docstring)."""
  config = {"input_size": int(input_size), "backbone": backbone, "taps": list(taps),
            "reduce": int(reduce), "width": int(width), "priors": int(priors)}
  check_config(config)
  return config


def check_config(config):
  """Raises ValueError for an unusable config."""
  if not isinstance(config.get("input_size"), int) or config["input_size"] < MIN_INPUT_SIZE:
    raise ValueError(f"input_size must be an integer >= {MIN_INPUT_SIZE}, "
                     f"got {config.get('input_size')!r}")
  taps = config.get("taps")
  if not taps or any(t not in vgg16.TAPS for t in taps) or len(set(taps)) != len(taps):
    raise ValueError(f"taps must be distinct names from {vgg16.TAPS}, got {taps!r}")
  for key in ("reduce", "width"):
    if not isinstance(config.get(key), int) or config[key] < 1:
      raise ValueError(f"{key} must be a positive integer, got {config.get(key)!r}")
  if not isinstance(config.get("priors"), int) or config["priors"] < 0:
    raise ValueError(f"priors must be a non-negative integer, got {config.get('priors')!r}")
  backbone = config.get("backbone")
  if not isinstance(backbone, str) or not (
      backbone in ("vgg16", "included") or _random_seed(backbone) is not None):
    raise ValueError(f"backbone must be 'vgg16', 'included' or 'random:SEED', got {backbone!r}")


def _random_seed(backbone):
  name, arg = parse_spec(backbone) if isinstance(backbone, str) else (None, None)
  if name == "random" and arg is not None:
    try:
      return int(arg)
    except ValueError:
      return None
  return None


class CentrePriors(nn.Module):
  """`count` Gaussian maps exp(-sum_axis (u - mu)^2 / (2 sigma^2)) on [-1, 1]^2, all trained."""

  count: int

  @nn.compact
  def __call__(self, height, width):
    mu = self.param("mu", nn.initializers.zeros, (self.count, 2))
    init_sigma = np.log(np.linspace(0.2, 0.8, self.count) if self.count > 1 else [0.4])
    log_sigma = self.param("log_sigma", lambda _, s: jnp.tile(
        jnp.asarray(init_sigma, jnp.float32)[:, None], (1, 2)), (self.count, 2))
    y = jnp.linspace(-1.0, 1.0, height)[:, None, None]
    x = jnp.linspace(-1.0, 1.0, width)[None, :, None]
    sigma2 = 2.0 * jnp.exp(2.0 * log_sigma)
    return jnp.exp(-((y - mu[:, 0]) ** 2 / sigma2[:, 0] + (x - mu[:, 1]) ** 2 / sigma2[:, 1]))


class Decoder(nn.Module):
  """VGG16 taps (list of [B, h_k, w_k, C_k], the first on the output grid) -> [B, h_0, w_0]."""

  reduce: int = 32
  width: int = 64
  priors: int = 4

  @nn.compact
  def __call__(self, taps):
    b, h, w, _ = taps[0].shape
    parts = []
    for k, t in enumerate(taps):
      t = t / (jnp.sqrt(jnp.mean(t * t, axis=(1, 2, 3), keepdims=True)) + RMS_EPS)
      r = nn.relu(nn.Conv(self.reduce, (1, 1), name=f"reduce_{k}")(t))
      if r.shape[1:3] != (h, w):
        r = jax.image.resize(r, (b, h, w, self.reduce), "bilinear")
      parts.append(r)
    if self.priors:
      prior = CentrePriors(self.priors, name="priors")(h, w)
      parts.append(jnp.broadcast_to(prior[None], (b, h, w, self.priors)))
    x = jnp.concatenate(parts, axis=-1)
    x = nn.relu(nn.Conv(self.width, (3, 3), padding=1, name="conv_0")(x))
    x = nn.relu(nn.Conv(self.width, (3, 3), padding=2, kernel_dilation=2, name="conv_1")(x))
    return nn.Conv(1, (1, 1), name="logits")(x)[..., 0]


def _decoder(config):
  return Decoder(reduce=config["reduce"], width=config["width"], priors=config["priors"])


def _tap_shapes(config):
  s = config["input_size"]
  sizes = {"relu1_2": s, "relu2_2": s // 2, "relu3_3": s // 4, "relu4_3": s // 8,
           "relu5_3": s // 16}
  channels = dict(zip(vgg16.TAPS, (64, 128, 256, 512, 512)))
  return [(1, max(sizes[t], 1), max(sizes[t], 1), channels[t]) for t in config["taps"]]


def init_decoder(key, config):
  """Random decoder variables for `config`."""
  dummies = [jnp.zeros(shape) for shape in _tap_shapes(config)]
  return jax.jit(_decoder(config).init)(key, dummies)  # eager init dispatches op by op: slow


def backbone_params(config):
  """VGG16 variables for "vgg16" (weights cache) and "random:SEED" backbones."""
  seed = _random_seed(config["backbone"])
  if seed is not None:
    return random_backbone(seed)
  if config["backbone"] == "vgg16":
    return vgg16.load_params()
  raise ValueError("an 'included' backbone is read from the weights folder")


def random_backbone(seed):
  """VGG16 variables with He-normal kernels and zero biases from numpy's Generator(seed).

  numpy (not jax.random) so that the same seed gives the same backbone in every jax version and
  without compiling the network's init; He scaling keeps activations O(1) through 13 ReLU layers.
  """
  rng = np.random.default_rng(seed)
  params, c_in = {}, 3
  for i, c_out in enumerate(weights.VGG16_CHANNELS):
    std = np.sqrt(2.0 / (9 * c_in))
    params[f"Conv_{i}"] = {
        "kernel": jnp.asarray(rng.standard_normal((3, 3, c_in, c_out), np.float32) * std),
        "bias": jnp.zeros((c_out,), jnp.float32)}
    c_in = c_out
  return {"params": params}


def init(key, config):
  """{'backbone': VGG16 variables, 'decoder': random decoder variables}."""
  return {"backbone": backbone_params(config), "decoder": init_decoder(key, config)}


def to_input_size(images, config):
  """[B, H, W, 3] in [0, 1] -> [B, S, S, 3] (antialiased bilinear; identity if already S x S)."""
  s = config["input_size"]
  images = jnp.asarray(images, jnp.float32)
  if images.shape[1:3] == (s, s):
    return images
  return jax.image.resize(images, (images.shape[0], s, s, 3), "bilinear", antialias=True)


def taps(backbone, images, config):
  """The configured VGG16 taps of [B, S, S, 3] images in [0, 1]: list of [B, h_k, w_k, C_k]."""
  x = (2.0 * images - 1.0 - jnp.asarray(vgg16.LPIPS_SHIFT)) / jnp.asarray(vgg16.LPIPS_SCALE)
  all_taps = dict(zip(vgg16.TAPS, vgg16.features(backbone, x, pool="max")))
  return [all_taps[t] for t in config["taps"]]


def logits_from_taps(decoder, features, config):
  """Decoder logits [B, h, w] on the first tap's grid."""
  return _decoder(config).apply(decoder, features)


def log_density(logits, height, width):
  """Logits [B, h, w] -> log-density [B, height, width] (bilinear upsampling, log-softmax)."""
  b = logits.shape[0]
  up = jax.image.resize(logits, (b, height, width), "bilinear")
  return jax.nn.log_softmax(up.reshape(b, -1), axis=-1).reshape(b, height, width)


def to_unit_range(logits, height, width):
  """Logits [B, h, w] -> saliency [B, height, width] in [0, 1] (see the module docstring)."""
  b = logits.shape[0]
  up = jax.image.resize(logits, (b, height, width), "bilinear")
  m = jnp.exp(up - jnp.max(up, axis=(1, 2), keepdims=True))
  low = jnp.min(m, axis=(1, 2), keepdims=True)
  return (m - low) / jnp.maximum(1.0 - low, RANGE_FLOOR)


def predict(params, images, config):
  """Saliency maps [B, H, W] in [0, 1] of images [B, H, W, 3] in [0, 1] (any H, W >= 1)."""
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"saliency: expected [B, H, W, 3] RGB images, got {tuple(images.shape)}")
  h, w = images.shape[1:3]
  features = taps(params["backbone"], to_input_size(images, config), config)
  return to_unit_range(logits_from_taps(params["decoder"], features, config), h, w)


def make_apply(config):
  """A jitted apply(params, images) -> [B, H, W] for `config` (hashable through its JSON)."""
  return _apply_for(json.dumps(config, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _apply_for(config_json):
  config = json.loads(config_json)
  return jax.jit(lambda params, images: predict(params, images, config))


# ---------------------------------------------------------------- files


def _flat(tree):
  return {k: np.asarray(v, np.float32)
          for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def save(path, params, config, meta):
  """Writes the folder `path`: decoder (and an 'included' backbone), config and `meta`."""
  check_config(config)
  with atomic_path(path) as tmp:
    os.makedirs(tmp)
    save_file(_flat(params["decoder"]["params"]), os.path.join(tmp, WEIGHTS_FILE))
    if config["backbone"] == "included":
      save_file(_flat(params["backbone"]["params"]), os.path.join(tmp, BACKBONE_FILE))
    with open(os.path.join(tmp, META_FILE), "w") as f:
      json.dump({"format": FORMAT, "version": 1, "config": config, "meta": meta}, f, indent=1)


def _read_tensors(file, expected):
  """{flat name: array} from a safetensors file, checked against {flat name: shape}."""
  if not os.path.isfile(file):
    raise UserError(f"{file}: missing (make weights with `jaxcomp saliency train`)")
  try:
    tensors = load_file(file)
  except Exception as e:  # safetensors raises its own error types
    raise UserError(f"{file}: cannot read ({e})") from e
  got = {k: tuple(v.shape) for k, v in tensors.items()}
  if got != expected:
    missing = sorted(set(expected) - set(got))
    wrong = sorted(k for k in expected if k in got and got[k] != expected[k])
    extra = sorted(set(got) - set(expected))
    raise UserError(f"{file}: tensors do not match saliency.json's config (missing {missing}, "
                    f"wrong shape {wrong}, unexpected {extra})")
  for name, value in tensors.items():
    if not np.all(np.isfinite(value)):
      raise UserError(f"{file}: {name} has NaN or infinite values")
  return {k: jnp.asarray(v, jnp.float32) for k, v in tensors.items()}


def _shapes(tree):
  return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(tree, sep="/").items()}


def load(path):
  """(params, config, meta) from a folder written by `save` (UserError if missing or invalid)."""
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise UserError(f"{path}: not a folder of learned saliency weights "
                    "(make one with `jaxcomp saliency train`)")
  meta_file = os.path.join(path, META_FILE)
  if not os.path.isfile(meta_file):
    raise UserError(f"{meta_file}: missing (make weights with `jaxcomp saliency train`)")
  with open(meta_file) as f:
    try:
      record = json.load(f)
    except ValueError as e:
      raise UserError(f"{meta_file}: not JSON ({e})") from e
  if not isinstance(record, dict) or record.get("format") != FORMAT:
    raise UserError(f"{meta_file}: not a {FORMAT} file")
  config = record.get("config")
  try:
    if not isinstance(config, dict):
      raise ValueError("no config object")
    check_config(config)
  except ValueError as e:
    raise UserError(f"{meta_file}: bad config ({e})") from e
  expected = _shapes(jax.eval_shape(lambda: init_decoder(jax.random.PRNGKey(0), config))["params"])
  decoder = {"params": traverse_util.unflatten_dict(
      _read_tensors(os.path.join(path, WEIGHTS_FILE), expected), sep="/")}
  if config["backbone"] == "included":
    expected = {k: tuple(v) for k, v in weights.BUNDLES["vgg16"][1].items()}
    backbone = {"params": traverse_util.unflatten_dict(
        _read_tensors(os.path.join(path, BACKBONE_FILE), expected), sep="/")}
  else:
    backbone = backbone_params(config)
  return {"backbone": backbone, "decoder": decoder}, config, record.get("meta", {})
