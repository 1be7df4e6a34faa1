"""Progress lines of long jobs (training loops): steps/s and the ETA."""

import math
import time


def format_duration(seconds):
  """'12m05s' under an hour, '3h07m' above; '?' when not finite (no rate measured yet)."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
  """Steps/s and ETA over the steps since the previous report.

  By default the first report has no rate (its steps include compilation); with
  `clock_from_start` the clock starts at construction, so the first report has one too.
  """

  def __init__(self, first_step, total_steps, clock_from_start=False):
    self.total = total_steps
    self._step, self._time = first_step, (time.time() if clock_from_start else None)

  def report(self, step_count):
    """(steps/s, ETA seconds); steps/s is NaN for a first report that includes compilation."""
    now = time.time()
    rate = (math.nan if self._time is None
            else (step_count - self._step) / max(now - self._time, 1e-9))
    self._step, self._time = step_count, now
    eta = (self.total - step_count) / rate if rate > 0 else math.nan
    return rate, eta

  @staticmethod
  def describe(rate, eta):
    """'compiling' for a first report without a rate, else '3.21 steps/s, ETA 12m05s'."""
    if math.isnan(rate):
      return "compiling"
    return f"{rate:.2f} steps/s, ETA {format_duration(eta)}"
