"""Independent training at CPU scale: jaxcomp and CompressAI from scratch, same recipe, real files.

    taskset -c 0 python scripts/independent_training.py --work /tmp/independent \
        [--seeds 0,1] [--lmbdas 0.0067] [--steps 600] [--stage all|train|eval|report]

Both frameworks train bmshj2018-hyperprior (N=32, M=48) from scratch on 128x128 crops of
../shared/data/train, batch 8, Adam lr 1e-3 with a x0.1 drop at 80% of the steps, gradient
clipping 1.0, for each lambda (default 0.0067, CompressAI's quality 3) and seed:
  jaxcomp     `python -m jaxcomp.train --config=configs/hyperprior.py:q3 ...` (the real trainer;
              the seed sets init, noise and data order; quantiles refit by bisection at export);
  CompressAI  scripts/training_parity_torch.py train (examples/train.py's step with its aux
              quantile optimizer; torch seed; the same crops as jaxcomp's CropStream with that seed).
All runs go in parallel (pin the script with `taskset -c 0` to keep them on one core); each
run's CPU time comes from the OS (wait4 rusage, start-up and compilation included). Finished runs
(and evaluations) are kept, so a rerun with more lambdas or seeds trains only what is new.

Evaluation on ../shared/data/photos (held out) with real bitstreams: `jaxcomp export` +
`jaxcomp eval --metrics psnr`; CompressAI's own compress/decompress after `update()`, with its
aux-trained quantiles and, to isolate the quantile method, refit by bisection
(`update(update_quantiles=True)`). Per lambda: mean bpp / PSNR over the photos, the seed spread and
the rate-distortion cost bpp + lambda 255^2 MSE; over the lambdas: BD-rate and BD-PSNR (pchip) of
jaxcomp's mean curve against CompressAI's, of each jaxcomp seed against each CompressAI seed, and
of seed against seed within each framework. Writes WORK/summary.json,
docs/training_parity_independent.json (the figures) and docs/training_parity_independent.png (RD
points and training losses).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from jaxcomp.evaluate import bdrate  # pylint: disable=g-import-not-at-top,wrong-import-position

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
REF_PYTHON = os.path.expanduser("~/.cache/jaxcomp-refenv/bin/python")
REF_PATH = f"{SHARED}/refenv/stub:{SHARED}/refenv"
TORCH_SIDE = os.path.join(ROOT, "scripts", "training_parity_torch.py")
DOCS = os.path.join(ROOT, "docs")

ARCH, N, M, PATCH, BATCH, LR, DROP, CLIP = ("bmshj2018-hyperprior", 32, 48, 128, 8, 1e-3, 0.8, 1.0)
FRAMEWORKS = ("jaxcomp", "compressai")


def run_name(framework, lmbda, seed):
  """'jaxcomp-l0.0067-s0'; 'compressai-refit' names CompressAI's run coded with refit quantiles."""
  if framework == "compressai-refit":
    return run_name("compressai", lmbda, seed) + "-refit"
  return f"{framework}-l{lmbda:g}-s{seed}"


def ref_env():
  return {**os.environ, "PYTHONPATH": REF_PATH}


def jaxcomp_command(seed, lmbda, steps, workdir, data):
  return [sys.executable, "-m", "jaxcomp.train", "--config=configs/hyperprior.py:q3",
          f"--workdir={workdir}", f"--config.N={N}", f"--config.M={M}",
          f"--config.patch_size={PATCH}", f"--config.batch_size={BATCH}",
          f"--config.lmbda={lmbda}", f"--config.learning_rate={LR}",
          f"--config.lr_drop_fractions=({DROP},)", f"--config.grad_clip_norm={CLIP}",
          f"--config.num_train_steps={steps}", f"--config.seed={seed}",
          f"--config.data.dir={data}", "--config.data.cache_images=16",
          "--config.eval.every_steps=0", "--config.log_every_steps=100",
          f"--config.checkpoint_every_steps={steps}"]


