"""Does saliency-driven fine-tuning move bits and quality into the salient region? (issue #9)

From one tiny MSE checkpoint, fine-tune for the same number of steps, at the same learning rate
schedule and at each lambda of --lambda-factors (x the MSE lambda of quality 3):
  (a) plainly:  configs/saliency.py:tiny,plain   (255^2 MSE, no saliency), and
  (b) saliency: configs/saliency.py:tiny         (mse@saliency with weights normalise(1 + alpha S),
                and S, the SDSP map of the whole image, as a fourth input channel of g_a;
                --modes may add 'hyper', S into h_a, and 'step', adaptive quantization steps),
(with 'step', (a) gets the same step branch, configs/saliency.py:tiny,plain,step, so that the arms
differ only in the saliency weighting and inputs),
then evaluate every model with `jaxcomp eval --saliency sdsp` on held-back photos (real
bitstreams; the salient region is the top --fraction of each image's SDSP map). At every (a)
point inside (b)'s rate range, (b)'s curve is interpolated (linear in log bpp) at (a)'s total bpp,
so the arms are compared at matched total rate:

    salient_bits_share   share of the bits spent inside the salient region
    psnr_salient         PSNR inside the region;  psnr_nonsalient outside;  psnr-rgb overall

    python scripts/saliency_experiment.py --photos ../shared/data/photos --out runs/salexp

The photos are split by sorted name: the last --heldout are held back, the others train. Each
stage is skipped when its output exists (rerun to resume); --base reuses an MSE workdir. Writes
<out>/experiment.json, <out>/experiment.png and the rate-map overlays under <out>/rate_maps/.
About 45 minutes on a 2-core CPU with the defaults (the base: 3000 steps at --patch-size crops).
scripts/saliency_headroom.py tells how much any bit allocation could gain with such a model.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # run from a checkout without installing
KEYS = ("bpp", "salient_bits_share", "psnr_salient", "psnr_nonsalient", "psnr-rgb")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _run(args, log):
  """Runs a command with the repo on PYTHONPATH; its output goes to `log`; exits on failure."""
  env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
  print("$ " + " ".join(args), flush=True)
  with open(log, "w") as f:
    code = subprocess.call(args, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO)
  if code:
    sys.exit(f"error: the command above failed (exit {code}); see {log}")


def split_photos(photos, out, heldout):
  """Links the photos into out/train and out/heldout; returns the two folders."""
  names = sorted(n for n in os.listdir(photos) if n.lower().endswith(IMAGE_EXTENSIONS))
  if len(names) <= heldout:
    sys.exit(f"error: {photos} has {len(names)} photos; need more than --heldout {heldout}")
  folders = {}
  for part, chosen in (("train", names[:-heldout]), ("heldout", names[-heldout:])):
    folder = os.path.join(out, part)
    os.makedirs(folder, exist_ok=True)
    for name in chosen:
      target = os.path.join(folder, name)
      if not os.path.exists(target):
        shutil.copyfile(os.path.join(photos, name), target)
    folders[part] = folder
  return folders["train"], folders["heldout"]


def train(config, workdir, data, steps, extra, log):
  if os.path.isdir(os.path.join(workdir, "checkpoints", str(steps))):
    return
  _run([sys.executable, "-m", "jaxcomp.train", f"--config={config}", f"--workdir={workdir}",
        f"--config.data.dir={data}", f"--config.num_train_steps={steps}",
        "--config.log_every_steps=100", *extra], log)


def export(workdir, model_dir, log):
  if not os.path.isdir(model_dir):
    _run([sys.executable, "-m", "jaxcomp", "export", "--workdir", workdir, "--out", model_dir],
         log)


def curve(document):
  """{key: [value per point]} of a results document, points sorted by bpp."""
  results = document["results"]
  order = np.argsort(results["bpp"])
  return {k: [float(results[k][i]) for i in order] for k in KEYS}


def at_rate(points, bpp):
  """The curve's values interpolated linearly in log bpp at `bpp` (None outside its range)."""
  rates = np.log(points["bpp"])
  if not rates[0] <= np.log(bpp) <= rates[-1]:
    return None
  return {k: float(np.interp(np.log(bpp), rates, points[k])) for k in KEYS}


