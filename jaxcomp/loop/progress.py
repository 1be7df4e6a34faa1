"""Progress lines of long jobs (training loops): durations for the ETA."""

import math


def format_duration(seconds):
  """'12m05s' under an hour, '3h07m' above; '?' when not finite (no rate measured yet)."""
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"
