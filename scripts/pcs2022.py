"""Reproduce the PCS 2022 study (Mohammadi & Ascenso) end to end with jaxcomp commands.

    python scripts/pcs2022.py --scale cpu --out runs/pcs2022          # this machine, ~1 h, 1 core
    python scripts/pcs2022.py --scale paper --out runs/pcs2022-paper \
        --parent low=models/mse-q1 --parent medium=models/mse-q3 --parent high=models/mse-q5 \
        --data /data/clic/train --photos /data/kodak                   # a GPU/TPU

One MSE codec per rate point (the parents: by default the zoo's hyperprior-small q1/q2/q3),
fine-tuned with each of the nine distortions at the lambda that keeps the parent's rate, then:
the RD curves of all the models with every metric, the cross-metric BD-rate matrix against the MSE
models, a pairwise-comparison study package whose stimuli are rate-matched per image, and the
simulated observers' screening and ranking through that study's design.

Each stage is one jaxcomp command (or a few), printed before it runs and skipped when its output
exists, so a rerun resumes where the last one stopped (`jaxcomp calibrate` also caches each probe).
Stages, outputs in --out:
  photos     the evaluation photos centre-cropped to --crop -> photos/ (study candidates), the
             first --images of them -> photos-eval/ (RD curves)
  calibrate  jaxcomp calibrate: lambda per metric and rate on held-out training photos
             -> calibration/ (calibration.json copied to calibration.json)
  finetune   paper scale only: python -m jaxcomp.train --config=finetune.py:<metric>,q<k>
             --config.lmbda=<calibrated> ... and jaxcomp export, per metric and rate -> models/
             (cpu scale: the calibration's kept final probes are the fine-tuned models)
  eval       jaxcomp eval of every model on photos/ with every metric, real bitstreams -> eval/
  plot       jaxcomp plot -> rd.png
  matrix     jaxcomp bdrate-matrix against the MSE models -> bdrate_matrix.md/.png/.json
  study-candidates  jaxcomp study prepare --match-to mse --rate-tolerance inf on every photo:
             each stimulus's bpp against the MSE model's on that photo -> study-candidates/
  select     the photos whose every stimulus is within ±10 % -> photos-study/, selection.json
             (the refused photos listed with their offending stimuli)
  study      jaxcomp study prepare --match-to mse --rate-tolerance 0.10 on those -> study/
  simulate   jaxcomp study simulate --study study/ -> simulate.json, simulate.png
  summary    summary.md: calibration, per-image rate deviations, BD-rates, simulation, timings
Timings per stage go to timings.json. `--dry-run` prints the commands only.
"""

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("mse", "ssim", "ms_ssim", "gmsd", "lpips", "dists", "fsim", "vsi", "nlpd")
# Evaluation metrics: PSNR stands for the MSE model's own distortion.
EVAL_METRICS = ("psnr", "ssim", "ms_ssim", "gmsd", "lpips", "dists", "fsim", "vsi", "nlpd")
ZOO_PARENTS = ("low=zoo:hyperprior-small-q1", "medium=zoo:hyperprior-small-q2",
               "high=zoo:hyperprior-small-q3")
ANCHOR = "mse"
TOLERANCE = 0.10

# Per scale: the calibration probes, the fine-tunes, the evaluation photos and crop.
SCALES = {
    # A 2-core CPU: 50-step probes at lr 1e-4 on 64-pixel crops (configs/finetune.py raises the
    # crop to each metric's minimum); the kept final probe of each metric and rate is the model.
    "cpu": dict(calibrate=["--steps", "50", "--batch-size", "4", "--patch-size", "64",
                           "--lr", "1e-4", "--max-probes", "4", "--val-size", "512"],
                finetune_steps=None, images=4, crop=512),
    # A GPU/TPU: calibrate with 2,000-step probes at the paper's lr 1e-5 on 256-pixel crops, then
    # fine-tune each model for 100,000 steps at lr 1e-5 (configs/finetune.py) with that lambda.
    "paper": dict(calibrate=["--steps", "2000", "--batch-size", "8", "--patch-size", "256",
                             "--lr", "1e-5", "--max-probes", "4", "--val-size", "512"],
                  finetune_steps=100_000, images=None, crop=None),
}


