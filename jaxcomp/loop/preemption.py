"""Preemption: SIGTERM or SIGINT on one host, the coordinator's notice on a pod."""

import signal
import threading

import jax
from jax.experimental import multihost_utils

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preemption:
  """Notices a preemption signal; the loop then saves a checkpoint and stops.

  Multi-host runs use jax's preemption sync point (every host saves at the same step);
  single-host runs handle SIGTERM (a scheduler's notice) and SIGINT (Ctrl-C) for the duration of
  the `with` block (from the main thread only, where Python delivers signals). A second signal
  before the loop reacts restores the previous handlers' behaviour (Ctrl-C twice interrupts).
  Not `enabled` (a run without checkpoints): nothing is installed and `reached` is False.
  """

  def __init__(self, enabled=True):
    self.enabled = enabled
    self.signalled = False
    self._previous = {}

  def __enter__(self):
    if (self.enabled and jax.process_count() == 1
        and threading.current_thread() is threading.main_thread()):
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc):
    self._restore()

  def _restore(self):
    for s, previous in self._previous.items():
      signal.signal(s, previous if previous is not None else signal.SIG_DFL)
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.signalled:  # the second signal: let it act as it would without us
      previous = self._previous.get(signum)
      self._restore()
      if callable(previous):
        previous(signum, None)
      else:
        signal.raise_signal(signum)
      return
    self.signalled = True

  def reached(self, step_count):
    """True once a preemption was signalled (on a pod: at the agreed step); never when not
    `enabled`."""
    if not self.enabled:
      return False
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step_count)
    return self.signalled
