"""`jaxcomp bench study`: load benchmark of `jaxcomp study serve` on 127.0.0.1.

For each database (SQLite; PostgreSQL with --postgres URL) and each worker count, a fresh server
(`jaxcomp study serve --workers M`, its own process group) serves a synthetic study; N simulated
subjects (`load.run_subjects`) each do a full session with image fetches at once; then the
experimenter's export is fetched and every acknowledged vote is reconciled with it. The kill
variant sends SIGKILL to one worker process when about a third of the expected votes are in
(gunicorn's master starts a new one); subjects retry failed requests.

Bounded: at most --subjects subjects and --max-seconds per run, on 127.0.0.1 only. The PostgreSQL
database must be a scratch one: the study's tables are dropped before each run.

Reports per run: votes/s, requests/s, p50/p99 latency over all requests, errors, lost and
duplicated votes, the CPU seconds the workers and the load generator used per vote (what a vote
costs, whatever else the machine runs); and the speedup of the most workers over one worker in the
same invocation.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from PIL import Image

from jaxcomp.errors import UserError
from jaxcomp.study import db, load, manifest, schedule

TOKEN = "bench-token"
CONDITIONS = ("c0", "c1", "c2", "c3", "c4", "c5")


def add_arguments(parser):
  parser.add_argument("--subjects", type=int, default=100, help="simulated subjects (default 100)")
  parser.add_argument("--workers", default="1,4", help="worker counts to compare (default 1,4)")
  parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
  parser.add_argument("--trials", type=int, default=10,
                      help="main trials per subject (+2 training, +1 golden per 5; default 10)")
  parser.add_argument("--design", default="adjacent", choices=("adjacent", "full", "random",
                                                                "active"),
                      help="pair design of the synthetic study (default adjacent)")
  parser.add_argument("--size", type=int, default=256, help="stimulus side in pixels")
  parser.add_argument("--think-ms", type=float, default=0.0,
                      help="mean pause before each vote (exponential; 0: as fast as possible)")
  parser.add_argument("--postgres", default=os.environ.get("JAXCOMP_STUDY_POSTGRES_URL"),
                      help="scratch PostgreSQL URL (default $JAXCOMP_STUDY_POSTGRES_URL; its "
                           "study tables are dropped); without it SQLite only")
  parser.add_argument("--databases", default=None,
                      help="comma-separated subset of sqlite,postgresql (default: those available)")
  parser.add_argument("--kill", action="store_true",
                      help="also run the largest worker count with one worker SIGKILLed mid-run")
  parser.add_argument("--max-seconds", type=float, default=90.0, help="per run (default 90)")
  parser.add_argument("--seed", type=int, default=0, help="seed of the subjects' choices")
  parser.add_argument("--out", default=None, help="write the results JSON here")
  parser.add_argument("--plot", default=None, metavar="PNG",
                      help="votes/s and p50/p99 latency per run")
  parser.add_argument("--json", action="store_true", help="last stdout line: the results JSON")


def make_study(folder, trials=10, size=256, design="adjacent", seed=0):
  """A synthetic study: 3 scenes of 6 conditions, 2 training units, golden units every 5 trials."""
  rng = np.random.default_rng(seed)
  base = np.linspace(0, 255, size)[None, :, None] * np.ones((size, 1, 3))

  def png(relative, noise):
    path = os.path.join(folder, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(path)
    return relative

  scenes = []
  for k in range(3):
    scenes.append({"id": f"img{k}@low", "image": f"img{k}", "rate": "low", "target_bpp": 0.25,
                   "reference": png(f"stimuli/img{k}/reference.png", 0),
                   "conditions": {c: png(f"stimuli/img{k}/{c}.png", 4 + 4 * i)
                                  for i, c in enumerate(CONDITIONS)}})
  reference = scenes[0]["reference"]

  def unit(name, expected_noise, other_noise):
    return {"scene": f"img0@{name}", "reference": reference, "expected": "better",
            "conditions": {"better": png(f"stimuli/{name}/better.png", expected_noise),
                           "worse": png(f"stimuli/{name}/worse.png", other_noise)}}

  study = {"format": manifest.FORMAT, "version": manifest.VERSION, "title": "Load benchmark",
           "stimulus_size": [size, size], "display": {"min_screen": [1024, 700]},
           "design": {"name": design, "trials_per_subject": trials, "golden_every": 5,
                      "seed": seed},
           "show_reference": False, "scenes": scenes,
           "golden": [unit(f"golden{k}", 1, 60) for k in range(max(1, trials // 5))],
           "training": [unit("training0", 1, 80), unit("training1", 2, 50)]}
  manifest.write(study, folder)
  return study


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def cpu_seconds(pid):
  """User + system CPU seconds of a process so far (0 if it is gone)."""
  try:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
  except (OSError, IndexError, ValueError):
    return 0.0


def worker_pids(master):
  """Process ids of the gunicorn master's children (its workers)."""
  try:
    with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as f:
      return [int(p) for p in f.read().split()]
  except OSError:
    return []