SCALE_NOTES = {
    "cpu": "Scale: the models are the calibration's kept final probes, fine-tunes of 50 Adam steps "
           "at lr 1e-4 on 64-pixel crops (192 for MS-SSIM) from the zoo's small MSE models, not the "
           "paper's long fine-tunes at lr 1e-5: they show what the pipeline measures, not the "
           "paper's result. Metrics blind to colour or to mean shifts let such short, fast "
           "fine-tunes drift far in PSNR.",
    "paper": "Scale: every model fine-tuned from its MSE parent at lr 1e-5 with its calibrated lambda.",
}


class Driver:
  """Runs the stages, printing each command, recording wall times in timings.json."""

  def __init__(self, out, dry_run):
    self.out = out
    self.dry_run = dry_run
    self.timings_path = os.path.join(out, "timings.json")
    self.timings = {}
    if os.path.isfile(self.timings_path):
      with open(self.timings_path) as f:
        self.timings = json.load(f)

  def path(self, *parts):
    return os.path.join(self.out, *parts)

  def stage(self, name, done, commands, describe):
    """Runs `commands` (lists of argv) unless `done()`; exits with the command's status on error."""
    if done():
      print(f"== {name}: done ({describe}); skipped", flush=True)
      return
    print(f"== {name}: {describe}", flush=True)
    started = time.time()
    for argv in commands:
      print("$ " + " ".join(shlex.quote(a) for a in argv), flush=True)
      if self.dry_run:
        continue
      status = subprocess.call(argv, cwd=ROOT)
      if status != 0:
        print(f"== {name}: failed (exit {status}); fix and rerun, finished stages are kept",
              flush=True)
        sys.exit(status)
    if not self.dry_run:
      self.timings[name] = round(time.time() - started, 1)
      self.write_json(self.timings_path, self.timings)

  def python_stage(self, name, done, fn, describe):
    """A stage done here in Python (no command): cropping photos, writing the summary."""
    if done():
      print(f"== {name}: done ({describe}); skipped", flush=True)
      return
    print(f"== {name}: {describe}", flush=True)
    if self.dry_run:
      return
    started = time.time()
    fn()
    self.timings[name] = round(time.time() - started, 1)
    self.write_json(self.timings_path, self.timings)

  @staticmethod
  def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(data, f, indent=1)
      f.write("\n")
    os.replace(tmp, path)


def jaxcomp(*args):
  return [sys.executable, "-m", "jaxcomp", *args]


