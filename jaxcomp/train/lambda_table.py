"""The calibrated-lambda table: `{distortion: {quality: lambda}}` as JSON.

`jaxcomp calibrate` writes it (`lambdas.json` in its output folder; its `calibration.json`
carries the same table under the key "lambdas"), and `configs/finetune.py` reads it with the
config argument `calibration=PATH`:

    python -m jaxcomp.train --config=finetune.py:lpips,q2,calibration=cal/lambdas.json ...

    {"lpips": {"1": 0.071, "2": 0.142}, "ssim": {"2": 1.9}}

Qualities are CompressAI qualities 1..8 (JSON keys are strings); lambdas are positive floats for
L = bpp + lambda * D, D as in `configs/finetune.py`.
"""

import json
import math

from jaxcomp.errors import UserError


def validate(table, where="lambda table"):
  """{name: {quality str|int: lambda}} -> {name: {int quality: float lambda}}; UserError if bad."""
  if not isinstance(table, dict):
    raise UserError(f"{where}: expected a JSON object {{distortion: {{quality: lambda}}}}")
  out = {}
  for name, per_quality in table.items():
    if not isinstance(per_quality, dict):
      raise UserError(f"{where}: entry {name!r} is not an object {{quality: lambda}}")
    out[name] = {}
    for quality, lmbda in per_quality.items():
      try:
        q = int(quality)
      except (TypeError, ValueError):
        q = 0
      if not 1 <= q <= 8:
        raise UserError(f"{where}: {name}: quality {quality!r} is not 1..8")
      if (isinstance(lmbda, bool) or not isinstance(lmbda, (int, float))
          or not math.isfinite(lmbda) or lmbda <= 0):
        raise UserError(f"{where}: {name} q{q}: lambda {lmbda!r} is not a positive number")
      out[name][q] = float(lmbda)
  return out


def read(path):
  """The table of a lambdas.json, or of a calibration.json (its "lambdas" key). UserError if bad."""
  try:
    with open(path) as f:
      data = json.load(f)
  except OSError as e:
    raise UserError(f"cannot read the lambda table {path}: {e.strerror or e}") from None
  except ValueError as e:
    raise UserError(f"{path} is not JSON: {e}") from None
  if isinstance(data, dict) and isinstance(data.get("lambdas"), dict):
    data = data["lambdas"]
  return validate(data, path)


def lookup(table, name, quality, path="lambda table"):
  """lambda of (name, quality) in a validated table; UserError naming what the table has."""
  if quality not in table.get(name, {}):
    have = ", ".join(f"{n} q{q}" for n in sorted(table) for q in sorted(table[n])) or "nothing"
    raise UserError(f"{path} has no lambda for {name} q{quality} (it has: {have})")
  return table[name][quality]


def to_json(table):
  """A validated table with string quality keys, sorted (what `json.dump` writes)."""
  return {name: {str(q): table[name][q] for q in sorted(table[name])} for name in sorted(table)}