class Server:
  """`jaxcomp study serve` in a child process group; `stop()` ends it (SIGTERM, then SIGKILL)."""

  def __init__(self, study_dir, url, workers, threads=4, log=None, extra=(), timeout_s=90.0):
    self.port = free_port()
    self.workers = workers
    argv = [sys.executable, "-c", "import sys; from jaxcomp.cli import main; sys.exit(main())",
            "study", "serve", "--study", study_dir, "--db", url, "--workers", str(workers),
            "--threads", str(threads), "--port", str(self.port), "--token", TOKEN, *extra]
    self.log = log if log is not None else subprocess.DEVNULL
    self.process = subprocess.Popen(argv, stdout=self.log, stderr=self.log,
                                    start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
      if self.process.poll() is not None:
        raise UserError(f"the study server exited with status {self.process.returncode}")
      if len(worker_pids(self.process.pid)) >= workers and self._answers():
        return
      time.sleep(0.2)
    self.stop()
    raise UserError(f"the study server did not start within {timeout_s:.0f} s")

  def _answers(self):
    try:
      with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as response:
        return response.status == 200
    except OSError:
      return False

  def get_json(self, path):
    request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as response:
      return json.loads(response.read())

  def kill_one_worker(self):
    """SIGKILLs the busiest worker (most CPU so far: it holds connections); returns its pid."""
    pids = worker_pids(self.process.pid)
    if not pids:
      return None
    busiest = max(pids, key=cpu_seconds)
    os.kill(busiest, signal.SIGKILL)
    return busiest

  def stop(self):
    if self.process.poll() is None:
      os.killpg(self.process.pid, signal.SIGTERM)
      try:
        self.process.wait(timeout=20)
      except subprocess.TimeoutExpired:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def reset_database(url):
  """Drops the study's tables of a scratch database (PostgreSQL) so a run starts empty."""
  engine = db.open_engine(url)
  try:
    db.metadata.drop_all(engine)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"--postgres: cannot reset the scratch database: {e}".splitlines()[0]) from None
  finally:
    engine.dispose()


def run_one(study_dir, url, workers, args, kill, expected_votes, log):
  """One server + one load run; the result dict."""
  if url.startswith("postgresql"):
    reset_database(url)
  server = Server(study_dir, url, workers, args.threads, log,
                  extra=("--sessions-per-client", "0"))
  killed = []

  def on_progress(acked):
    if kill and not killed and acked >= expected_votes // 3:
      killed.append(server.kill_one_worker())

  workers_cpu = {p: cpu_seconds(p) for p in worker_pids(server.process.pid)}
  client_cpu = time.process_time()
  try:
    outcomes, seconds = load.run_subjects("127.0.0.1", server.port, args.subjects, args.seed,
                                          args.think_ms / 1000, args.max_seconds,
                                          on_progress=on_progress)
    client_cpu = time.process_time() - client_cpu
    pids = worker_pids(server.process.pid)
    server_cpu = sum(cpu_seconds(p) - workers_cpu.get(p, 0.0) for p in pids)
    export = server.get_json("/admin/export.json")
    workers_after = len(pids)
  finally:
    server.stop()
  result = {"database": url.split(":")[0].split("+")[0], "workers": workers,
            "loadavg_1min_after": round(os.getloadavg()[0], 2),
            "threads": args.threads, "kill": kill, **load.summary(outcomes, seconds),
            **load.reconcile(outcomes, export),
            "server_cpu_s": round(server_cpu, 2), "client_cpu_s": round(client_cpu, 2)}
  votes = max(result["votes"], 1)
  result["server_cpu_ms_per_vote"] = round(1000 * server_cpu / votes, 2)
  result["client_cpu_ms_per_vote"] = round(1000 * client_cpu / votes, 2)
  if kill:
    result["killed_pid"] = killed[0] if killed else None
    result["workers_after"] = workers_after
  return result


def machine():
  """CPU model, cores usable by this process, load average."""
  model = "unknown"
  try:
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
      model = next((line.split(":", 1)[1].strip() for line in f
                    if line.startswith("model name")), model)
  except OSError:
    pass
  return {"cpu": model, "cores_usable": sorted(os.sched_getaffinity(0)),
          "cores_total": os.cpu_count(), "loadavg_at_start": list(os.getloadavg())}


