"""`jaxcomp bench upsample`: the synthesis up-sampling layer, forward + backward.

Compares, on one 5x5 stride-2 transposed convolution (PyTorch ConvTranspose2d semantics):
  phase        jaxcomp's sub-pixel form (`codec.conv.upconv2d`), the one the codec uses;
  zero_insert  zero-insertion into a 2x tensor + ordinary convolution;
  lax          `lax.conv_transpose` (what flax.linen.ConvTranspose uses);
  torch        PyTorch's ConvTranspose2d, when torch is installed.
Ratios are against `phase`, measured in the same run.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcomp.bench import timing
from jaxcomp.codec import conv


def add_arguments(parser):
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--size", type=int, default=64, help="input height = width")
  parser.add_argument("--channels", type=int, default=128)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--budget", type=float, default=60.0, help="seconds per variant at most")
  parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def zero_insert_upconv(x, kernel, stride=2):
  """Zero-insertion + ordinary convolution (output padding stride + 2p - k, p = k // 2)."""
  b, h, w, c = x.shape
  k = kernel.shape[0]
  p = k // 2
  up = jnp.zeros((b, h * stride, w * stride, c), x.dtype).at[:, ::stride, ::stride].set(x)
  lo = k - 1 - p
  hi = lo + stride + 2 * p - k - (stride - 1)
  return lax.conv_general_dilated(up, kernel[::-1, ::-1], (1, 1), ((lo, hi), (lo, hi)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _grad_fn(f):
  return jax.jit(jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), argnums=(0, 1)))


def run(args):
  rng = np.random.default_rng(0)
  b, s, c = args.batch, args.size, args.channels
  x = rng.standard_normal((b, s, s, c)).astype(np.float32)
  kernel = (rng.standard_normal((5, 5, c, c)) / np.sqrt(25 * c)).astype(np.float32)
  variants = {"phase": conv.upconv2d, "zero_insert": zero_insert_upconv,
              "lax": conv.upconv2d_reference}
  results = {}
  for name, f in variants.items():
    results[name] = timing.time_call(_grad_fn(f), x, kernel, repeats=args.repeats,
                                     budget_s=args.budget)
  if timing.torch_available():
    import torch  # pylint: disable=g-import-not-at-top  (optional, checked just above)

    xt = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_()
    wt = torch.from_numpy(kernel.transpose(2, 3, 0, 1).copy()).requires_grad_()

    def torch_step():
      y = torch.nn.functional.conv_transpose2d(xt, wt, stride=2, padding=2, output_padding=1)
      (y**2).sum().backward()

    results["torch"] = timing.time_torch(torch_step, args.repeats, args.budget)
  base = results["phase"]["median_s"]
  print(f"5x5 stride-2 transposed conv {c}->{c}, input {b}x{s}x{s}, forward + backward")
  print(f"{'variant':<12} {'median s':>10} {'vs phase':>9}")
  for name, r in results.items():
    print(f"{name:<12} {r['median_s']:>10.4f} {r['median_s'] / base:>8.2f}x")
  summary = {"benchmark": "upsample", "batch": b, "size": s, "channels": c,
             "machine": timing.machine(),
             **{f"{name}_s": r["median_s"] for name, r in results.items()},
             **{f"{name}_{end}_s": r[f"{end}_s"] for name, r in results.items()
                for end in ("min", "max")},
             **{f"{name}_vs_phase": r["median_s"] / base for name, r in results.items()}}
  if args.json:
    timing.emit_json(summary)
  return 0