def crop_photos(photos, out, count, crop):
  """The first `count` photos (sorted; all if None), centre-cropped to crop x crop, as PNG."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  files = sorted(f for f in glob.glob(os.path.join(photos, "*"))
                 if f.lower().endswith((".png", ".jpg", ".jpeg")))
  if not files:
    sys.exit(f"error: no photos in {photos}")
  tmp = out + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  for path in files[:count]:
    image = Image.open(path).convert("RGB")
    if crop:
      w, h = image.size
      if min(w, h) < crop:
        sys.exit(f"error: {path} is {w}x{h}, smaller than --crop {crop}")
      left, top = (w - crop) // 2, (h - crop) // 2
      image = image.crop((left, top, left + crop, top + crop))
    image.save(os.path.join(tmp, os.path.splitext(os.path.basename(path))[0] + ".png"))
  shutil.rmtree(out, ignore_errors=True)
  os.replace(tmp, out)


def select_images(candidates, photos, out, selection, tolerance):
  """Copies the photos whose every stimulus in `candidates`/study.json is within `tolerance`.

  Writes `selection` = {"tolerance", "chosen": [image], "refused": {image: [{rate, condition,
  bpp, target_bpp, deviation}] (the stimuli outside)}}; exits when no photo qualifies.
  """
  study = load_json(os.path.join(candidates, "study.json"))
  outside, images = {}, []
  for scene in study["scenes"]:
    if scene["image"] not in images:
      images.append(scene["image"])
    for condition, s in scene["stimuli"].items():
      if abs(s["deviation"]) > tolerance + 1e-12:
        outside.setdefault(scene["image"], []).append(
            {"rate": scene["rate"], "condition": condition, "bpp": s["bpp"],
             "target_bpp": s["target_bpp"], "deviation": s["deviation"]})
  chosen = [image for image in images if image not in outside]
  Driver.write_json(selection, {"tolerance": tolerance, "chosen": chosen, "refused": outside})
  for image, stimuli in outside.items():
    listed = ", ".join(f"{s['rate']} {s['condition']} {100 * s['deviation']:+.1f}%"
                       for s in stimuli)
    print(f"   refused {image}: {listed}")
  print(f"   chosen {len(chosen)} of {len(images)}: {', '.join(chosen)}")
  if not chosen:
    sys.exit(f"error: no photo has every stimulus within ±{tolerance:.0%}; see {selection}")
  tmp = out + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  files = {"".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in os.path.splitext(f)[0]): f
           for f in os.listdir(photos)}  # study prepare's image names
  for image in chosen:
    shutil.copyfile(os.path.join(photos, files[image]), os.path.join(tmp, files[image]))
  shutil.rmtree(out, ignore_errors=True)
  os.replace(tmp, out)


def calibration_complete(path, metrics, labels):
  if not os.path.isfile(path):
    return False
  with open(path) as f:
    document = json.load(f)
  results = document.get("results", {})
  return "seconds" in document and all(
      label in results.get(m, {}) for m in metrics for label in labels)


def load_json(path):
  with open(path) as f:
    return json.load(f)


def parent_record(spec):
  """(quality, N, M) of an exported parent model or zoo:NAME, from its model.json."""
  if spec.startswith("zoo:"):
    folder = os.path.join(ROOT, "jaxcomp", "zoo", "models", spec[len("zoo:"):])
  else:
    folder = spec
  record = load_json(os.path.join(folder, "model.json"))
  return record["training"]["quality"], record["N"], record["M"]


def models_by_metric(args, driver, labels, calibration):
  """{metric: {label: exported model folder}}: the kept probes (cpu) or the fine-tunes (paper)."""
  if args.scale == "cpu":
    return {m: {label: calibration["results"][m][label]["model"] for label in labels}
            for m in args.metrics}
  return {m: {label: driver.path("models", f"{m}-{label}") for label in labels}
          for m in args.metrics}


def finetune_commands(args, driver, parents, calibration, steps):
  """Per metric and rate: train from the parent with the calibrated lambda, then export."""
  stages = []
  for metric in args.metrics:
    for label, spec in parents:
      quality, n, m = parent_record(spec)
      lmbda = calibration["results"][metric][label]["lambda"]
      workdir = driver.path("finetune", f"{metric}-{label}")
      model = driver.path("models", f"{metric}-{label}")
      stages.append((f"finetune {metric} {label}", model, [
          [sys.executable, "-m", "jaxcomp.train", f"--config=finetune.py:{metric},q{quality}",
           f"--workdir={workdir}", f"--config.init_from={spec}", f"--config.lmbda={lmbda}",
           f"--config.N={n}", f"--config.M={m}", f"--config.num_train_steps={steps}",
           "--config.learning_rate=1e-5",
           f"--config.data.dir={driver.path('calibration', 'data', 'train')}"],
          jaxcomp("export", "--workdir", workdir, "--out", model)]))
  return stages


def summary(args, driver, labels, timings):
  """summary.md: what was run, calibration, per-image rate deviations, BD-rates, simulation."""
  calibration = load_json(driver.path("calibration.json"))
  lines = [f"# PCS 2022 study, {args.scale} scale", "",
           f"Command: `python scripts/pcs2022.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
           "", SCALE_NOTES[args.scale],
           "", "## Stages (wall time on this run)", "", "| stage | seconds |", "|---|---|"]
  lines += [f"| {name} | {seconds:.0f} |" for name, seconds in timings.items()]
  lines += ["", "## Calibration (lambda per metric and rate; bpp on the held-out validation crops)",
            "", "| metric | " + " | ".join(f"{l}: lambda, bpp (error)" for l in labels) + " |",
            "|---|" + "---|" * len(labels)]
  for metric in args.metrics:
    cells = []
    for label in labels:
      r = calibration["results"][metric][label]
      cells.append(f"{r['lambda']:.4g}, {r['bpp']:.4f} ({r['error']:+.1%}"
                   f"{'' if r['converged'] else ', not converged'}; {len(r['probes'])} "
                   f"probe{'s' if len(r['probes']) > 1 else ''})")
    lines.append(f"| {metric} | " + " | ".join(cells) + " |")
  targets = ", ".join(f"{l} {calibration['rates'][l]['target_bpp']:.4f}" for l in labels)
  lines += ["", f"Targets (the parents' bpp on the validation crops): {targets}."]
  lines += ["", "## Study stimuli: bpp per image against the MSE model's (target)", ""]
  selection = load_json(driver.path("selection.json"))
  candidates = load_json(driver.path("study-candidates", "study.json"))
  n_candidates = len({scene["image"] for scene in candidates["scenes"]})
  lines += [f"{len(selection['chosen'])} of {n_candidates} photos have every stimulus within "
            f"±{100 * TOLERANCE:.0f} % of the MSE model's bpp on that photo at every rate, and "
            "form the study; the others were refused for these stimuli (deviation = bpp / "
            "target - 1):", ""]
  for image, stimuli in selection["refused"].items():
    listed = ", ".join(f"{s['rate']} {s['condition']} {100 * s['deviation']:+.1f} %"
                       for s in stimuli)
    lines.append(f"- {image}: {listed}")
  lines += ["", "Every candidate photo (before the selection), deviations in %:", ""]
  lines += deviation_table(candidates, labels)
  lines += ["", "The study (after the selection), deviations in %:", ""]
  lines += deviation_table(load_json(driver.path("study", "study.json")), labels)
  lines += ["", "## BD-rate against the MSE models", ""]
  with open(driver.path("bdrate_matrix.md")) as f:
    lines += [f.read().rstrip()]
  lines += ["", "![BD-rate matrix](bdrate_matrix.png)", "", "![RD curves](rd.png)"]
  lines += ["", "## Simulated observers through the study's design", ""]
  lines += simulate_lines(driver.path("simulate.json"))
  with open(driver.path("summary.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def deviation_table(study, labels):
  """Markdown rows: per image and rate the target and each condition's deviation in %."""
  rows, worst, count = [], 0.0, 0
  conditions = None
  for scene in study["scenes"]:
    stimuli = scene["stimuli"]
    if conditions is None:
      conditions = list(stimuli)
      rows += ["| image | rate | target bpp | " + " | ".join(conditions) + " |",
               "|---|---|---|" + "---|" * len(conditions)]
    target = scene["target_bpp"]
    cells = []
    for c in conditions:
      s = stimuli.get(c)
      if s is None:
        cells.append("—")
        continue
      worst, count = max(worst, abs(s["deviation"])), count + 1
      cells.append(f"{100 * s['deviation']:+.1f}")
    rows.append(f"| {scene['image']} | {scene['rate']} | "
                f"{target:.4f} | " + " | ".join(cells) + " |")
  return rows + ["", f"Deviation = bpp / target - 1 in %; {count} stimuli, largest "
                     f"|deviation| {100 * worst:.1f} % (tolerance ±{100 * TOLERANCE:.0f} %)."]