def torch_command(seed, lmbda, steps, out, data):
  return [REF_PYTHON, TORCH_SIDE, "train", "--arch", ARCH, "--N", str(N), "--M", str(M),
          "--data", data, "--patch", str(PATCH), "--batch", str(BATCH), "--steps", str(steps),
          "--lmbda", str(lmbda), "--lr", str(LR), "--lr-drop-fraction", str(DROP),
          "--clip", str(CLIP), "--seed", str(seed), "--out", out]


def train(args):
  """Starts every run not yet done at once; adds {run: {'cpu_s', 'wall_s'}} to WORK/usage.json."""
  os.makedirs(args.work, exist_ok=True)
  usage_path = os.path.join(args.work, "usage.json")
  usage = {}
  if os.path.exists(usage_path):
    with open(usage_path) as f:
      usage = json.load(f)
  runs = {}
  for lmbda in args.lmbdas:
    for seed in args.seeds:
      name = run_name("jaxcomp", lmbda, seed)
      if name not in usage:
        runs[name] = (jaxcomp_command(seed, lmbda, args.steps, os.path.join(args.work, name),
                                      args.data), None)
      name = run_name("compressai", lmbda, seed)
      if name not in usage:
        runs[name] = (torch_command(seed, lmbda, args.steps, os.path.join(args.work, name),
                                    args.data), ref_env())
  procs, began = {}, time.time()
  for name, (command, env) in runs.items():
    log = open(os.path.join(args.work, f"{name}.log"), "w")  # pylint: disable=consider-using-with
    procs[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
  while procs:
    pid, status, rusage = os.wait4(-1, 0)
    name = next(n for n, p in procs.items() if p.pid == pid)
    del procs[name]
    if os.waitstatus_to_exitcode(status) != 0:
      sys.exit(f"error: {name} failed (see {args.work}/{name}.log)")
    usage[name] = {"cpu_s": rusage.ru_utime + rusage.ru_stime, "wall_s": time.time() - began}
    print(f"{name}: done, {usage[name]['cpu_s']:.0f} CPU s", flush=True)
    with open(usage_path, "w") as f:
      json.dump(usage, f, indent=1)


def run(command, env=None):
  subprocess.run(command, cwd=ROOT, env=env, check=True)


def evaluate(args):
  for lmbda in args.lmbdas:
    for seed in args.seeds:
      name = run_name("jaxcomp", lmbda, seed)
      model_dir = os.path.join(args.work, f"{name}-model")
      if not os.path.isdir(model_dir):
        run([sys.executable, "-m", "jaxcomp", "export", "--workdir",
             os.path.join(args.work, name), "--out", model_dir])
      out = os.path.join(args.work, f"eval-{name}.json")
      if not os.path.exists(out):
        run([sys.executable, "-m", "jaxcomp", "eval", "--model", model_dir, "--images",
             args.photos, "--metrics", "psnr", "--name", name, "--out", out])
      model = os.path.join(args.work, run_name("compressai", lmbda, seed), "model.npz")
      for refit in (False, True):
        name = run_name("compressai-refit" if refit else "compressai", lmbda, seed)
        out = os.path.join(args.work, f"eval-{name}.json")
        if not os.path.exists(out):
          run([REF_PYTHON, TORCH_SIDE, "eval", "--arch", ARCH, "--model", model, "--images",
               args.photos, "--name", name, "--out", out]
              + (["--refit-quantiles"] if refit else []), env=ref_env())


def _point(path):
  with open(path) as f:
    doc = json.load(f)
  return {"bpp": doc["results"]["bpp"][0], "psnr": doc["results"]["psnr-rgb"][0],
          "per_image": {k: (v["bpp"][0], v["psnr-rgb"][0]) for k, v in doc["per_image"].items()}}


def _jaxcomp_losses(log_path):
  """[(step, mean training loss over the log window)] from a jaxcomp training log."""
  pattern = re.compile(r"step (\d+)/\d+: loss ([0-9.eE+-]+)")
  with open(log_path) as f:
    return [(int(m.group(1)), float(m.group(2))) for m in map(pattern.search, f) if m]


def _bd(anchor, test):
  """(BD-rate %, BD-PSNR dB) of test vs anchor, each a list of (bpp, psnr) points (pchip)."""
  ra, qa = zip(*anchor)
  rt, qt = zip(*test)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    try:
      return (bdrate.bd_rate(ra, qa, rt, qt, "pchip", min_overlap=0.0),
              bdrate.bd_quality(ra, qa, rt, qt, "pchip", min_overlap=0.0))
    except bdrate.NoOverlapError:
      return float("nan"), float("nan")


def report(args):
  with open(os.path.join(args.work, "usage.json")) as f:
    usage = json.load(f)
  points = {}
  for lmbda in args.lmbdas:
    for seed in args.seeds:
      for fw in ("jaxcomp", "compressai", "compressai-refit"):
        name = run_name(fw, lmbda, seed)
        points[name] = _point(os.path.join(args.work, f"eval-{name}.json"))
  summary = {"recipe": {"arch": ARCH, "N": N, "M": M, "patch": PATCH, "batch": BATCH,
                        "lmbdas": args.lmbdas, "lr": LR, "lr_drop_fraction": DROP, "clip": CLIP,
                        "steps": args.steps, "seeds": args.seeds},
             "points": {k: {"bpp": v["bpp"], "psnr": v["psnr"]} for k, v in points.items()},
             "per_lambda": {}, "usage": usage}
  for lmbda in args.lmbdas:
    entry = {}
    for fw in ("jaxcomp", "compressai", "compressai-refit"):
      names = [run_name(fw, lmbda, s) for s in args.seeds]
      bpp = np.array([points[n]["bpp"] for n in names])
      psnr = np.array([points[n]["psnr"] for n in names])
      cost = bpp + lmbda * 255**2 * 10 ** (-psnr / 10)  # the training objective on the real files
      entry[fw] = {"bpp_mean": bpp.mean(), "bpp_spread": bpp.max() - bpp.min(),
                   "psnr_mean": psnr.mean(), "psnr_spread": psnr.max() - psnr.min(),
                   "rd_cost_mean": cost.mean(), "rd_cost_spread": cost.max() - cost.min()}
      entry[fw] = {k: float(v) for k, v in entry[fw].items()}
    j, c, r = entry["jaxcomp"], entry["compressai"], entry["compressai-refit"]
    entry["jaxcomp_vs_compressai"] = {
        "delta_bpp_percent": 100 * (j["bpp_mean"] / c["bpp_mean"] - 1),
        "delta_psnr_db": j["psnr_mean"] - c["psnr_mean"],
        "delta_rd_cost_percent": 100 * (j["rd_cost_mean"] / c["rd_cost_mean"] - 1)}
    entry["compressai_refit_vs_aux_quantiles"] = {
        "delta_bpp_percent": 100 * (r["bpp_mean"] / c["bpp_mean"] - 1),
        "delta_psnr_db": r["psnr_mean"] - c["psnr_mean"]}
    summary["per_lambda"][f"{lmbda:g}"] = entry
  if len(args.lmbdas) >= 2:
    curve = lambda fw, seeds: [
        (np.mean([points[run_name(fw, l, s)]["bpp"] for s in seeds]),
         np.mean([points[run_name(fw, l, s)]["psnr"] for s in seeds])) for l in args.lmbdas]
    mean_bd = _bd(curve("compressai", args.seeds), curve("jaxcomp", args.seeds))
    cross = [_bd(curve("compressai", [a]), curve("jaxcomp", [b]))
             for a in args.seeds for b in args.seeds]
    within = {fw: [_bd(curve(fw, [a]), curve(fw, [b])) for a in args.seeds for b in args.seeds
                   if a < b] for fw in FRAMEWORKS}
    summary["bd"] = {
        "jaxcomp_vs_compressai_mean_curves": {"bd_rate_percent": mean_bd[0],
                                              "bd_psnr_db": mean_bd[1]},
        "jaxcomp_seed_vs_compressai_seed": [{"bd_rate_percent": a, "bd_psnr_db": b}
                                            for a, b in cross],
        "seed_vs_seed_within_framework": {fw: [{"bd_rate_percent": a, "bd_psnr_db": b}
                                               for a, b in v] for fw, v in within.items()},
        "method": "pchip on the curves through the lambdas' points (mean over images)"}
  for fw in FRAMEWORKS:
    runs = [run_name(fw, l, s) for l in args.lmbdas for s in args.seeds]
    cpu = [usage[n]["cpu_s"] for n in runs if n in usage]
    summary.setdefault("cpu_s_per_step", {})[fw] = float(np.mean(cpu)) / args.steps
  with open(os.path.join(args.work, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(DOCS, "training_parity_independent.json"), "w") as f:
    json.dump(summary, f, indent=1)
  _plot(args, points, os.path.join(DOCS, "training_parity_independent.png"))
  print(json.dumps({k: v for k, v in summary.items() if k != "usage"}, indent=1))


def _plot(args, points, path):
  fig, (ax_rd, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
  styles = {"jaxcomp": ("tab:blue", "o", "-"), "compressai": ("tab:red", "s", "--")}
  for fw, (color, marker, line) in styles.items():
    for i, seed in enumerate(args.seeds):
      pts = [points[run_name(fw, l, seed)] for l in args.lmbdas]
      ax_rd.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], color=color, marker=marker,
                 ls=line, alpha=0.8, label=f"{fw} seed {seed}")
  for i, seed in enumerate(args.seeds):
    pts = [points[run_name("compressai-refit", l, seed)] for l in args.lmbdas]
    ax_rd.scatter([p["bpp"] for p in pts], [p["psnr"] for p in pts], facecolors="none",
                  edgecolors="tab:red", marker="s", s=110,
                  label="compressai, quantiles refit" if i == 0 else None)
  ax_rd.set_xlabel("bpp (real files, 10 held-out photos)")
  ax_rd.set_ylabel("PSNR-RGB [dB]")
  ax_rd.set_title(f"N={N}, M={M}, lambda {', '.join(f'{l:g}' for l in args.lmbdas)}, "
                  f"{args.steps} steps", fontsize=10)
  ax_rd.grid(alpha=0.3)
  ax_rd.legend(fontsize=7)
  window = 100
  for lmbda in args.lmbdas:
    for seed in args.seeds:
      first = lmbda == args.lmbdas[0] and seed == args.seeds[0]
      jl = _jaxcomp_losses(os.path.join(args.work, f"{run_name('jaxcomp', lmbda, seed)}.log"))
      window = jl[1][0] - jl[0][0] if len(jl) > 1 else window  # jaxcomp logs window means
      with open(os.path.join(args.work, run_name("compressai", lmbda, seed), "log.json")) as f:
        loss = np.array(json.load(f)["loss"])
      blocks = loss[:len(loss) // window * window].reshape(-1, window).mean(axis=1)
      ax_loss.plot(window * np.arange(1, len(blocks) + 1), blocks, color="tab:red", marker="s",
                   ls="--", alpha=0.7, label="compressai" if first else None)
      if jl:
        ax_loss.plot(*zip(*jl), color="tab:blue", marker="o", alpha=0.7,
                     label="jaxcomp" if first else None)
  ax_loss.set_yscale("log")
  ax_loss.set_xlabel("step")
  ax_loss.set_ylabel(f"training loss, mean over each {window} steps")
  ax_loss.grid(alpha=0.3)
  ax_loss.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--work", required=True, help="folder for the runs and evaluations")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--lmbdas", default="0.0067",
                      help="comma-separated; two or more give BD-rate / BD-PSNR (e.g. 0.0067,0.025)")
  parser.add_argument("--steps", type=int, default=600)
  parser.add_argument("--data", default=os.path.join(SHARED, "data", "train"))
  parser.add_argument("--photos", default=os.path.join(SHARED, "data", "photos"))
  parser.add_argument("--stage", default="all", choices=["all", "train", "eval", "report"])
  args = parser.parse_args()
  args.seeds = [int(s) for s in args.seeds.split(",")]
  args.lmbdas = [float(v) for v in args.lmbdas.split(",")]
  if args.stage in ("all", "train"):
    train(args)
  if args.stage in ("all", "eval"):
    evaluate(args)
  if args.stage in ("all", "report"):
    report(args)


if __name__ == "__main__":
  main()
