"""`jaxcomp study prepare | serve | analyze | simulate | export-bapps`: subjective studies.

Two modes (`prepare --mode`): pc, pairwise comparisons of codecs at matched bit rates (analysed
by `analyze`), and 2afc, "which reconstruction is closer to the original?" on the triplets of a
BAPPS-layout split (exported as a judged split by `export-bapps`).
"""

import csv
import json
import logging
import os
import secrets
import sys

from jaxcomp.errors import UserError


def register(subparsers):
  parser = subparsers.add_parser(
      "study", help="subjective study (pairwise comparison or 2AFC): prepare, serve, analyze, "
                    "simulate, export-bapps",
      description="Pairwise-comparison subjective study (PCS 2022 protocol), or 2AFC judgments "
                  "of reconstruction triplets in the BAPPS layout.")
  sub = parser.add_subparsers(dest="study_command", metavar="<step>",
                              parser_class=type(parser))
  sub.required = True

  p = sub.add_parser("prepare", help="stimuli at matched bit rates (or 2AFC triplets), golden "
                                     "units, manifest")
  p.add_argument("--mode", default="pc", choices=("pc", "2afc"),
                 help="pc: pairs of codecs at matched rates (default); 2afc: the triplets of "
                      "--triplets, 'which is closer to the original?'")
  p.add_argument("--images", default=None, help="folder of source images (pc mode)")
  p.add_argument("--triplets", default=None, metavar="DIR",
                 help="2afc mode: BAPPS-layout folder with ref/, p0/, p1/ (e.g. from "
                      "'jaxcomp perceptual build'; judge/ not needed)")
  p.add_argument("--model", action="append", default=[],
                 metavar="NAME=LABEL:DIR,... | NAME=DIR,...",
                 help="a jaxcomp codec (repeatable): its exported model directory (or zoo:NAME) "
                      "for each rate label of the study, or a set of directories whose points "
                      "are assigned to the rates per image (nearest target, distinct points)")
  p.add_argument("--anchors", default=None,
                 help="classical anchors, comma-separated ('' for none; default jpeg-420)")
  p.add_argument("--rates", default=None, metavar="LABEL=BPP,...",
                 help="global target bit rates (default low=0.25,medium=0.5,high=1.0; not "
                      "with --match-to)")
  p.add_argument("--match-to", default=None, metavar="CONDITION",
                 help="per-image targets: each image's target at each rate is the bpp that this "
                      "--model NAME=LABEL:DIR,... condition reaches on it (e.g. the MSE model); "
                      "its labels are the study's rates")
  p.add_argument("--rate-tolerance", type=float, default=0.10, metavar="FRACTION",
                 help="refuse the study (listing the stimuli, writing nothing) if any stimulus "
                      "is further than this from its image's target, |bpp/target - 1| "
                      "(default 0.10; inf: no limit)")
  p.add_argument("--crop", default=None, metavar="WxH",
                 help="stimulus size (centre crop; default 512x512)")
  p.add_argument("--out", required=True, help="study folder to write")
  p.add_argument("--design", default=None, choices=("adjacent", "full", "random", "active"),
                 help="pair design (pc mode; default adjacent; active: largest expected "
                      "information gain)")
  p.add_argument("--trials-per-subject", type=int, default=40,
                 help="main trials each subject judges (default 40)")
  p.add_argument("--golden-every", type=int, default=10,
                 help="one golden unit after every N main trials (0: none)")
  p.add_argument("--golden-quality", type=int, default=5, help="JPEG quality of golden units")
  p.add_argument("--min-screen", default="1920x1080", metavar="WxH",
                 help="smallest screen in physical pixels (default 1920x1080)")
  p.add_argument("--show-reference", action="store_true",
                 help="show the original above the pair (always shown, between them, in 2afc)")
  p.add_argument("--seed", type=int, default=0,
                 help="seed of the design (pairs, order, sides; default 0)")
  p.add_argument("--title", default="Image quality study",
                 help="title shown to subjects (default 'Image quality study')")
  p.set_defaults(func=run_prepare)

  p = sub.add_parser("serve", help="web app for subjects, votes in a database")
  p.add_argument("--study", required=True, help="study folder (or its study.json)")
  p.add_argument("--db", default=None,
                 help="SQLAlchemy URL (default sqlite:///<study>/votes.db; "
                      "postgresql+psycopg://user:pw@host/db for PostgreSQL)")
  p.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (default 127.0.0.1; 0.0.0.0 for all interfaces)")
  p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
  p.add_argument("--token", default=None,
                 help="experimenter token, sent as 'Authorization: Bearer TOKEN' (default "
                      "$JAXCOMP_STUDY_TOKEN, else a random one, printed)")
  p.add_argument("--workers", type=int, default=None,
                 help="gunicorn worker processes (default 2 x cores + 1, at most 9)")
  p.add_argument("--threads", type=int, default=4, help="threads per worker process (default 4)")
  p.add_argument("--proxies", type=int, default=0,
                 help="reverse proxies in front (1 behind Caddy/nginx): the client address is "
                      "then taken from X-Forwarded-For (default 0)")
  p.add_argument("--max-body", type=int, default=16 * 1024, metavar="BYTES",
                 help="largest request body (default 16384)")
  p.add_argument("--sessions-per-client", type=int, default=20,
                 help="sessions one client address may start per --session-window (default 20; "
                      "0: no limit)")
  p.add_argument("--session-window", type=float, default=3600.0, metavar="SECONDS",
                 help="default 3600")
  p.add_argument("--debug", action="store_true",
                 help="Flask's development server (one process) instead of gunicorn")
  p.set_defaults(func=run_serve)

  p = sub.add_parser("analyze", help="screen subjects, preference matrices, scales, plots")
  p.add_argument("votes", help="export from serve (.json) or a pwcmp long-format .csv")
  p.add_argument("--out", required=True,
                 help="folder for analysis.json, rates.md, screening.md (per subject: which "
                      "test rejected it, with the figures), rejections.csv, plots")
  p.add_argument("--study", metavar="DIR",
                 help="the prepared study folder: its conditions.csv orders the rates by target "
                      "bpp and gives each condition's achieved bpp")
  p.add_argument("--min-zeta", type=float, default=0.5,
                 help="reject a subject whose coefficient of consistence over complete scenes "
                      "is below this (default 0.5)")
  p.add_argument("--max-triad-rate", type=float, default=0.5,
                 help="reject a subject whose circular-triad rate over the closed triples of "
                      "incomplete scenes reaches this (default 0.5, twice chance: careful "
                      "observers of close conditions sit near chance, 0.25)")
  p.add_argument("--min-triples", type=int, default=10,
                 help="closed triples needed before the triad rate is used; fewer: 'not "
                      "applicable' in the report (default 10; the adjacent design gives "
                      "trials/3)")
  _add_screening_arguments(p, "reject a subject")
  p.add_argument("--bt-alpha", type=float, default=0.01,
                 help="Bradley-Terry regularisation (choix's alpha; default 0.01)")
  p.add_argument("--prior-sd", type=float, default=10.0, help="Thurstone prior SD in JOD")
  p.add_argument("--bootstrap", type=int, default=200,
                 help="bootstrap replicates over subjects for the 95%% intervals (0: none; "
                      "default 200)")
  p.add_argument("--reference-condition", default=None,
                 help="condition at 0 JOD, listed first (default: the MSE model, a condition "
                      "named 'mse' or with 'mse' as a word of its name)")
  p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
  p.add_argument("--no-plots", action="store_true", help="skip the figures")
  p.add_argument("--json", action="store_true", help="last stdout line: a JSON summary")
  p.set_defaults(func=run_analyze)

  p = sub.add_parser("simulate", help="rank accuracy of the designs against comparisons spent; "
                                      "with --study: simulated subjects through a prepared study "
                                      "and its screening",
                     description="Without --study: abstract designs compared by simulated "
                                 "observers. With --study DIR: simulated honest, random, "
                                 "inverted and too-fast subjects take the trials the server "
                                 "would hand out, and the screening of 'study analyze' says how "
                                 "many of each it keeps.")
  p.add_argument("--study", default=None, metavar="DIR",
                 help="a prepared study folder: simulate subjects through its real schedule and "
                      "screening (the options below marked 'study')")
  p.add_argument("--truth", default=None, metavar="JSON",
                 help="study: true scores in JOD, {condition: jod} or {scene or rate: "
                      "{condition: jod}} (default synthetic: per scene evenly over --spread JOD)")
  p.add_argument("--per-type", type=int, default=50,
                 help="study: simulated subjects of each type (default 50, about 1 s of CPU per "
                      "subject; 200 for tight figures)")
  p.add_argument("--types", default=",".join(("honest", "random", "inverted", "too-fast")),
                 help="study: observer types (default honest,random,inverted,too-fast)")
  p.add_argument("--concurrent", type=int, default=10,
                 help="study: subjects in progress at once (default 10)")
  for flag, kind in (("--min-zeta", float), ("--max-triad-rate", float), ("--min-triples", int),
                     ("--max-golden-failures", int), ("--min-response-ms", float),
                     ("--max-fast-share", float)):
    p.add_argument(flag, type=kind, default=None,
                   help="study: screening threshold as in 'study analyze' (default: its default)")
  p.add_argument("--conditions", type=int, default=8, help="conditions per scene (default 8)")
  p.add_argument("--observers", type=int, default=40, help="observers per run (default 40)")
  p.add_argument("--spread", type=float, default=4.0,
                 help="range of true scores (JOD; with --study the synthetic truth's range)")
  p.add_argument("--noise", type=float, default=1.0,
                 help="multiplies the observer model's scale (default 1)")
  p.add_argument("--random-share", type=float, default=0.1,
                 help="probability that an observer clicks at random (default 0.1)")
  p.add_argument("--model", default="thurstone", choices=("thurstone", "bradley-terry"),
                 help="observer model that draws the votes (default thurstone)")
  p.add_argument("--runs", type=int, default=20,
                 help="independent repetitions averaged (default 20)")
  p.add_argument("--target", type=float, default=0.9, help="Kendall tau to reach")
  p.add_argument("--seed", type=int, default=0, help="seed of the simulation (default 0)")
  p.add_argument("--out", default=None, help="write the full report JSON here")
  p.add_argument("--plot", default=None, metavar="PNG",
                 help="Kendall tau and score RMSE against comparisons, per design (with "
                      "--study: Kendall tau against comparisons, kept vs unscreened subjects)")
  p.add_argument("--json", action="store_true",
                 help="study: last stdout line is the JSON summary (kept per type, acceptance)")
  p.add_argument("--designs", default="full,random,adjacent,active",
                 help="comma-separated designs to compare (default all four)")
  p.set_defaults(func=run_simulate)

  p = sub.add_parser("export-bapps",
                     help="2afc votes as a BAPPS-layout split (judge = share choosing p1)")
  p.add_argument("--study", required=True, help="2afc study folder (or its study.json)")
  source = p.add_mutually_exclusive_group()
  source.add_argument("--db", default=None,
                      help="SQLAlchemy URL of the votes (default sqlite:///<study>/votes.db)")
  source.add_argument("--votes", default=None,
                      help="the server's /admin/export.json instead of the database")
  p.add_argument("--out", required=True, help="split folder to write (ref/, p0/, p1/, judge/)")
  p.add_argument("--min-votes", type=int, default=1,
                 help="leave out triplets with fewer kept votes (default 1; counted)")
  _add_screening_arguments(p, "leave out subjects")
  p.add_argument("--json", action="store_true", help="last stdout line: a JSON summary")
  p.set_defaults(func=run_export_bapps)


