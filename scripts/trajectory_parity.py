"""Trajectory parity: 200 Adam steps in jaxcomp and CompressAI from the same weights, batches, noise.

    taskset -c 0 python scripts/trajectory_parity.py --work /tmp/trajectory [--steps 200]

1. CompressAI (reference environment, scripts/training_parity_torch.py init) builds
   bmshj2018-hyperprior N=32, M=48 with torch seed 0: the initial weights of both sides.
2. Batches: jaxcomp's CropStream (seed 0) over ../shared/data/train, 4 crops of 128x128 per step;
   noise: U(-1/2, 1/2) for y and z from numpy, step by step. Both go to WORK/inputs.npz.
3. CompressAI trains on them as examples/train.py does (RateDistortionLoss, Adam lr 1e-4,
   clip_grad_norm_ 1.0, aux Adam 1e-3 on the quantiles), the noise patched in
   (training_parity_torch.py trajectory).
4. jaxcomp trains on them with `jaxcomp.train.parity` (its model, loss and gradients) and the
   trainer's optimizer (`jaxcomp.train.train._optimizer`: optax clip_by_global_norm(1.0) + Adam).
5. Compared per step: the losses and ||theta_jax - theta_torch|| relative to ||theta_torch|| and
   to the distance travelled ||theta_torch - theta_0|| (CompressAI's layout, quantiles excluded);
   the float-drift control is CompressAI against itself in float64 (the same run, same inputs).
   Every stage's result is kept in WORK and reused by a rerun.
6. Quantiles: CompressAI's aux-trained ones after the run vs jaxcomp's bisection refit
   (`entropy_bottleneck.fit_quantiles`) of the same density, and what each does to the coded size
   of a few held-out photos: CompressAI's own coder with aux / bisection quantiles, and jaxcomp's
   coder (`jaxcomp convert compressai` + `jaxcomp eval`) with either set.
Writes docs/training_parity_trajectory.png and docs/training_parity_trajectory.json.
"""

import argparse
import json
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import optax  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxcomp.codec import compressai_import, entropy_bottleneck  # pylint: disable=wrong-import-position
from jaxcomp.train import input_pipeline, parity, train  # pylint: disable=wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
REF_PYTHON = os.path.expanduser("~/.cache/jaxcomp-refenv/bin/python")
TORCH_SIDE = os.path.join(ROOT, "scripts", "training_parity_torch.py")
DOCS = os.path.join(ROOT, "docs")
ARCH, N, M, PATCH, BATCH, LMBDA, LR, CLIP, SEED = (
    "bmshj2018-hyperprior", 32, 48, 128, 4, 0.0067, 1e-4, 1.0, 0)
CODING_PHOTOS = ("kite.png", "path.png", "autumn.png")


def ref(command):
  env = {**os.environ, "PYTHONPATH": f"{SHARED}/refenv/stub:{SHARED}/refenv"}
  subprocess.run([REF_PYTHON, TORCH_SIDE] + command, cwd=ROOT, env=env, check=True)