def simulate_lines(path):
  """Markdown: per observer type how many the screening kept and why, and Kendall tau."""
  if not os.path.isfile(path):
    return ["(no simulate.json)"]
  report = load_json(path)
  study = report.get("study", {})
  lines = [f"`jaxcomp study simulate --study study/`: {study.get('scenes')} scenes, "
           f"{study.get('golden_units')} golden units, {study.get('planned_closed_triples')} "
           f"closed triples planned per subject; true scores {report.get('truth')}.", "",
           "| observers | kept | rejected by golden / transitivity / speed | closed triples |",
           "|---|---|---|---|"]
  for kind, t in report.get("per_type", {}).items():
    rejected = t.get("rejected_by", {})
    triples = t.get("closed_triples", {})
    lines.append(f"| {kind} | {t['kept']} of {t['subjects']} ({100 * t['kept_share']:.0f} %) | "
                 f"{rejected.get('golden')} / {rejected.get('transitivity')} / "
                 f"{rejected.get('speed')} | {triples.get('min')}-{triples.get('max')} |")
  acceptance = report.get("acceptance")
  if acceptance:
    lines += ["", f"Honest kept {100 * acceptance['honest_kept']:.0f} % (>= 95 % wanted), random "
                  f"rejected {100 * acceptance['random_rejected']:.0f} % (>= 90 % wanted): "
                  f"{'met' if acceptance['met'] else 'NOT met'}."]
  for who, curve in report.get("tau", {}).items():
    points = ", ".join(f"{n}: {t:.2f}" for n, t in zip(curve["comparisons"], curve["tau"]))
    lines += ["", f"Kendall tau vs main comparisons ({who}): {points}"]
  return lines + ["", "![simulation](simulate.png)"]


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--scale", required=True, choices=sorted(SCALES),
                 help="cpu: this machine, small probes as models; paper: GPU/TPU fine-tunes")
  p.add_argument("--out", required=True, help="output folder (a rerun resumes it)")
  p.add_argument("--parent", action="append", default=[], metavar="LABEL=MODEL",
                 help="MSE model per rate point, in rate order (default the zoo's "
                      "hyperprior-small q1/q2/q3 as low/medium/high)")
  p.add_argument("--metrics", default=",".join(METRICS),
                 help="distortions to fine-tune with (default all nine; must include mse)")
  p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "train"),
                 help="training photos (the calibration holds the last 4 out for validation)")
  p.add_argument("--photos", default=os.path.join(ROOT, "..", "shared", "data", "photos"),
                 help="evaluation photos (never trained on)")
  p.add_argument("--images", type=int, default=None,
                 help="evaluation photos used (the first N, sorted; default: cpu 4, paper all)")
  p.add_argument("--crop", type=int, default=None,
                 help="centre crop of the evaluation photos and stimuli (default: cpu 512, "
                      "paper none for eval and 512 for the study)")
  p.add_argument("--steps", type=int, default=None,
                 help="override the calibration probes' steps (cpu 50, paper 2000)")
  p.add_argument("--finetune-steps", type=int, default=None,
                 help="paper scale: fine-tuning steps per model (default 100000)")
  p.add_argument("--eval-metrics", default=",".join(EVAL_METRICS),
                 help="evaluation metrics (default all nine: psnr for mse and the eight others)")
  p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
  args = p.parse_args(argv)
  args.metrics = [m for m in args.metrics.split(",") if m]
  args.data, args.photos = os.path.normpath(args.data), os.path.normpath(args.photos)
  for flag, folder in (("--data", args.data), ("--photos", args.photos)):
    if not os.path.isdir(folder):
      p.error(f"{flag}: no folder {folder}")
  if ANCHOR not in args.metrics:
    p.error(f"--metrics must include {ANCHOR} (the anchor of the BD-rates and of the rates)")
  return args