def _add_screening_arguments(p, action):
  """The golden-unit and response-time screening flags, shared by `analyze` and `export-bapps`."""
  p.add_argument("--max-golden-failures", type=int, default=0,
                 help=f"{action} failing more golden units than this (default 0)")
  p.add_argument("--min-response-ms", type=float, default=300.0,
                 help="votes faster than this are dropped (default 300 ms)")
  p.add_argument("--max-fast-share", type=float, default=0.2,
                 help=f"{action} with a larger share of too-fast votes (default 0.2)")


def _size(text, flag):
  try:
    width, height = (int(v) for v in text.lower().split("x"))
  except ValueError:
    raise UserError(f"{flag}: expected WxH, got {text!r}") from None
  if width <= 0 or height <= 0:
    raise UserError(f"{flag}: sizes must be positive")
  return width, height


def _rates(text):
  rates = []
  for item in filter(None, (s.strip() for s in text.split(","))):
    label, _, value = item.partition("=")
    try:
      rates.append((label, float(value)))
    except ValueError:
      raise UserError(f"--rates: expected LABEL=BPP, got {item!r}") from None
    if not label or rates[-1][1] <= 0 or "@" in label:
      raise UserError(f"--rates: bad entry {item!r}")
  if not rates:
    raise UserError("--rates: give at least one target")
  return rates


