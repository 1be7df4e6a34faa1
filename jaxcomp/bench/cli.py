"""`jaxcomp bench <name> [options]`: each benchmark is a module with `add_arguments(parser)` and
`run(args) -> int`, registered in `BENCHMARKS` by name and imported only when it runs."""

import argparse
import collections
import importlib

from jaxcomp.registry import Registry

Benchmark = collections.namedtuple("Benchmark", ["module", "help"])

BENCHMARKS = Registry("benchmark")  # name -> Benchmark, in the order `jaxcomp bench --help` lists
for _name, _module, _help in (
    ("train-step", "jaxcomp.bench.train_step",
     "one training step (MSE + rate, Adam) vs CompressAI"),
    ("upsample", "jaxcomp.bench.upsample",
     "fast up-sampling conv vs lax.conv_transpose vs PyTorch"),
    ("metrics", "jaxcomp.bench.metrics",
     "fwd+bwd time of each metric loss vs its PyTorch reference"),
    ("codec", "jaxcomp.bench.coding_speed",
     "compress/decompress and entropy-coder time vs CompressAI"),
    ("precision", "jaxcomp.bench.precision",
     "bfloat16 vs float32 transforms: rate, PSNR, time"),
    ("study", "jaxcomp.study.loadbench",
     "study server load: votes/s, p50/p99 latency, lost votes"),
    ("all", "jaxcomp.bench.all",
     "every benchmark at fixed shapes -> one results JSON"),
    ("report", "jaxcomp.bench.report",
     "merge results JSONs into a markdown table (+ charts)"),
    ("device", "jaxcomp.bench.device",
     "the accelerator check in one call -> <device>.json"),
):
  BENCHMARKS.register(_name, Benchmark(_module, _help))


def register(subparsers):
  lines = "\n".join(f"  {name:<12} {help_text}" for name, (_, help_text) in BENCHMARKS.items())
  parser = subparsers.add_parser(
      "bench", help="benchmarks (median times after compilation)",
      description=f"benchmarks:\n{lines}\n\n'jaxcomp bench <benchmark> --help' for its options",
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("benchmark", choices=list(BENCHMARKS), metavar="<benchmark>",
                      help=f"one of {', '.join(BENCHMARKS)} (listed above)")
  parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
  parser.set_defaults(func=run, parser_class=type(parser))


def run(args):
  name = args.benchmark
  module = importlib.import_module(BENCHMARKS[name][0])
  parser = args.parser_class(prog=f"jaxcomp bench {name}", description=BENCHMARKS[name][1])
  module.add_arguments(parser)
  return module.run(parser.parse_args(args.options))
