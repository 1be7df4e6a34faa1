"""CompressAI state_dict -> jaxcomp variables (bmshj2018-hyperprior, mbt2018-mean).

Name mapping (CompressAI -> jaxcomp 'params/...'):
  {g_a,g_s,h_a,h_s}.{i}.weight/bias   -> {...}/layer_{i}/kernel/bias
      Conv2d weight [O, I, k, k]            -> kernel [k, k, I, O]   (transpose 2, 3, 1, 0)
      ConvTranspose2d weight [I, O, k, k]   -> kernel [k, k, I, O]   (transpose 2, 3, 0, 1)
  {g_a,g_s}.{i}.beta/gamma            -> .../layer_{i}/beta/gamma (same reparametrized values)
  entropy_bottleneck.matrices.{i}     -> entropy_bottleneck/matrices_{i} (also legacy _matrix{i})
  entropy_bottleneck.quantiles [C,1,3] -> 'quantiles/entropy_bottleneck/z' [C, 3]
Buffers that CompressAI rebuilds with `update()` (CDF tables, offsets, bounds) are ignored: jaxcomp
builds its own tables from the density.
"""

import re

import numpy as np
from safetensors.numpy import load_file

from jaxcomp.codec import export, models
from jaxcomp.errors import UserError

_IGNORED = re.compile(
    r"(_offset|_quantized_cdf|_cdf_length|target|scale_table|scale_bound|pedestal|\.bound)$")
_TRANSPOSED = {"g_s": {0, 2, 4, 6}, "h_s": {0, 2}}


def _strip(state_dict):
  """Unwraps {'state_dict': ...} checkpoints and DataParallel 'module.' prefixes."""
  if "state_dict" in state_dict and isinstance(state_dict["state_dict"], dict):
    state_dict = state_dict["state_dict"]
  return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def infer_channels(state_dict):
  """(N, M) from the shapes of g_a's first and last convolutions."""
  try:
    return int(state_dict["g_a.0.weight"].shape[0]), int(state_dict["g_a.6.weight"].shape[0])
  except KeyError:
    raise UserError("not a CompressAI hyperprior state_dict (no g_a.0.weight / g_a.6.weight)") from None


def convert(arch, state_dict):
  """Maps a CompressAI state_dict (name -> numpy array) to jaxcomp variables.

  Args:
    arch: 'bmshj2018-hyperprior' or 'mbt2018-mean'.
    state_dict: {name: array-like}.

  Returns:
    (variables, N, M). Raises UserError on unknown, missing or mis-shaped entries.
  """
  state_dict = {k: np.asarray(v, np.float32) for k, v in _strip(state_dict).items()}
  N, M = infer_channels(state_dict)
  params, quantiles, unknown = {}, None, []
  for name, value in state_dict.items():
    if _IGNORED.search(name):
      continue
    parts = name.split(".")
    if parts[0] in ("g_a", "g_s", "h_a", "h_s") and len(parts) == 3:
      net, index, leaf = parts[0], int(parts[1]), parts[2]
      layer = params.setdefault(net, {}).setdefault(f"layer_{index}", {})
      if leaf == "weight":
        layer["kernel"] = value.transpose((2, 3, 0, 1) if index in _TRANSPOSED.get(net, ()) else
                                          (2, 3, 1, 0))
      elif leaf in ("bias", "beta", "gamma"):
        layer[leaf] = value
      else:
        unknown.append(name)
    elif parts[0] == "entropy_bottleneck":
      eb = params.setdefault("entropy_bottleneck", {})
      legacy = re.fullmatch(r"_(matrix|bias|factor)(\d+)", parts[1])
      if parts[1] == "quantiles":
        quantiles = value.reshape(value.shape[0], 3)
      elif len(parts) == 3 and parts[1] in ("matrices", "biases", "factors"):
        eb[f"{parts[1]}_{int(parts[2])}"] = value
      elif legacy:
        plural = {"matrix": "matrices", "bias": "biases", "factor": "factors"}[legacy.group(1)]
        eb[f"{plural}_{int(legacy.group(2))}"] = value
      else:
        unknown.append(name)
    else:
      unknown.append(name)
  if unknown:
    raise UserError(f"unexpected entries in the state_dict: {', '.join(sorted(unknown)[:5])}")
  if quantiles is None:
    raise UserError("the state_dict has no entropy_bottleneck.quantiles")
  variables = {"params": params, "quantiles": {"entropy_bottleneck": {"z": quantiles}}}
  export.check_shapes(models.build(arch, N, M), variables, f"{arch} state_dict")
  return variables, N, M


def to_state_dict(params):
  """jaxcomp 'params' (or a pytree shaped like them, e.g. gradients) -> {CompressAI name: array}.

  The inverse of `convert` for the trained parameters: kernels [k, k, I, O] back to Conv2d
  [O, I, k, k] or ConvTranspose2d [I, O, k, k], GDN beta/gamma and the entropy bottleneck's
  matrices/biases/factors as they are (no quantiles, no buffers).
  """
  sd = {}
  for net, layers in params.items():
    for layer, leaves in layers.items():
      if net == "entropy_bottleneck":
        kind, index = layer.rsplit("_", 1)
        sd[f"entropy_bottleneck.{kind}.{index}"] = np.asarray(leaves)
        continue
      index = int(layer.split("_")[1])
      for leaf, value in leaves.items():
        value = np.asarray(value)
        if leaf == "kernel":
          axes = (2, 3, 0, 1) if index in _TRANSPOSED.get(net, ()) else (3, 2, 0, 1)
          sd[f"{net}.{index}.weight"] = value.transpose(axes)
        else:
          sd[f"{net}.{index}.{leaf}"] = value
  return sd


def read_checkpoint(path):
  """{name: numpy array} from a CompressAI checkpoint.

  .pth/.pth.tar/.pt files need torch (the `torch` extra) and are read with
  `torch.load(weights_only=True)`, which refuses arbitrary pickled objects. .npz and .safetensors
  state_dicts are read without torch.
  """
  if path.endswith(".safetensors"):
    try:
      return dict(load_file(path))
    except Exception as e:  # pylint: disable=broad-except
      raise UserError(f"cannot read {path}: {e}") from None
  if path.endswith(".npz"):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except Exception as e:  # pylint: disable=broad-except  (zip, EOF, format errors)
      raise UserError(f"cannot read {path} as an .npz state_dict: {e}") from None
  try:  # torch only for .pth files: the `torch` extra, not the core install
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("reading a PyTorch checkpoint needs torch: pip install 'jaxcomp[torch]' "
                    "(or pass the state_dict as .npz/.safetensors)") from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UserError(f"cannot read {path} as a PyTorch checkpoint: {reason}") from None
  if not isinstance(obj, dict):
    raise UserError(f"{path} does not hold a state_dict")
  obj = _strip(obj)
  return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}