def _prepare_2afc(args, settings):
  from jaxcomp.study import triplets  # pylint: disable=g-import-not-at-top

  given = [flag for flag, value in (("--images", args.images), ("--model", args.model),
                                    ("--anchors", args.anchors), ("--rates", args.rates),
                                    ("--crop", args.crop), ("--design", args.design),
                                    ("--match-to", args.match_to)) if value]
  if given:
    raise UserError(f"{', '.join(given)}: pc mode only (2afc takes --triplets)")
  if not args.triplets:
    raise UserError("--mode 2afc needs --triplets DIR (a folder with ref/, p0/, p1/)")
  study = triplets.prepare(args.triplets, args.out, settings)
  print(f"wrote {args.out}: {len(study['scenes'])} triplets "
        f"({study['stimulus_size'][0]}x{study['stimulus_size'][1]}), {len(study['golden'])} "
        f"golden units, {len(study['training'])} training units")
  return 0


def run_prepare(args):
  if args.trials_per_subject < 1 or args.golden_every < 0:
    raise UserError("--trials-per-subject must be >= 1 and --golden-every >= 0")
  if not 1 <= args.golden_quality <= 100:
    raise UserError(f"--golden-quality must be in 1..100, got {args.golden_quality}")
  settings = {"trials_per_subject": args.trials_per_subject, "golden_every": args.golden_every,
              "seed": args.seed, "golden_quality": args.golden_quality,
              "min_screen": _size(args.min_screen, "--min-screen"),
              "show_reference": args.show_reference, "title": args.title}
  if args.mode == "2afc":
    return _prepare_2afc(args, settings)
  if args.triplets:
    raise UserError("--triplets: 2afc mode only (add --mode 2afc)")
  if not args.images:
    raise UserError("--images is required (pc mode)")
  return _prepare_pc(args, settings)


