"""`jaxcomp bench metrics`: the JSON contract on a tiny, reference-free run (no timing asserted)."""

import argparse
import json

import pytest

from jaxcomp.bench import metrics as bench_metrics

pytestmark = pytest.mark.slow


def test_bench_metrics_json(capsys):
  parser = argparse.ArgumentParser()
  bench_metrics.add_arguments(parser)
  args = parser.parse_args(
      ["--metrics", "mse,gmsd", "--batch", "1", "--size", "16", "16", "--repeats", "1",
       "--no-reference", "--json"])
  assert bench_metrics.run(args) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["batch"] == 1 and result["size"] == [16, 16]
  assert set(result["metrics"]) == {"mse", "gmsd"}
  assert all(v["jax_s"] > 0 for v in result["metrics"].values())