def run(args):
  try:
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
  except ValueError:
    counts = []
  if not counts or min(counts) < 1 or args.subjects < 1 or args.trials < 1 or args.threads < 1:
    raise UserError("need --workers like 1,4 (each >= 1), --subjects, --trials, --threads >= 1")
  if not 0 < args.max_seconds <= 600:
    raise UserError("--max-seconds must be in (0, 600]")
  available = ["sqlite"] + (["postgresql"] if args.postgres else [])
  wanted = available if args.databases is None else [
      d.strip() for d in args.databases.split(",") if d.strip()]
  for name in wanted:
    if name not in available:
      raise UserError(f"--databases: {name!r} is not available (postgresql needs --postgres URL)")
  report = {"machine": machine(), "settings": {
      "subjects": args.subjects, "trials": args.trials, "design": args.design, "size": args.size,
      "think_ms": args.think_ms, "threads": args.threads}, "runs": []}
  with tempfile.TemporaryDirectory(prefix="jaxcomp-bench-study-") as tmp:
    study_dir = os.path.join(tmp, "study")
    study = make_study(study_dir, args.trials, args.size, args.design, args.seed)
    expected = args.subjects * schedule.total_trials(study)
    with open(os.path.join(tmp, "server.log"), "w", encoding="utf-8") as log:
      for name in wanted:
        plan = [(w, False) for w in counts] + ([(max(counts), True)] if args.kill else [])
        for k, (workers, kill) in enumerate(plan):
          url = (f"sqlite:///{os.path.join(tmp, f'votes-{k}.db')}" if name == "sqlite"
                 else args.postgres)
          result = run_one(study_dir, url, workers, args, kill, expected, log)
          result["think_ms"] = args.think_ms
          report["runs"].append(result)
          print(_line(result), flush=True)
  report["speedup"] = _speedups(report["runs"], counts)
  for name, value in report["speedup"].items():
    print(f"{name}: {max(counts)} workers / 1 worker votes/s = {value}x")
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  if args.plot:
    plot(report["runs"], args.plot)
  if args.json:
    print(json.dumps(report))
  return 0


def _line(r):
  return (f"{r['database']:10s} workers={r['workers']}{' +SIGKILL' if r['kill'] else ''}: "
          f"{r['votes_per_s']} votes/s, {r['requests_per_s']} req/s, p50 {r['p50_ms']} ms, "
          f"p99 {r['p99_ms']} ms, {r['finished']}/{r['subjects']} finished, errors "
          f"{sum(r['errors'].values())}, retried {sum(r['retried'].values())}, acknowledged "
          f"{r['acknowledged']} (+{r['stored_unacknowledged']} stored, answer lost), lost "
          f"{r['lost']}, duplicated {r['duplicated']}; CPU per vote: server "
          f"{r['server_cpu_ms_per_vote']} ms (workers only), load generator "
          f"{r['client_cpu_ms_per_vote']} ms")


def _speedups(runs, counts):
  out = {}
  if 1 not in counts or max(counts) == 1:
    return out
  for name in {r["database"] for r in runs}:
    one = [r for r in runs if r["database"] == name and r["workers"] == 1 and not r["kill"]]
    top = [r for r in runs if r["database"] == name and r["workers"] == max(counts)
           and not r["kill"]]
    if one and top and one[0]["votes_per_s"]:
      out[name] = round(top[0]["votes_per_s"] / one[0]["votes_per_s"], 2)
  return out


def label(run):
  """'sqlite x4 +kill'-style name of a run (after its 'tag', if it has one)."""
  return (f"{run['tag']}: " if run.get("tag") else "") + (
      f"{run['database']} x{run['workers']}" + (" +kill" if run["kill"] else "")
          + (f" think {run['think_ms']:g} ms" if run.get("think_ms") else ""))


def plot(runs, path):
  """Bars of votes/s and of p50/p99 latency (log scale), one pair per run, into `path`."""
  # matplotlib (about half a second to import) only when a figure is drawn.
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  names = [label(r) for r in runs]
  x = np.arange(len(runs))
  figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  colors = ["tab:blue" if r["database"] == "sqlite" else "tab:orange" for r in runs]
  left.bar(x, [r["votes_per_s"] for r in runs], color=colors)
  left.set(ylabel="acknowledged votes / s", title="throughput (100 subjects at once)")
  right.bar(x - 0.2, [r["p50_ms"] for r in runs], 0.4, label="p50", color="tab:gray")
  right.bar(x + 0.2, [r["p99_ms"] for r in runs], 0.4, label="p99", color="tab:red")
  right.axhline(250, color="black", linestyle=":", linewidth=0.8)
  right.set(ylabel="request latency (ms)", yscale="log", title="latency, all requests")
  right.legend()
  for axis in (left, right):
    axis.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