def _prepare_pc(args, settings):
  from jaxcomp.evaluate import anchors, rd_eval  # pylint: disable=g-import-not-at-top
  from jaxcomp.study import prepare  # pylint: disable=g-import-not-at-top

  anchor_spec = "jpeg-420" if args.anchors is None else args.anchors
  if not args.rate_tolerance > 0:
    raise UserError(f"--rate-tolerance must be > 0, got {args.rate_tolerance:g}")
  specs = [prepare.parse_model(spec) for spec in args.model]
  by_rate = {name: labels for name, _, labels in specs if labels}
  if args.match_to is not None:
    if args.rates:
      raise UserError("give --rates (global targets) or --match-to (per-image targets), not both")
    prepare.check_match_to([name for name, _, _ in specs], by_rate, args.match_to)
    rates = [(label, None) for label in by_rate[args.match_to]]
  else:
    rates = _rates(args.rates or "low=0.25,medium=0.5,high=1.0")
  prepare.check_rate_points(by_rate, [label for label, _ in rates])
  codecs = [rd_eval.model_method(dirs, name) for name, dirs, _ in specs]
  anchor_list = anchors.resolve(anchor_spec) if anchor_spec.strip() else []
  settings = dict(settings, design=args.design or "adjacent")
  study = prepare.prepare(rd_eval.list_images(args.images), codecs, anchor_list, rates, args.out,
                          _size(args.crop or "512x512", "--crop"), settings, by_rate=by_rate,
                          match_to=args.match_to, tolerance=args.rate_tolerance)
  worst = max(abs(s["deviation"]) for scene in study["scenes"] for s in scene["stimuli"].values())
  print(f"wrote {args.out}: {len(study['scenes'])} scenes, {len(study['golden'])} golden units, "
        f"{len(study['training'])} training units; every stimulus within {worst:.1%} of its "
        f"image's target")
  return 0