def plot(plain, salient, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
  panels = (("salient_bits_share", "share of bits in the salient region"),
            ("psnr_salient", "PSNR inside [dB]"), ("psnr_nonsalient", "PSNR outside [dB]"),
            ("psnr-rgb", "PSNR, whole image [dB]"))
  for ax, (key, label) in zip(axes, panels):
    ax.plot(plain["bpp"], plain[key], "s-", color="k", label="(a) plain fine-tune")
    ax.plot(salient["bpp"], salient[key], "o-", color="C3", label="(b) saliency fine-tune")
    ax.set_xlabel("bpp (held-back photos, real bitstreams)")
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--photos", default=os.path.join(REPO, "..", "shared", "data", "photos"))
  parser.add_argument("--out", required=True, help="experiment folder (resumable)")
  parser.add_argument("--heldout", type=int, default=3, help="photos held back (default 3)")
  parser.add_argument("--base", help="an existing tiny MSE training workdir to start from")
  parser.add_argument("--base-steps", type=int, default=3000)
  parser.add_argument("--steps", type=int, default=1000, help="fine-tuning steps per model")
  parser.add_argument("--lr", type=float, default=3e-4, help="fine-tuning learning rate")
  parser.add_argument("--lr-drop", type=float, default=0.8,
                      help="fraction of the steps after which the lr drops 10x (default 0.8)")
  parser.add_argument("--alpha", type=float, default=8.0, help="saliency weighting strength")
  parser.add_argument("--lambda-factors", default="0.5,1,2",
                      help="lambdas of both arms as multiples of quality 3's MSE lambda")
  parser.add_argument("--fraction", type=float, default=0.25, help="salient region share")
  parser.add_argument("--patch-size", type=int, default=128,
                      help="crop side of the base training and the fine-tunes")
  parser.add_argument("--modes", default="weighted,input,hyper,step",
                      help="configs/saliency.py modes of arm (b), e.g. weighted,input,hyper")
  args = parser.parse_args()

  os.makedirs(args.out, exist_ok=True)
  logs = os.path.join(args.out, "logs")
  os.makedirs(logs, exist_ok=True)
  train_dir, heldout_dir = split_photos(args.photos, args.out, args.heldout)
  base = args.base or os.path.join(args.out, "base")
  if not args.base:
    train("configs/hyperprior.py:tiny", base, train_dir, args.base_steps,
          ["--config.eval.every_steps=0", f"--config.patch_size={args.patch_size}"],
          os.path.join(logs, "base.log"))

  from jaxcomp.codec import models  # pylint: disable=g-import-not-at-top
  lmbda = models.MSE_LAMBDAS[3]
  common = [f"--config.init_from={os.path.abspath(base)}", f"--config.learning_rate={args.lr}",
            f"--config.lr_drop_fractions=({args.lr_drop},)", f"--config.saliency.alpha={args.alpha}",
            f"--config.patch_size={args.patch_size}"]
  factors = [float(f) for f in args.lambda_factors.split(",")]
  # (a) has (b)'s architecture apart from the saliency inputs: with 'step' both predict steps.
  plain_modes = "plain,step" if "step" in args.modes.split(",") else "plain"
  arms = {"plain": f"configs/saliency.py:tiny,{plain_modes}",
          "saliency": f"configs/saliency.py:tiny,{args.modes}"}
  model_args = []
  for arm, config in arms.items():
    for f in factors:
      name = f"{arm}-x{f:g}"
      workdir = os.path.join(args.out, name)
      train(config, workdir, train_dir, args.steps, common + [f"--config.lmbda={lmbda * f}"],
            os.path.join(logs, f"{name}.log"))
      model_dir = os.path.join(args.out, "models", name)
      export(workdir, model_dir, os.path.join(logs, f"export-{name}.log"))
      model_args += ["--model", f"{arm}={model_dir}"]

  results = os.path.join(args.out, "eval", "plain.json")
  if not os.path.isfile(results):
    os.makedirs(os.path.dirname(results), exist_ok=True)
    _run([sys.executable, "-m", "jaxcomp", "eval", *model_args, "--images", heldout_dir,
          "--out", results, "--saliency", "sdsp", "--salient-fraction", str(args.fraction),
          "--metrics", "psnr", "--rate-maps", os.path.join(args.out, "rate_maps")],
         os.path.join(logs, "eval.log"))
  with open(results) as f:
    plain = curve(json.load(f))
  with open(os.path.join(args.out, "eval", "plain.saliency.json")) as f:
    salient = curve(json.load(f))
  matched = []
  for i, bpp in enumerate(plain["bpp"]):
    at = at_rate(salient, bpp)
    if at is not None:
      matched.append({"plain": {k: plain[k][i] for k in KEYS}, "saliency": at})

  summary = {"photos_heldout": sorted(os.listdir(heldout_dir)), "steps": args.steps,
             "patch_size": args.patch_size, "modes": args.modes,
             "lr": args.lr, "lr_drop": args.lr_drop, "alpha": args.alpha, "lambda": lmbda,
             "lambda_factors": factors, "salient_fraction": args.fraction,
             "plain_curve": plain, "saliency_curve": salient, "matched": matched}
  print(f"\nheld-back photos: {', '.join(summary['photos_heldout'])}; {args.steps} fine-tuning "
        f"steps per model; salient region = top {args.fraction:.0%} of SDSP")
  print(f"{'':26s}" + "".join(f"{k:>20s}" for k in KEYS))
  for arm, points in (("(a) plain", plain), ("(b) saliency", salient)):
    for i, f in enumerate(factors):
      print(f"{arm + ' pt ' + str(i + 1):26s}" + "".join(f"{points[k][i]:20.4f}" for k in KEYS))
  for m in matched:
    print(f"{'matched at ' + format(m['plain']['bpp'], '.4f') + ' bpp':26s}" + "".join(
        f"{m['saliency'][k] - m['plain'][k]:+20.4f}" for k in KEYS) + "   ((b) - (a))")
  if not matched:
    print("no (a) point lies inside (b)'s rate range: widen --lambda-factors")
  else:
    share = [m["saliency"]["salient_bits_share"] - m["plain"]["salient_bits_share"]
             for m in matched]
    psnr = [m["saliency"]["psnr_salient"] - m["plain"]["psnr_salient"] for m in matched]
    summary["verdict"] = {
        "matched_points": len(matched),
        "more_bits_share_in_salient_region": all(d > 0 for d in share),
        "higher_psnr_in_salient_region": all(d > 0 for d in psnr),
        "bits_share_difference": share, "psnr_salient_difference_db": psnr}
    print(json.dumps(summary["verdict"]))
  with open(os.path.join(args.out, "experiment.json"), "w") as f:
    json.dump(summary, f, indent=2)
  plot(plain, salient, os.path.join(args.out, "experiment.png"))
  print(f"wrote {os.path.join(args.out, 'experiment.json')} and experiment.png")


if __name__ == "__main__":
  main()
