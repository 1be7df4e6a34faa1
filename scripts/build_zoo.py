"""Builds the bundled model zoo end to end: train, fine-tune, export, evaluate, write the manifest.

    python scripts/build_zoo.py --runs runs/zoo --data ../shared/data/train \
        --photos ../shared/data/photos [--stage all|train|package]

Stages (each resumes: orbax checkpoints, existing exports and results are reused):
  train    configs/zoo.py:base from scratch (lambda of CompressAI q2), then every fine-tune
           configs/zoo.py:qK from the base (--qualities, default 1,3), in RUNS/<name>/.
  package  export each run into jaxcomp/zoo/models/<name>/, evaluate the curve with real
           bitstreams on --photos against JPEG 4:2:0, JPEG 4:4:4 and WebP (`jaxcomp eval`),
           BD-rates (`jaxcomp bdrate`), then write jaxcomp/zoo/manifest.json (sha256 of every
           file, the recipe, the training time and the RD point of each model) and docs/zoo.md
           with docs/zoo_rd.png.
--photos is the evaluation set: it must not be the training data (checked by file content).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

from jaxcomp.fileio import sha256_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "jaxcomp", "zoo")
DOCS = os.path.join(REPO, "docs")
PREFIX = "hyperprior-small"
STEPS_RE = re.compile(r"([0-9.]+) steps/s")
# Every anchor's quality sweep: the defaults (JPEG 5..95) start at 0.2 bpp on the evaluation photos,
# above the zoo's lowest rates, so the sweep goes down to quality 1.
ANCHORS = ("jpeg-420", "jpeg-444", "webp")
ANCHOR_QUALITIES = "1,2,3,4,5,6,8,10,12,15,20,25,30,40,50,60,75,90"


def name_of(quality):
  return f"{PREFIX}-q{quality}"


def run(cmd, log=None):
  print("+", " ".join(cmd), flush=True)
  if log is None:
    subprocess.run(cmd, check=True, cwd=REPO)
    return
  with open(log, "a") as f:
    subprocess.run(cmd, check=True, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)


def digests(folder):
  out = set()
  for root, _, files in os.walk(folder):
    for f in files:
      out.add(sha256_file(os.path.join(root, f)))
  return out


def train(args):
  base = os.path.join(args.runs, name_of(2))
  common = [f"--config.data.dir={os.path.abspath(args.data)}"]
  run([sys.executable, "-m", "jaxcomp.train", "--config=configs/zoo.py:base", f"--workdir={base}",
       *common], log=base + ".log")
  for q in args.qualities:
    run([sys.executable, "-m", "jaxcomp.train", f"--config=configs/zoo.py:q{q}",
         f"--workdir={os.path.join(args.runs, name_of(q))}", f"--config.init_from={base}",
         *common], log=os.path.join(args.runs, name_of(q)) + ".log")


def steps_per_s(log):
  """Median steps/s of a training log's progress lines (None if there are none)."""
  try:
    with open(log) as f:
      rates = sorted(float(m) for m in STEPS_RE.findall(f.read()))
  except OSError:
    return None
  return rates[len(rates) // 2] if rates else None


def anchor_psnr_at(results_path, bpp):
  """PSNR-RGB of an anchor curve at `bpp` (linear in log bpp between its points; None outside)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  with open(results_path) as f:
    curve = json.load(f)["results"]
  order = np.argsort(curve["bpp"])
  rates = np.log(np.asarray(curve["bpp"])[order])
  psnrs = np.asarray(curve["psnr-rgb"])[order]
  if not rates[0] <= np.log(bpp) <= rates[-1]:
    return None
  return round(float(np.interp(np.log(bpp), rates, psnrs)), 3)


def package(args):
  qualities = sorted({2, *args.qualities})
  results = os.path.join(DOCS, "zoo")
  os.makedirs(results, exist_ok=True)
  models = []
  for q in qualities:
    out = os.path.join(ZOO, "models", name_of(q))
    if args.fresh or not os.path.isdir(out):
      run(["jaxcomp", "export", "--workdir", os.path.join(args.runs, name_of(q)), "--out", out])
    models += ["--model", f"{PREFIX}={out}"]
  results_json = os.path.join(results, "results.json")
  anchor_files = [os.path.join(results, f"results.{a}.json") for a in ANCHORS]
  if args.fresh or not all(map(os.path.exists, [results_json, *anchor_files])):
    run(["jaxcomp", "eval", *models, "--images", args.photos, "--anchors", "jpeg,webp",
         "--anchor-qualities", ANCHOR_QUALITIES, "--metrics", "psnr,ms_ssim",
         "--out", results_json, "--plot", os.path.join(DOCS, "zoo_rd.png"),
         "--table", os.path.join(results, "table.md"),
         "--bpp-targets", "0.15,0.2,0.25"])
  bd = {}
  for anchor in ANCHORS:
    cmd = ["jaxcomp", "bdrate", "--anchor", os.path.join(results, f"results.{anchor}.json"),
           "--test", results_json, "--metric", "psnr-rgb", "--json"]
    print("+", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    notes = [l for l in done.stderr.splitlines() if l.strip()]
    if done.returncode == 0:
      bd[anchor] = json.loads(done.stdout.strip().splitlines()[-1])
    else:  # e.g. the curves do not overlap: no BD value, and the reason is kept
      bd[anchor] = {"bd_rate": None, "bd_quality": None}
    bd[anchor]["warnings"] = notes
  with open(results_json) as f:
    curve = json.load(f)["results"]

  entries = []
  for i, q in enumerate(qualities):
    folder = os.path.join(ZOO, "models", name_of(q))
    with open(os.path.join(folder, "model.json")) as f:
      model = json.load(f)
    with open(os.path.join(args.runs, name_of(q), "config.json")) as f:
      config = json.load(f)
    log = os.path.join(args.runs, name_of(q)) + ".log"
    rate = steps_per_s(log)
    entries.append({
        "name": name_of(q), "arch": model["arch"], "N": model["N"], "M": model["M"],
        "lmbda": config["lmbda"], "quality": q,
        "description": (f"bmshj2018-hyperprior N={model['N']} M={model['M']}, 255^2 MSE, "
                        f"lambda {config['lmbda']}" + (", the base" if q == 2 else
                                                       f", fine-tuned from {name_of(2)}")),
        "files": {f: sha256_file(os.path.join(folder, f)) for f in sorted(os.listdir(folder))},
        "training": {
            "command": (f"python -m jaxcomp.train --config=configs/zoo.py:"
                        f"{'base' if q == 2 else f'q{q}'} --config.data.dir=../shared/data/train"
                        + ("" if q == 2 else f" --config.init_from=<{name_of(2)} run>")),
            "steps": config["num_train_steps"], "batch_size": config["batch_size"],
            "patch_size": config["patch_size"], "learning_rate": config["learning_rate"],
            "init_from": "" if q == 2 else name_of(2),
            "data": "the 16 photos of ../shared/data/train (see its README)",
            "steps_per_s": rate,
            "hours": round(config["num_train_steps"] / rate / 3600, 2) if rate else None,
            "machine": "2-core x86-64 CPU, one core (taskset), JAX CPU backend"},
        "rd": {"images": os.path.basename(os.path.abspath(args.photos)),
               "bpp": round(curve["bpp"][i], 4), "psnr-rgb": round(curve["psnr-rgb"][i], 3),
               "ms-ssim-rgb": round(curve["ms-ssim-rgb"][i], 5),
               "anchors_psnr_at_bpp": {
                   a: anchor_psnr_at(os.path.join(results, f"results.{a}.json"), curve["bpp"][i])
                   for a in ANCHORS}},
    })
  manifest = {"format": "jaxcomp-zoo", "version": 1,
              "bd_rate_psnr_rgb": {a: {"bd_rate": _round(v["bd_rate"], 2),
                                       "bd_psnr": _round(v["bd_quality"], 3),
                                       "notes": v["warnings"]}
                                   for a, v in bd.items()},
              "models": entries}
  with open(os.path.join(ZOO, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
    f.write("\n")
  plot(results, os.path.join(DOCS, "zoo_rd.png"))
  write_docs(entries, bd, results)


def plot(results, out):
  """The zoo's PSNR-RGB curve and the anchors' over the zoo's rate range and a little beyond
  (`jaxcomp plot` clips anchors to the learned range in both axes, which hides JPEG here)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6.4, 4.4))
  styles = {"jpeg-420": ("tab:red", "s", "JPEG 4:2:0"), "jpeg-444": ("tab:orange", "D", "JPEG 4:4:4"),
            "webp": ("tab:green", "^", "WebP")}
  for anchor, (colour, marker, label) in styles.items():
    with open(os.path.join(results, f"results.{anchor}.json")) as f:
      curve = json.load(f)["results"]
    ax.plot(curve["bpp"], curve["psnr-rgb"], "--", color=colour, marker=marker, mfc="none",
            label=label)
  with open(os.path.join(results, "results.json")) as f:
    curve = json.load(f)["results"]
  ax.plot(curve["bpp"], curve["psnr-rgb"], "-o", color="tab:blue", lw=2.2,
          label="jaxcomp zoo (hyperprior-small q1, q2, q3)")
  ax.set_xlim(0.1, 0.45)
  ax.set_ylim(21, 33)
  ax.set_xlabel("rate [bpp]")
  ax.set_ylabel("PSNR-RGB [dB]")
  ax.set_title("10 evaluation photos (768x512), real bitstreams", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc="lower right")
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)