def run_serve(args):
  from jaxcomp.study import db, manifest, server, serving  # pylint: disable=g-import-not-at-top

  workers = serving.default_workers() if args.workers is None else args.workers
  if workers < 1 or args.threads < 1 or args.proxies < 0 or not 0 < args.port < 65536:
    raise UserError("need --workers >= 1, --threads >= 1, --proxies >= 0, --port in 1..65535")
  if args.max_body < 1024 or args.sessions_per_client < 0 or args.session_window <= 0:
    raise UserError("need --max-body >= 1024, --sessions-per-client >= 0, --session-window > 0")
  study, folder = manifest.load(args.study)
  url = args.db or f"sqlite:///{os.path.join(folder, 'votes.db')}"
  token = args.token or os.environ.get("JAXCOMP_STUDY_TOKEN")
  if not token:
    token = secrets.token_urlsafe(16)
    print(f"experimenter token: {token}", flush=True)
  options = serving.Options(
      study=args.study, url=url, token=token, host=args.host, port=args.port, workers=workers,
      threads=args.threads, proxies=args.proxies,
      limits=server.Limits(max_body_bytes=args.max_body,
                           sessions_per_client=args.sessions_per_client,
                           session_window_s=args.session_window))
  shown = url if "@" not in url else url.split("://")[0] + "://...@" + url.rsplit("@", 1)[1]
  print(f"serving {study.get('title')} on http://{args.host}:{args.port}/ (votes in {shown}; "
        f"{'development server' if args.debug else f'{workers} workers'})", flush=True)
  if not args.debug:
    return serving.serve(options)
  serving.configure_logging()
  logging.getLogger("werkzeug").setLevel(logging.ERROR)  # Its request lines hold query strings.
  db.connect(url).dispose()
  serving.build_app(options).run(host=args.host, port=args.port, threaded=True)
  return 0


