"""`jaxcomp bench train-step`: one training step (rate + lambda * 255^2 MSE, Adam), after
compilation, and CompressAI's same step in the same run when torch and CompressAI import.

The CompressAI step is the main loss with Adam (its separate auxiliary quantile optimizer is
left out: jaxcomp fits the quantiles after training instead). Both use random uniform batches.
"""

import jax
import numpy as np

from jaxcomp.bench import timing
from jaxcomp.codec import models
from jaxcomp.train import step


def add_arguments(parser):
  parser.add_argument("--arch", default="bmshj2018-hyperprior", choices=list(models.ARCHS))
  parser.add_argument("--quality", type=int, default=1, choices=range(1, 9),
                      help="CompressAI quality: picks (N, M)")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--patch", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--no-torch", action="store_true", help="skip the CompressAI side")
  parser.add_argument("--json", action="store_true", help="print a JSON object as the last line")


def _compressai_step(arch, N, M, x_nhwc, lmbda):
  """A callable running one CompressAI training step on the same batch."""
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
  model = models.build(args.arch, N, M)
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
            "images_per_s": args.batch / jax_time["median_s"], "machine": timing.machine()}
  print(f"jaxcomp   {args.arch} N={N} M={M} batch {args.batch} patch {args.patch}: "
        f"{jax_time['median_s']:.3f} s/step (median of {jax_time['runs']}; first call "
        f"{jax_time['first_s']:.1f} s with compilation)")
  if not args.no_torch and timing.torch_available("compressai"):
    import torch  # pylint: disable=g-import-not-at-top

    torch_time = timing.time_torch(_compressai_step(args.arch, N, M, x, lmbda), args.repeats, 120)
    result.update(compressai_step_s=torch_time["median_s"],
                  ratio_vs_compressai=jax_time["median_s"] / torch_time["median_s"],
                  torch_threads=torch.get_num_threads())
    print(f"CompressAI same step: {torch_time['median_s']:.3f} s/step "
          f"(median of {torch_time['runs']}, {torch.get_num_threads()} threads); "
          f"jaxcomp / CompressAI = {result['ratio_vs_compressai']:.2f}")
  if args.json:
    timing.emit_json(result)
  return 0
