"""The loop driver: periodic logging, checkpoints and evaluation, NaN/Inf stop, preemption.

Every trainer supplies its step and a few callbacks; the driver owns the schedule:

    for step in first + 1 ... total:
      metrics = train_step(step)                      # device arrays are fine (fetched lazily)
      every log_every (and at the end):    means over the window -> report() -> one log line,
                                           writer: train/<name> and train/steps_per_s
      every checkpoint_every, at the end
      and on a preemption signal:          save(step)
      every eval_every (and at the end):   evaluate(step) -> writer: eval/<name>
      a NaN/Inf in `finite` metrics:       DivergedError naming the step and the last checkpoint
      a preemption signal:                 save, then stop (only with `save`: without
                                           checkpoints a signal acts as it would without us)
"""

import numpy as np
import jax

from jaxcomp.errors import UserError
from jaxcomp.loop import preemption as preemption_lib
from jaxcomp.loop import progress as progress_lib
from jaxcomp.loop import writers as writers_lib


class DivergedError(UserError):
  """The loss (or another watched metric) became NaN or Inf."""


def due(every, step_count):
  """True when `every` (0: never) divides `step_count`."""
  return bool(every) and step_count % every == 0


def check_finite(history, keys, last_saved, hint=""):
  """Raises DivergedError at the first step of `history` [(step, metrics)] with NaN/Inf in `keys`.

  The message names the metrics, the step and the last good checkpoint (`last_saved`, or None),
  then `hint` (e.g. what to lower).
  """
  for step_count, metrics in history:
    bad = [k for k in keys if not np.all(np.isfinite(metrics[k]))]
    if bad:
      where = (f"the last good checkpoint is step {last_saved}" if last_saved is not None
               else "no checkpoint was saved")
      raise DivergedError(f"{' and '.join(bad)} became NaN/Inf at step {step_count}; stopped "
                          f"({where}){hint}")


def flag_or_field(names):
  """name(field) -> the user's name of a config field: names[field] (a flag, e.g. '--steps') or
  'config.<field>'."""
  return lambda field: names.get(field, f"config.{field}")


class Loop:
  """Runs a trainer's steps with the periodic actions of every trainer.

  Args:
    first_step: the step already done (0, or a restored checkpoint's).
    total_steps: the last step to run.
    report: (means {name: float}, step, speed text) -> (log line, {name: float} to write as
      train/<name>); `means` are the metrics' means over the steps since the last flush.
    log: callable taking a line (absl's logging.info, print, a list's append ...).
    writer: from `writers.create` (None: nothing written).
    log_every, checkpoint_every, eval_every: periods in steps (0: never, except at the end for
      the log line, checkpoints when `save` is given, and evaluation when `evaluate` is given).
    save: save(step) or None (no checkpoints).
    evaluate: evaluate(step) -> {name: float} or None; it may log its own line.
    finite: metric names that must stay finite.
    last_saved: the step of the newest checkpoint on disk (None: none), for the NaN message.
    hint: appended to the NaN/Inf message.
    clock_from_start: the first progress line's rate includes compilation (`progress.Progress`).
  """

  def __init__(self, first_step, total_steps, report, *, log, writer=None, log_every=1,
               checkpoint_every=0, eval_every=0, save=None, evaluate=None, finite=("loss",),
               last_saved=None, hint="", clock_from_start=False):
    self.first_step, self.total = first_step, total_steps
    self._report, self._log = report, log
    self._writer = writer or writers_lib.NullWriter()
    self.log_every, self.checkpoint_every, self.eval_every = log_every, checkpoint_every, eval_every
    self._save, self._evaluate = save, evaluate
    self.finite, self.last_saved, self.hint = tuple(finite), last_saved, hint
    self.progress = progress_lib.Progress(first_step, total_steps, clock_from_start)
    self.step = first_step
    self.preempted = False
    self.last_rate = None  # steps/s of the last progress line that measured one
    self.last_means = None  # the metrics' means of the last progress line

  def run(self, train_step):
    """Runs train_step(step) -> metrics for the remaining steps; returns the last step done."""
    history = []  # (step, metrics) since the last flush
    with preemption_lib.Preemption(enabled=self._save is not None) as preemption:
      for step_count in range(self.first_step + 1, self.total + 1):
        history.append((step_count, train_step(step_count)))
        self.step = step_count
        last = step_count == self.total
        preempted = preemption.reached(step_count)
        save_now = self._save is not None and (due(self.checkpoint_every, step_count) or last
                                               or preempted)
        log_now = due(self.log_every, step_count) or last
        if log_now or save_now:
          history = jax.device_get(history)
          check_finite(history, self.finite, self.last_saved, self.hint)
          if log_now:
            self._write_train(history, step_count)
          history = []
        if save_now:
          self._save(step_count)
          self.last_saved = step_count
        if self._evaluate is not None and (due(self.eval_every, step_count) or last):
          results = self._evaluate(step_count)
          self._writer.write_scalars(step_count, {f"eval/{k}": v for k, v in results.items()})
        if preempted:
          self.preempted = True
          self._log(f"preemption signal: saved step {step_count} and stopped")
          break
    return self.step

  def _write_train(self, history, step_count):
    means = {k: float(np.mean([m[k] for _, m in history])) for k in history[-1][1]}
    self.last_means = means
    rate, eta = self.progress.report(step_count)
    if not np.isnan(rate):
      self.last_rate = rate
    line, scalars = self._report(means, step_count, progress_lib.Progress.describe(rate, eta))
    self._log(line)
    self._writer.write_scalars(step_count, dict(
        {f"train/{k}": v for k, v in scalars.items()}, **{"train/steps_per_s": rate}))