def main(argv=None):
  args = parse_args(argv)
  scale = SCALES[args.scale]
  parents = [tuple(p.split("=", 1)) for p in (args.parent or ZOO_PARENTS)]
  labels = [label for label, _ in parents]
  images = args.images or scale["images"]
  crop = args.crop or scale["crop"]
  calibrate_flags = list(scale["calibrate"])
  if args.steps:
    calibrate_flags[calibrate_flags.index("--steps") + 1] = str(args.steps)
  os.makedirs(args.out, exist_ok=True)
  driver = Driver(args.out, args.dry_run)
  photos = driver.path("photos")

  eval_photos = driver.path("photos-eval")
  driver.python_stage(
      "photos", lambda: os.path.isdir(photos) and os.path.isdir(eval_photos),
      lambda: (crop_photos(args.photos, photos, None, crop),
               crop_photos(photos, eval_photos, images, None)),
      f"the photos of {args.photos}{f', centre-cropped to {crop}x{crop}' if crop else ''} "
      f"-> {photos} (study candidates); the first {images or 'all'} -> {eval_photos} (RD curves)")

  cal_dir = driver.path("calibration")
  driver.stage(
      "calibrate",
      lambda: calibration_complete(os.path.join(cal_dir, "calibration.json"), args.metrics,
                                   labels),
      [jaxcomp("calibrate", *[f for label, spec in parents for f in ("--parent", f"{label}={spec}")],
               "--metrics", ",".join(args.metrics), "--data", args.data, *calibrate_flags,
               "--out", cal_dir, "--keep-models")],
      f"lambda per metric x rate so that each fine-tune keeps its MSE parent's bpp -> {cal_dir}")
  if args.dry_run:
    print("(dry run: the later stages need the calibration's lambdas)")
    return 0
  shutil.copyfile(os.path.join(cal_dir, "calibration.json"), driver.path("calibration.json"))
  calibration = load_json(driver.path("calibration.json"))

  if args.scale == "paper":
    steps = args.finetune_steps or scale["finetune_steps"]
    for name, model, commands in finetune_commands(args, driver, parents, calibration, steps):
      driver.stage(name, lambda model=model: os.path.isfile(os.path.join(model, "model.json")),
                   commands, f"{steps} steps at lr 1e-5 -> {model}")
  models = models_by_metric(args, driver, labels, calibration)

  eval_dir = driver.path("eval")
  results = [os.path.join(eval_dir, "results.json")] + [
      os.path.join(eval_dir, f"results.{m}.json") for m in args.metrics if m != ANCHOR]
  order = [ANCHOR] + [m for m in args.metrics if m != ANCHOR]
  model_flags = [f for m in order for label in labels for f in ("--model", f"{m}={models[m][label]}")]
  driver.stage(
      "eval", lambda: all(os.path.isfile(r) for r in results),
      [jaxcomp("eval", *model_flags, "--images", eval_photos, "--out", results[0],
               "--metrics", args.eval_metrics)],
      f"{len(order)} models x {len(labels)} rates on {eval_photos}, metrics "
      f"{args.eval_metrics}")

  n_photos = len(os.listdir(eval_photos))
  rd = driver.path("rd.png")
  driver.stage(
      "plot", lambda: os.path.isfile(rd),
      [jaxcomp("plot", *results, "--out", rd, "--title",
               f"PCS 2022 study ({args.scale} scale): {len(order)} fine-tuned models, "
               f"{n_photos} photo{'s' if n_photos != 1 else ''}")],
      f"RD curves of every model with every metric -> {rd}")

  matrix = driver.path("bdrate_matrix")
  driver.stage(
      "matrix", lambda: all(os.path.isfile(matrix + e) for e in (".md", ".png", ".json")),
      [jaxcomp("bdrate-matrix", "--anchor", results[0], "--test", *results[1:],
               "--out", matrix + ".md", "--plot", matrix + ".png", "--out-json", matrix + ".json")],
      f"BD-rate of each model against {ANCHOR} on each metric -> {matrix}.md/.png/.json")

  # The study: every photo is a candidate; an image enters the study only if every condition's
  # stimulus at every rate is within the tolerance of the MSE model's bpp on it. Measured by one
  # prepare without a limit (study-candidates/), the images chosen (selection.json, with every
  # refused image's offending stimuli), then the study itself with the limit enforced.
  study, candidates = driver.path("study"), driver.path("study-candidates")
  study_crop = crop or 512
  condition_flags = [f for m in order for f in (
      "--model", f"{m}=" + ",".join(f"{l}:{models[m][l]}" for l in labels))]

  def prepare(images_dir, tolerance, folder):
    return jaxcomp("study", "prepare", "--images", images_dir, *condition_flags,
                   "--match-to", ANCHOR, "--rate-tolerance", tolerance, "--anchors", "",
                   "--crop", f"{study_crop}x{study_crop}", "--out", folder)

  driver.stage(
      "study-candidates", lambda: os.path.isfile(os.path.join(candidates, "study.json")),
      [prepare(photos, "inf", candidates)],
      f"every photo's stimuli and their bpp against the {ANCHOR} model's, no limit -> "
      f"{candidates}")
  selection = driver.path("selection.json")
  study_photos = driver.path("photos-study")
  driver.python_stage(
      "select", lambda: os.path.isfile(selection) and os.path.isdir(study_photos),
      lambda: select_images(candidates, photos, study_photos, selection, TOLERANCE),
      f"the photos whose every stimulus is within ±{TOLERANCE:.0%} of its target -> "
      f"{study_photos}, {selection}")
  driver.stage(
      "study", lambda: os.path.isfile(os.path.join(study, "study.json")),
      [prepare(study_photos, str(TOLERANCE), study)],
      f"stimuli matched per image to the {ANCHOR} model's bpp within ±{TOLERANCE:.0%} -> {study}")

  sim = driver.path("simulate")
  driver.stage(
      "simulate", lambda: os.path.isfile(sim + ".json"),
      [jaxcomp("study", "simulate", "--study", study, "--out", sim + ".json",
               "--plot", sim + ".png")],
      f"simulated honest/random/inverted/too-fast observers through {study} -> {sim}.json/.png")

  driver.python_stage("summary", lambda: False,
                      lambda: summary(args, driver, labels, driver.timings),
                      f"-> {driver.path('summary.md')}")
  print(f"done: {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
