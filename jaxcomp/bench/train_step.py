"""`jaxcomp bench train-step`: one training step (rate + lambda * 255^2 MSE, Adam), after
compilation, and CompressAI's same step in the same run when torch and CompressAI import.

With several local devices it also sweeps data-parallel scaling: the pmapped training step
(`jaxcomp.train.step.make_pmap_step`) on 1, 2, 4, ... and all local devices with `--batch` images
per device (weak scaling), reporting images/s, images/s per device and the efficiency relative to
one device. `--batch` is per device there; the first measurement uses one device.

The CompressAI step is the main loss with Adam (its separate auxiliary quantile optimizer is
left out: jaxcomp fits the quantiles after training instead). Both use random uniform batches.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxcomp.bench import flops, timing
from jaxcomp.codec import models
from jaxcomp.train import step


def add_arguments(parser):
  parser.add_argument("--arch", default="bmshj2018-hyperprior", choices=list(models.ARCHS))
  parser.add_argument("--quality", type=int, default=1, choices=range(1, 9),
                      help="CompressAI quality: picks (N, M)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--patch", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="compute dtype of the transforms (entropy models stay float32)")
  parser.add_argument("--peak-flops", type=float, default=None,
                      help="device peak FLOP/s for the MFU (default: jaxcomp.bench.flops' table, "
                      "or an estimate on CPUs)")
  parser.add_argument("--no-torch", action="store_true", help="skip the CompressAI side")
  parser.add_argument("--no-scaling", action="store_true",
                      help="skip the sweep over 1..N local devices (run when N > 1)")
  parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def _compressai_step(arch, N, M, x_nhwc, lmbda):
  """A callable running one CompressAI training step on the same batch."""
  # torch and CompressAI: optional references (checked by timing.torch_available first).
  import torch  # pylint: disable=g-import-not-at-top
  from compressai.models import MeanScaleHyperprior, ScaleHyperprior  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  net = (MeanScaleHyperprior if models.ARCHS[arch].mean_scale else ScaleHyperprior)(N, M)
  net.train()
  params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
  optimizer = torch.optim.Adam(params, lr=1e-4)
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
  pixels = x.shape[2] * x.shape[3]

  def run_step():
    optimizer.zero_grad()
    out = net(x)
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (-np.log(2) * pixels * x.shape[0])
    loss = bpp + lmbda * 255**2 * torch.nn.functional.mse_loss(out["x_hat"], x)
    loss.backward()
    optimizer.step()

  return run_step


def run(args):
  N, M = models.ARCHS[args.arch].channels[args.quality]
  lmbda = models.MSE_LAMBDAS[args.quality]
  model = models.build(args.arch, N, M, dtype=jnp.dtype(args.dtype))
  state = step.create_state(model, jax.random.PRNGKey(0))
  x = np.random.default_rng(0).uniform(size=(args.batch, args.patch, args.patch, 3)).astype(np.float32)
  key = jax.random.PRNGKey(1)

  holder = {"state": state}

  def one_step(x):
    holder["state"], metrics = step.train_step(holder["state"], x, key, lmbda)
    return metrics

  jax_time = timing.time_call(one_step, x, repeats=args.repeats, budget_s=120)
  result = {"benchmark": "train-step", "arch": args.arch, "N": N, "M": M, "batch": args.batch,
            "patch": args.patch, "step_s": jax_time["median_s"],
            "compile_s": jax_time["first_s"] - jax_time["median_s"],
            "images_per_s": args.batch / jax_time["median_s"],
            "images_per_s_per_device": args.batch / jax_time["median_s"],
            "dtype": args.dtype, "step_min_s": jax_time["min_s"], "step_max_s": jax_time["max_s"],
            "runs": jax_time["runs"], "machine": timing.machine()}
  peak, source = flops.peak_flops(jax.devices()[0], args.dtype, args.peak_flops)
  result.update(flops.utilisation(
      flops.compiled_flops(step.train_step, holder["state"], x, key, lmbda), jax_time["median_s"],
      peak, source))
  print(f"jaxcomp   {args.arch} N={N} M={M} batch {args.batch} patch {args.patch}: "
        f"{jax_time['median_s']:.3f} s/step (median of {jax_time['runs']}; first call "
        f"{jax_time['first_s']:.1f} s with compilation)")
  if result["mfu"] is not None:
    print(f"{result['flops_per_step'] / 1e9:.1f} GFLOP/step (XLA), "
          f"{result['achieved_flops_per_s'] / 1e12:.3f} TFLOP/s = {100 * result['mfu']:.2f}% of "
          f"{result['peak_flops_per_s'] / 1e12:.3f} TFLOP/s ({source})")
  if not args.no_torch and timing.torch_available("compressai"):
    import torch  # pylint: disable=g-import-not-at-top  (optional, checked just above)

    torch_time = timing.time_torch(_compressai_step(args.arch, N, M, x, lmbda), args.repeats, 120)
    result.update(compressai_step_s=torch_time["median_s"],
                  ratio_vs_compressai=jax_time["median_s"] / torch_time["median_s"],
                  torch_threads=torch.get_num_threads())
    print(f"CompressAI same step: {torch_time['median_s']:.3f} s/step "
          f"(median of {torch_time['runs']}, {torch.get_num_threads()} threads); "
          f"jaxcomp / CompressAI = {result['ratio_vs_compressai']:.2f}")
  if not args.no_scaling and jax.local_device_count() > 1:
    result["scaling"] = _scaling(model, lmbda, args)
  if args.json:
    timing.emit_json(result)
  return 0


def device_counts(n):
  """1, 2, 4, ... below n, then n."""
  counts = [1]
  while counts[-1] * 2 < n:
    counts.append(counts[-1] * 2)
  return counts + [n] if n > 1 else counts


def _scaling(model, lmbda, args):
  """Pmapped step time on 1..N local devices, `args.batch` images per device."""
  rows = []
  state = step.create_state(model, jax.random.PRNGKey(0))
  for count in device_counts(jax.local_device_count()):
    devices = tuple(jax.local_devices()[:count])
    p_step = step.make_pmap_step(step.mse_distortion, devices)
    holder = {"state": step.replicate(state, devices)}
    no_params = step.replicate(None, devices)
    firsts = args.batch * np.arange(count)
    x = np.random.default_rng(0).uniform(
        size=(count, args.batch, args.patch, args.patch, 3)).astype(np.float32)

    def one_step(x, p_step=p_step, holder=holder, no_params=no_params, firsts=firsts):
      holder["state"], metrics = p_step(holder["state"], x, jax.random.PRNGKey(1), lmbda,
                                        no_params, firsts, no_params)
      return metrics

    measured = timing.time_call(one_step, x, repeats=args.repeats, budget_s=120)
    images_per_s = count * args.batch / measured["median_s"]
    rows.append({"devices": count, "global_batch": count * args.batch,
                 "step_s": measured["median_s"], "images_per_s": images_per_s,
                 "images_per_s_per_device": images_per_s / count})
    rows[-1]["efficiency"] = rows[-1]["images_per_s_per_device"] / rows[0]["images_per_s_per_device"]
    print(f"pmap {count} device(s), {args.batch}/device: {measured['median_s']:.3f} s/step, "
          f"{images_per_s:.1f} images/s ({images_per_s / count:.1f} per device, "
          f"efficiency {rows[-1]['efficiency']:.2f})")
  return rows