def run_analyze(args):
  from jaxcomp.fileio import atomic_path  # pylint: disable=g-import-not-at-top
  from jaxcomp.study import analysis, plots, summary, votes  # pylint: disable=g-import-not-at-top

  all_votes = votes.read(args.votes)
  if not all_votes:
    raise UserError(f"{args.votes}: no votes")
  if args.study and not os.path.isdir(args.study):
    raise UserError(f"--study: not a folder: {args.study}")
  stimuli = summary.stimuli(args.study) if args.study else None
  thresholds = analysis.Thresholds(
      min_zeta=args.min_zeta, max_triad_rate=args.max_triad_rate, min_triples=args.min_triples,
      max_golden_failures=args.max_golden_failures, min_response_ms=args.min_response_ms,
      max_fast_share=args.max_fast_share)
  options = analysis.Options(bt_alpha=args.bt_alpha, prior_sd=args.prior_sd,
                             bootstrap=args.bootstrap, seed=args.seed,
                             reference=args.reference_condition)
  report = analysis.analyze(all_votes, thresholds, options, stimuli)
  for entry in report["rejections"]:
    sys.stderr.write(f"{entry['action']}: {entry['observer']}: {entry['reason']}\n")
  with atomic_path(args.out) as folder:
    os.makedirs(folder)
    with open(os.path.join(folder, "analysis.json"), "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
    with open(os.path.join(folder, "rejections.csv"), "w", newline="", encoding="utf-8") as f:
      writer = csv.DictWriter(f, fieldnames=["observer", "action", "test", "reason"])
      writer.writeheader()
      writer.writerows(report["rejections"])
    with open(os.path.join(folder, "screening.md"), "w", encoding="utf-8") as f:
      f.write(analysis.screening_markdown(report))
    with open(os.path.join(folder, "rates.md"), "w", encoding="utf-8") as f:
      f.write(summary.markdown(report))
    if not args.no_plots:
      plots.write_all(report, os.path.join(folder, "plots"))
  summary = {"subjects": len(report["subjects"]), "kept": len(report["kept_subjects"]),
             "scenes": len(report["scenes"]), "out": args.out}
  print(json.dumps(summary) if args.json else
        f"{summary['kept']} of {summary['subjects']} subjects kept, {summary['scenes']} scenes "
        f"scaled; wrote {args.out}")
  return 0


SCREENING_FLAGS = ("min_zeta", "max_triad_rate", "min_triples", "max_golden_failures",
                   "min_response_ms", "max_fast_share")


def run_simulate_study(args):
  """`study simulate --study DIR`: simulated subjects through the study's schedule and screening."""
  # pylint: disable=g-import-not-at-top
  import dataclasses
  from jaxcomp.fileio import atomic_path
  from jaxcomp.study import analysis, campaign, manifest
  # pylint: enable=g-import-not-at-top

  study, _ = manifest.load(args.study)
  types = tuple(t.strip() for t in args.types.split(",") if t.strip())
  settings = campaign.Settings(per_type=args.per_type, types=types, concurrent=args.concurrent,
                               spread=args.spread, seed=args.seed)
  if args.spread <= 0:
    raise UserError("--spread must be positive")
  given = {k: getattr(args, k) for k in SCREENING_FLAGS if getattr(args, k) is not None}
  thresholds = dataclasses.replace(analysis.Thresholds(), **given)
  if args.truth:
    truth, source = campaign.load_truth(args.truth, study), f"from {args.truth}"
  else:
    truth = campaign.synthetic_truth(study, args.spread, args.seed)
    source = f"synthetic (per scene evenly over {args.spread:g} JOD, seed {args.seed})"
  report = campaign.simulate(study, truth, settings, thresholds, source)
  planned = report["study"]["planned_closed_triples"]
  print(f"{report['study']['design']['name']} design, {report['study']['scenes']} scenes, "
        f"{report['study']['golden_units']} golden units; closed triples planned per subject: "
        f"{planned}; truth {source}")
  for kind, row in report["per_type"].items():
    by = ", ".join(f"{test} {n}" for test, n in row["rejected_by"].items())
    print(f"{kind:9s} kept {row['kept']:4d} of {row['subjects']} ({row['kept_share']:.1%}); "
          f"rejected by {by}; closed triples {row['closed_triples']['min']}-"
          f"{row['closed_triples']['max']}, mean circular rate {row['mean_triad_rate']}")
  for name in ("kept", "unscreened"):
    curve = report["tau"][name]
    points = ", ".join(f"{x}:{t:.2f}" for x, t in zip(curve["comparisons"], curve["tau"]))
    print(f"Kendall tau vs comparisons ({name}): {points}")
  acceptance = report["acceptance"]
  if acceptance["honest_kept"] is not None and acceptance["random_rejected"] is not None:
    print(f"honest kept {acceptance['honest_kept']:.1%} (>= 95%), random rejected "
          f"{acceptance['random_rejected']:.1%} (>= 90%): "
          f"{'met' if acceptance['met'] else 'NOT met'}")
  if args.out:
    with atomic_path(args.out) as path, open(path, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  if args.plot:
    campaign.plot(report, args.plot)
  if args.json:
    print(json.dumps({"per_type": {k: v["kept"] for k, v in report["per_type"].items()},
                      "subjects_per_type": args.per_type, **acceptance}))
  return 0


def run_simulate(args):
  from jaxcomp.study import designs, simulate  # pylint: disable=g-import-not-at-top

  if args.study:
    return run_simulate_study(args)
  only_study = [f"--{k.replace('_', '-')}" for k in ("truth", *SCREENING_FLAGS)
                if getattr(args, k) is not None]
  if only_study or args.json:
    raise UserError(f"{', '.join(only_study or ['--json'])}: only with --study DIR")
  if args.conditions < 3 or args.observers < 1 or args.runs < 1:
    raise UserError("need --conditions >= 3, --observers >= 1, --runs >= 1")
  names = [d.strip() for d in args.designs.split(",") if d.strip()]
  unknown = [d for d in names if d not in designs.DESIGNS]
  if unknown or not names:
    raise UserError(f"--designs: unknown {unknown} (choose from {', '.join(designs.DESIGNS)})")
  settings = simulate.Settings(conditions=args.conditions, observers=args.observers,
                               spread=args.spread, noise=args.noise,
                               random_share=args.random_share, model=args.model, runs=args.runs,
                               seed=args.seed)
  report = simulate.compare(settings, target=args.target, design_names=names)
  for design in names:
    needed = report[design]["comparisons_needed"]
    print(f"{design:9s} comparisons to reach Kendall tau {args.target:g}: "
          f"{needed if needed is not None else 'not reached'}; at the end tau "
          f"{report[design]['accuracy'][-1]:.3f}, RMSE {report[design]['rmse'][-1]:.3f}")
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  if args.plot:
    simulate.plot(report, args.plot)
  print(json.dumps({d: report[d]["comparisons_needed"] for d in names}))
  return 0


def run_export_bapps(args):
  # pylint: disable=g-import-not-at-top
  from jaxcomp.study import analysis, bapps, db, manifest, server
  from jaxcomp.study import votes as votes_lib
  # pylint: enable=g-import-not-at-top

  study, folder = manifest.load(args.study)
  if args.votes:
    all_votes = votes_lib.read(args.votes)
  else:
    url = args.db or f"sqlite:///{os.path.join(folder, 'votes.db')}"
    _require_sqlite_file(url)
    engine = db.connect(url)
    try:
      all_votes = votes_lib.from_rows(server.export_rows(engine))
    finally:
      engine.dispose()
  thresholds = analysis.Thresholds(max_golden_failures=args.max_golden_failures,
                                   min_response_ms=args.min_response_ms,
                                   max_fast_share=args.max_fast_share)
  info = bapps.export(study, folder, all_votes, args.out, thresholds, args.min_votes)
  for entry in info["rejections"]:
    sys.stderr.write(f"{entry['action']}: {entry['observer']}: {entry['reason']}\n")
  if info["skipped"]:
    sys.stderr.write(f"skipped {len(info['skipped'])} of {len(study['scenes'])} triplets with "
                     f"fewer than {args.min_votes} kept votes\n")
  per_triplet = [t["votes"] for t in info["triplets"]]
  summary = {"triplets": len(info["triplets"]), "skipped": len(info["skipped"]),
             "subjects": info["subjects"], "kept": len(info["kept_subjects"]),
             "votes": info["votes"], "min_votes_per_triplet": min(per_triplet),
             "max_votes_per_triplet": max(per_triplet), "left_share": info["left_share"],
             "out": args.out}
  print(json.dumps(summary) if args.json else
        f"wrote {args.out}: {summary['triplets']} triplets judged by {summary['kept']} of "
        f"{summary['subjects']} subjects ({summary['votes']} votes, "
        f"{summary['min_votes_per_triplet']}-{summary['max_votes_per_triplet']} per triplet; "
        f"left chosen {summary['left_share']:.0%}), {summary['skipped']} skipped")
  return 0


def _require_sqlite_file(url):
  """UserError for a SQLite URL whose file does not exist (connecting would create it)."""
  import sqlalchemy as sa  # pylint: disable=g-import-not-at-top

  try:
    parsed = sa.engine.make_url(url)
  except sa.exc.ArgumentError as e:
    raise UserError(f"--db {url}: {e}") from None
  if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
      and not os.path.isfile(parsed.database):
    raise UserError(f"no votes database at {parsed.database} (give --db URL or --votes "
                    "export.json)")