def _round(value, digits):
  return None if value is None else round(value, digits)


def write_docs(entries, bd, results):
  lines = ["# The model zoo", "",
           "Models trained with jaxcomp on this project's 2-core CPU and shipped inside the package",
           "(`jaxcomp zoo list`, `--model zoo:NAME`). Made by `scripts/build_zoo.py` (recipes:",
           "`configs/zoo.py`); every file is sha256-checked against `jaxcomp/zoo/manifest.json`",
           "when a model is loaded.", "",
           "## Models", "",
           "| model | lambda | init | steps | steps/s | train time | bpp | PSNR-RGB dB | MS-SSIM "
           "| JPEG 4:2:0 / 4:4:4 / WebP at that bpp, dB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for e in entries:
    t = e["training"]
    hours = f"{t['hours'] * 60:.0f} min" if t["hours"] else "-"
    lines.append(f"| `zoo:{e['name']}` | {e['lmbda']} | {t['init_from'] or 'scratch'} | "
                 f"{t['steps']} | {t['steps_per_s'] or '-'} | {hours} | {e['rd']['bpp']:.3f} | "
                 f"{e['rd']['psnr-rgb']:.2f} | {e['rd']['ms-ssim-rgb']:.4f} | "
                 + " / ".join("-" if v is None else f"{v:.2f}"
                              for v in e["rd"]["anchors_psnr_at_bpp"].values()) + " |")
  lines += ["", "Data: the 16 photos of `../shared/data/train` (random 128x128 crops, flips); "
            "evaluation: the ten 768x512 photos of `../shared/data/photos`, never trained on, "
            "with real `.jxc` files (bpp from the file size). Anchors: Pillow's JPEG 4:2:0, JPEG "
            f"4:4:4 and WebP at qualities {ANCHOR_QUALITIES} (down to 1, so that their curves reach "
            "the zoo's low rates); 'at that bpp' interpolates an anchor's curve linearly in log "
            "bpp ('-': the anchor does not reach that rate).", "",
            "## Against the classical codecs (PSNR-RGB, BD over the overlapping range)", "",
            "| anchor | BD-rate | BD-PSNR |", "|---|---|---|"]
  for anchor, v in bd.items():
    if v["bd_rate"] is None:
      lines.append(f"| {anchor} | not computable (see below) | — |")
    else:
      lines.append(f"| {anchor} | {v['bd_rate']:+.1f} % | {v['bd_quality']:+.2f} dB |")
  lines += ["", "Negative BD-rate: the zoo curve needs fewer bits than the anchor for the same "
            "PSNR.", ""]
  warnings = [f"{a}: {w}" for a, v in bd.items() for w in v["warnings"]]
  if warnings:
    lines += ["What `jaxcomp bdrate` said:", ""] + [f"- {w}" for w in warnings] + [""]
  table = os.path.join(results, "table.md")
  if os.path.exists(table):
    with open(table) as f:
      lines += ["## Rate-matched table (`jaxcomp eval --table`)", "", f.read().strip(), ""]
  lines += ["## Reading it", "",
            "- JPEG 4:2:0 cannot reach the two lower rates at all (quality 1 averages 0.165 bpp "
            "on these photos); where it can, the zoo is about 4 dB above it, and BD-rate over the "
            "small overlap is the figure above. JPEG 4:4:4 starts at 0.26 bpp, above the zoo's "
            "range: no BD value.",
            "- WebP is ~1.2 dB above the zoo at the same rates: the stretch goal (beating WebP) is "
            "not reached by models this small and this briefly trained on 16 photos.",
            "- The zoo covers low rates only (0.13-0.20 bpp); higher-rate points need fine-tunes "
            "at larger lambdas (configs/zoo.py:q4 ... q8) and more CPU time than this build had.",
            "- The base model was trained with the initialisation jaxcomp had before the "
            "initialisation-parity fix (conv biases drawn from U(+-1/sqrt(C_out)) instead of the "
            "kernel's fan-in; docs/training_parity.md); rerunning the recipe today starts from "
            "CompressAI's distributions.",
            "- The base ran 5,290 steps under a 10,000-step schedule, then was resumed with "
            "num_train_steps=6500 (the learning rate was constant until the drop at 5,525 in both "
            "schedules, so the run equals the 6,500-step recipe); its steps/s is the median of a "
            "log shared with other work on the same CPU.", "",
            "![RD curves of the zoo against JPEG and WebP](zoo_rd.png)", "",
            "Results files (CompressAI layout): `docs/zoo/results*.json`.", ""]
  with open(os.path.join(DOCS, "zoo.md"), "w") as f:
    f.write("\n".join(lines))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--runs", default="runs/zoo", help="training workdirs (default runs/zoo)")
  parser.add_argument("--data", default="../shared/data/train", help="training photos")
  parser.add_argument("--photos", default="../shared/data/photos", help="evaluation photos")
  parser.add_argument("--qualities", default="1,3",
                      help="fine-tuned rate points besides the q2 base (default 1,3)")
  parser.add_argument("--stage", choices=("all", "train", "package"), default="all")
  parser.add_argument("--fresh", action="store_true",
                      help="re-export and re-evaluate even if the models and docs/zoo/results*.json "
                      "exist")
  args = parser.parse_args()
  args.qualities = sorted({int(q) for q in args.qualities.split(",") if q} - {2})
  if digests(args.data) & digests(args.photos):
    sys.exit("error: --photos shares images with --data: the evaluation set must be held out")
  os.makedirs(args.runs, exist_ok=True)
  start = time.time()
  if args.stage in ("all", "train"):
    train(args)
  if args.stage in ("all", "package"):
    package(args)
  print(f"done in {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
  main()