def make_inputs(work, steps, data):
  """(initial state_dict, batches, noise_y, noise_z), written to (or read back from) WORK."""
  path = os.path.join(work, "inputs.npz")
  if os.path.exists(path):
    with np.load(path) as f:
      if f["batches"].shape[0] == steps:
        return ({k[3:]: f[k] for k in f.files if k.startswith("sd/")}, f["batches"],
                f["noise_y"], f["noise_z"])
  init_path = os.path.join(work, "init.npz")
  ref(["init", "--arch", ARCH, "--N", str(N), "--M", str(M), "--seed", str(SEED),
       "--out", init_path])
  with np.load(init_path) as f:
    sd = {k: f[k] for k in f.files}
  stream = input_pipeline.CropStream(input_pipeline.ImageFolder(data, PATCH, 16), PATCH, SEED)
  batches = np.stack([np.round(stream.batch(t * BATCH, BATCH) * 255).astype(np.uint8)
                      for t in range(steps)])
  rng = np.random.default_rng(SEED)
  noise_y = rng.uniform(-0.5, 0.5, (steps, BATCH, PATCH // 16, PATCH // 16, M)).astype(np.float32)
  noise_z = rng.uniform(-0.5, 0.5, (steps, BATCH, PATCH // 64, PATCH // 64, N)).astype(np.float32)
  np.savez(os.path.join(work, "inputs.npz"), arch=ARCH, lmbda=LMBDA, lr=LR, clip=CLIP,
           batches=batches, noise_y=noise_y, noise_z=noise_z,
           **{f"sd/{k}": v for k, v in sd.items()})
  return sd, batches, noise_y, noise_z


def run_jaxcomp(work, sd, batches, noise_y, noise_z, names):
  """jaxcomp's side: (final state_dict, per-step (loss, bpp, mse), flat parameters per step in
  CompressAI's layout and the order `names`); kept in WORK/jax.npz."""
  path = os.path.join(work, "jax.npz")
  if os.path.exists(path):
    with np.load(path) as f:
      if f["losses"].shape[0] == len(batches):
        return {k[3:]: f[k] for k in f.files if k.startswith("sd/")}, f["losses"], f["params"]
  params, n, m = parity._params(ARCH, sd)  # pylint: disable=protected-access
  assert (n, m) == (N, M)
  value_and_grad = parity._value_and_grad(ARCH, N, M)  # pylint: disable=protected-access
  tx, _ = train._optimizer(LR, (), CLIP)  # pylint: disable=protected-access
  opt_state = tx.init(params)
  losses, flat = [], None
  for t in range(len(batches)):
    x = batches[t].astype(np.float32) / 255.0
    (loss, (bpp, mse)), grads = value_and_grad(params, x, {"y": noise_y[t], "z": noise_z[t]},
                                               LMBDA)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    losses.append((float(loss), float(bpp), float(mse)))
    sd_t = compressai_import.to_state_dict(params)
    vec = np.concatenate([np.asarray(sd_t[k], np.float32).ravel() for k in names])
    if flat is None:
      flat = np.zeros((len(batches), vec.size), np.float32)
    flat[t] = vec
  final = compressai_import.to_state_dict(params)
  np.savez(path, losses=np.array(losses), params=flat, **{f"sd/{k}": v for k, v in final.items()})
  return final, np.array(losses), flat


def coded_sizes(work, torch_sd, jax_sd, photos):
  """Mean bpp and PSNR of a few photos coded with aux-trained vs bisection-refit quantiles."""
  folder = os.path.join(work, "photos")
  os.makedirs(folder, exist_ok=True)
  for name in CODING_PHOTOS:
    link = os.path.join(folder, name)
    if not os.path.exists(link):
      os.symlink(os.path.join(photos, name), link)
  torch_model = os.path.join(work, "torch_final.npz")
  np.savez(torch_model, **torch_sd)
  sizes = {}
  for refit in (False, True):
    key = "compressai_coder_" + ("bisection" if refit else "aux")
    out = os.path.join(work, f"{key}.json")
    if not os.path.exists(out):
        ref(["eval", "--arch", ARCH, "--model", torch_model, "--images", folder, "--name", key,
           "--out", out] + (["--refit-quantiles"] if refit else []))
    sizes[key] = _mean_point(out)
  # jaxcomp's coder: the torch weights with their aux quantiles, and jaxcomp's final weights with
  # the bisection refit of their own density.
  jax_sd = dict(jax_sd)
  jax_sd["entropy_bottleneck.quantiles"] = np.zeros((N, 1, 3), np.float32)
  eb_jax = compressai_import.convert(ARCH, jax_sd)[0]["params"]["entropy_bottleneck"]
  jax_sd["entropy_bottleneck.quantiles"] = np.asarray(
      entropy_bottleneck.fit_quantiles(eb_jax))[:, None, :]
  variants = {"jaxcomp_coder_aux": {k: v for k, v in torch_sd.items()},
              "jaxcomp_coder_bisection": jax_sd}
  for key, sd in variants.items():
    ckpt = os.path.join(work, f"{key}.npz")
    np.savez(ckpt, **sd)
    model_dir = os.path.join(work, f"{key}-model")
    if not os.path.isdir(model_dir):
      subprocess.run([sys.executable, "-m", "jaxcomp", "convert", "compressai", "--arch", ARCH,
                      "--checkpoint", ckpt, "--out", model_dir], check=True, cwd=ROOT)
    out = os.path.join(work, f"{key}.json")
    if not os.path.exists(out):
      subprocess.run([sys.executable, "-m", "jaxcomp", "eval", "--model", model_dir, "--images",
                      folder, "--metrics", "psnr", "--name", key, "--out", out], check=True,
                     cwd=ROOT)
    sizes[key] = _mean_point(out)
  return sizes


def _mean_point(path):
  with open(path) as f:
    doc = json.load(f)
  return {"bpp": doc["results"]["bpp"][0], "psnr": doc["results"]["psnr-rgb"][0]}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work", required=True)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--data", default=os.path.join(SHARED, "data", "train"))
  parser.add_argument("--photos", default=os.path.join(SHARED, "data", "photos"))
  args = parser.parse_args()
  os.makedirs(args.work, exist_ok=True)
  sd, batches, noise_y, noise_z = make_inputs(args.work, args.steps, args.data)
  runs = {}

  def torch_run(dtype, file):
    path = os.path.join(args.work, file)
    if not os.path.exists(path):
      ref(["trajectory", "--work", args.work, "--dtype", dtype])
    with np.load(path) as f:
      runs[dtype] = {k: f[k] for k in f.files}

  torch_run("float32", "torch.npz")
  torch_out = runs["float32"]
  names = [str(n) for n in torch_out["names"]]
  jax_sd, jax_losses, jax_flat = run_jaxcomp(args.work, sd, batches, noise_y, noise_z, names)
  torch_run("float64", "torch64.npz")
  theta0 = np.concatenate([sd[k].ravel() for k in names]).astype(np.float64)
  torch_flat = torch_out["params"].astype(np.float64)
  torch64_flat = runs["float64"]["params"]
  travel = np.linalg.norm(torch64_flat - theta0, axis=1)
  norm = np.linalg.norm(torch64_flat, axis=1)
  diff = np.linalg.norm(jax_flat - torch_flat, axis=1)
  drift = {"jaxcomp_vs_compressai": diff,
           "jaxcomp_vs_compressai_float64": np.linalg.norm(jax_flat - torch64_flat, axis=1),
           "compressai_vs_compressai_float64": np.linalg.norm(torch_flat - torch64_flat, axis=1)}
  rel_norm = diff / norm
  rel_travel = diff / travel
  loss_rel = np.abs(jax_losses[:, 0] - torch_out["loss"]) / np.abs(torch_out["loss"])
  loss_rel64 = np.abs(torch_out["loss"] - runs["float64"]["loss"]) / np.abs(runs["float64"]["loss"])

  torch_sd = {k[3:]: v for k, v in torch_out.items() if k.startswith("sd/")}
  q_aux = torch_sd["entropy_bottleneck.quantiles"][:, 0, :]
  eb_torch = compressai_import.convert(ARCH, torch_sd)[0]["params"]["entropy_bottleneck"]
  q_bisect = np.asarray(entropy_bottleneck.fit_quantiles(eb_torch))
  sizes = coded_sizes(args.work, torch_sd, jax_sd, args.photos)

  summary = {
      "recipe": {"arch": ARCH, "N": N, "M": M, "patch": PATCH, "batch": BATCH, "lmbda": LMBDA,
                 "lr": LR, "clip": CLIP, "steps": args.steps, "torch_seed": SEED},
      "loss_rel_diff": {"max": float(loss_rel.max()), "final": float(loss_rel[-1]),
                        "first": float(loss_rel[0])},
      "param_rel_diff_to_norm": {"step1": float(rel_norm[0]), "final": float(rel_norm[-1]),
                                 "max": float(rel_norm.max())},
      "param_rel_diff_to_travel": {"step1": float(rel_travel[0]), "final": float(rel_travel[-1]),
                                   "max": float(rel_travel.max())},
      "relative_to_travel_at_steps_1_25_50_100_200": {
          k: [float(v[i] / travel[i]) for i in (0, 24, 49, 99, len(v) - 1) if i < len(v)]
          for k, v in drift.items()},
      "float64_control": {"compressai_loss_rel_diff_max": float(loss_rel64.max()),
                          "compressai_loss_rel_diff_final": float(loss_rel64[-1]),
                          "compressai_param_rel_diff_to_norm_final":
                              float(drift["compressai_vs_compressai_float64"][-1] / norm[-1])},
      "loss_first_last": {"compressai": [float(torch_out["loss"][0]), float(torch_out["loss"][-1])],
                          "jaxcomp": [float(jax_losses[0, 0]), float(jax_losses[-1, 0])]},
      "quantiles_after_run": {
          "aux_median_abs_mean": float(np.abs(q_aux[:, 1]).mean()),
          "aux_vs_bisection_median_abs_diff_mean": float(np.abs(q_aux[:, 1] - q_bisect[:, 1]).mean()),
          "aux_tail_width_mean": float((q_aux[:, 2] - q_aux[:, 0]).mean()),
          "bisection_tail_width_mean": float((q_bisect[:, 2] - q_bisect[:, 0]).mean()),
          "aux_loss_first_last": [float(torch_out["aux_loss"][0]), float(torch_out["aux_loss"][-1])]},
      "coded": sizes,
      "cpu_s": {"compressai": float(torch_out["cpu_s"])},
  }
  with open(os.path.join(DOCS, "training_parity_trajectory.json"), "w") as f:
    json.dump(summary, f, indent=1)
  _plot(torch_out["loss"], jax_losses[:, 0], {k: v / travel for k, v in drift.items()},
        os.path.join(DOCS, "training_parity_trajectory.png"))
  print(json.dumps(summary, indent=1))


def _plot(torch_loss, jax_loss, rel_travel, path):
  steps = np.arange(1, len(torch_loss) + 1)
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
  ax1.plot(steps, torch_loss, color="tab:red", label="CompressAI 1.2.8", lw=2.5, alpha=0.6)
  ax1.plot(steps, jax_loss, color="tab:blue", label="jaxcomp", lw=1)
  ax1.set_xlabel("step")
  ax1.set_ylabel("loss (bpp + lambda 255^2 MSE)")
  ax1.set_yscale("log")
  ax1.set_title("same init, batches and noise; Adam 1e-4, clip 1.0", fontsize=10)
  ax1.legend()
  ax1.grid(alpha=0.3)
  labels = {"jaxcomp_vs_compressai": ("jaxcomp vs CompressAI (float32)", "tab:blue", "-"),
            "jaxcomp_vs_compressai_float64": ("jaxcomp vs CompressAI float64", "tab:purple", ":"),
            "compressai_vs_compressai_float64": ("CompressAI float32 vs float64 (float drift)",
                                                 "tab:red", "--")}
  for key, values in rel_travel.items():
    label, color, line = labels[key]
    ax2.semilogy(steps, values, color=color, ls=line, label=label)
  ax2.set_xlabel("step")
  ax2.set_ylabel("|theta_a - theta_b| / |theta_t - theta_0|")
  ax2.set_title("parameter difference relative to the distance travelled", fontsize=10)
  ax2.legend(fontsize=8)
  ax2.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


if __name__ == "__main__":
  main()
