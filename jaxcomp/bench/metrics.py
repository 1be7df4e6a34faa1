"""`jaxcomp bench metrics`: forward + backward time of each metric loss, JAX vs PyTorch reference.

For a batch of B random HxW RGB images (default 8 of 256x256) it times
`jax.jit(jax.value_and_grad(sum of loss))` (median of --repeats after compilation; compile time
reported separately) and, when the reference package is importable in this interpreter, the
same in PyTorch: `loss.sum().backward()` w.r.t. the distorted image.

    metric   reference
    mse      torch.nn.functional.mse_loss
    ssim     pytorch_msssim 1.0.0 ssim(data_range=1)           (loss 1 - SSIM)
    ms_ssim  pytorch_msssim 1.0.0 ms_ssim(data_range=1)        (loss 1 - MS-SSIM)
    gmsd     piq 0.8.0 gmsd(data_range=1)
    lpips    lpips 0.1.4 LPIPS(net='vgg')
    dists    DISTS_pytorch 0.1 DISTS()
    fsim     piq 0.8.0 fsim(chromatic=True)                    (loss 1 - FSIMc)
    vsi      piq 0.8.0 vsi                                     (loss 1 - VSI)
    nlpd     pyiqa nlpd_arch.NLPD

The references' VGG16 holds random weights when torchvision has none (times do not depend on
the values). `speedup` = reference time / JAX time. With --json the last stdout line is
{"batch": B, "size": [H, W], "metrics": {name: {"jax_s", "compile_s", "ref_s", "speedup", ...}}}.
"""

import importlib.metadata
import json
import time

import jax
import numpy as np

from jaxcomp.bench import timing
from jaxcomp.errors import UserError
from jaxcomp.metrics import registry

DEFAULT_METRICS = ("mse", "ssim", "ms_ssim", "gmsd", "lpips", "dists", "fsim", "vsi", "nlpd")


def add_arguments(parser):
  parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                      help="comma-separated loss names (default: %(default)s)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
  parser.add_argument("--repeats", type=int, default=5, help="timed runs after compilation")
  parser.add_argument("--no-reference", action="store_true", help="skip the PyTorch references")
  parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def _time_jax(name, x, y, repeats):
  metric = registry.loss(name)
  step = jax.jit(jax.value_and_grad(lambda p, x, y: metric.loss_fn(p, x, y).sum(), argnums=1))
  x, y = jax.device_put(x), jax.device_put(y)
  start = time.perf_counter()
  jax.block_until_ready(step(metric.params, x, y))
  compile_s = time.perf_counter() - start
  run_s = timing.median_s(lambda: jax.block_until_ready(step(metric.params, x, y)), repeats)
  return run_s, compile_s


def _version(distribution):
  try:
    return importlib.metadata.version(distribution)
  except importlib.metadata.PackageNotFoundError:
    return "?"


def _reference_loss(name):
  """(torch loss fn (x, y) -> [B], description), or None when the package is not importable."""
  try:  # torch and the reference packages: optional, absent from the core install
    import torch  # pylint: disable=g-import-not-at-top
    if name == "mse":
      return (lambda x, y: torch.mean((x - y) ** 2, dim=(1, 2, 3))), f"torch {torch.__version__}"
    if name in ("ssim", "ms_ssim"):
      import pytorch_msssim  # pylint: disable=g-import-not-at-top
      fn = getattr(pytorch_msssim, name)
      return ((lambda x, y: 1 - fn(x, y, data_range=1.0, size_average=False)),
              f"pytorch_msssim {_version('pytorch-msssim')}")
    if name == "gmsd":
      import piq  # pylint: disable=g-import-not-at-top
      return ((lambda x, y: piq.gmsd(x, y, data_range=1.0, reduction="none")),
              f"piq {piq.__version__}")
    if name == "lpips":
      import lpips  # pylint: disable=g-import-not-at-top
      model = lpips.LPIPS(net="vgg", version="0.1", verbose=False).eval()
      return (lambda x, y: model(x, y, normalize=True).reshape(-1)), f"lpips {_version('lpips')}"
    if name == "dists":
      from DISTS_pytorch import DISTS  # pylint: disable=g-import-not-at-top
      model = DISTS(load_weights=False).eval()
      return ((lambda x, y: model(x, y, require_grad=True)),
              f"DISTS_pytorch {_version('dists-pytorch')}")
    if name in ("fsim", "fsim_gray", "vsi"):
      import piq  # pylint: disable=g-import-not-at-top
      if name == "vsi":
        return ((lambda x, y: 1 - piq.vsi(x, y, data_range=1.0, reduction="none")),
                f"piq {piq.__version__}")
      chromatic = name == "fsim"
      return ((lambda x, y: 1 - piq.fsim(x, y, data_range=1.0, chromatic=chromatic,
                                         reduction="none")), f"piq {piq.__version__}")
    if name == "nlpd":
      from pyiqa.archs.nlpd_arch import NLPD  # pylint: disable=g-import-not-at-top
      model = NLPD()
      return (lambda x, y: model(x, y)), f"pyiqa {_version('pyiqa')} (nlpd_arch)"
  except Exception:  # pylint: disable=broad-except  (any import/construction failure: no reference)
    return None
  return None


def _time_reference(name, x, y, repeats):
  ref = _reference_loss(name)
  if ref is None:
    return None, None
  import torch  # pylint: disable=g-import-not-at-top

  fn, description = ref
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
  ty = torch.from_numpy(y).permute(0, 3, 1, 2).contiguous()

  def step():
    tx.grad = None
    fn(tx, ty).sum().backward()

  step()  # warm-up
  return timing.median_s(step, repeats), description


def run(args):
  names = [n.strip() for n in args.metrics.split(",") if n.strip()]
  rng = np.random.RandomState(0)
  h, w = args.size
  y = rng.rand(args.batch, h, w, 3).astype(np.float32)
  x = np.clip(y + 0.1 * rng.randn(*y.shape), 0, 1).astype(np.float32)
  results = {}
  print(f"fwd+bwd, batch {args.batch} of {h}x{w}, median of {args.repeats} after compilation")
  print(f"{'metric':10s}{'jax s':>10s}{'compile s':>11s}{'ref s':>10s}{'speedup':>9s}  reference")
  for name in names:
    try:
      jax_s, compile_s = _time_jax(name, x, y, args.repeats)
    except UserError as e:
      results[name] = {"skipped": str(e)}
      print(f"{name:10s} skipped: {e}")
      continue
    entry = {"jax_s": jax_s, "compile_s": compile_s}
    ref_s, description = (None, None) if args.no_reference else _time_reference(
        name, x, y, args.repeats)
    if ref_s is not None:
      entry.update(ref_s=ref_s, reference=description, speedup=ref_s / jax_s)
    results[name] = entry
    ref_text = (f"{ref_s:10.4f}{ref_s / jax_s:9.2f}  {description}" if ref_s is not None
                else f"{'-':>10s}{'-':>9s}  (not importable)")
    print(f"{name:10s}{jax_s:10.4f}{compile_s:11.2f}{ref_text}", flush=True)
  if args.json:
    print(json.dumps({"batch": args.batch, "size": [h, w], "metrics": results}))
  return 0
