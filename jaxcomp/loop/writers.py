"""Metric writers, CLU-style: `writer.write_scalars(step, {name: value})`.

`create(logdir)` gives a TensorBoard writer (tensorboardX: event files without TensorFlow) for a
folder, or a writer that drops everything for none (other hosts than the first, runs without a
workdir), so a training loop writes unconditionally.
"""

import math

import tensorboardX


class TensorBoardWriter:
  """Scalars to TensorBoard event files in `logdir` (flushed after every call)."""

  def __init__(self, logdir):
    self._writer = tensorboardX.SummaryWriter(logdir)

  def write_scalars(self, step, scalars):
    """Writes {tag: float} at `step`; NaN values (e.g. no rate measured yet) are left out."""
    for tag, value in scalars.items():
      value = float(value)
      if not math.isnan(value):
        self._writer.add_scalar(tag, value, step)
    self._writer.flush()

  def close(self):
    self._writer.close()


class NullWriter:
  """A writer that writes nothing."""

  def write_scalars(self, step, scalars):
    del step, scalars

  def close(self):
    pass


def create(logdir):
  """TensorBoardWriter(logdir), or a NullWriter when `logdir` is empty or None."""
  return TensorBoardWriter(logdir) if logdir else NullWriter()
