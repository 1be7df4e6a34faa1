"""The package graph of jaxcomp has layers, and imports point down only (issue 16).

Every import in every module of jaxcomp is read from the source (module-level and inside
functions: `ast.walk`), mapped to the package it names (`jaxcomp.codec.models` -> codec), and
checked against `LAYERS`:

  L0  errors, fileio, pixels, images, zoo, registry, the package root: no jaxcomp imports above
      L0
  L1  nets: VGG16, the pretrained-weight store, array ops shared by metrics and saliency models;
      loop: the training-loop kit (checkpoints, writers, progress, preemption, NaN stop)
  L2  codec (models, entropy models, their CDF tables, the exported-model directory), saliency
  L3  metrics, coding (bitstreams: backends, container, compress/decompress)
  L4  train, evaluate, perceptual
  L5  study, bench
  L6  entry points: jaxcomp/cli.py, every */cli.py and *_cli.py, the __main__ modules; they may
      import anything, and nothing below them may import them.

A package may import its own layer or any below, never above, and the graph of packages has no
cycle (two packages of one layer importing each other fail too).
"""

import ast
import functools
import os

import pytest

import jaxcomp

ROOT = os.path.dirname(jaxcomp.__file__)
ENTRY = "<entry>"  # the node of every command-line module
LAYERS = {
    "jaxcomp": 0, "errors": 0, "fileio": 0, "pixels": 0, "images": 0, "zoo": 0, "registry": 0,
    "nets": 1, "loop": 1,
    "codec": 2, "saliency": 2,
    "metrics": 3, "coding": 3,
    "train": 4, "evaluate": 4, "perceptual": 4,
    "study": 5, "bench": 5,
    ENTRY: 6,
}
# Known exceptions, (importer, imported) edges allowed despite the rules above, each with its reason.
# Empty: every cycle of the old graph (codec<->coding, metrics<->saliency, metrics<->perceptual,
# train -> cli) was removed by moving code to its layer.
EXCEPTIONS = {}


def is_entry(module):
  """True for command-line modules ('cli', 'evaluate.cli', 'evaluate.plot_cli', '__main__', ...)."""
  last = module.split(".")[-1]
  return last in ("cli", "__main__") or last.endswith("_cli")


def node(module):
  """Graph node of a dotted module path below jaxcomp ('' for the root): its top-level package,
  or ENTRY for command-line modules."""
  if is_entry(module):
    return ENTRY
  return module.split(".")[0] if module else "jaxcomp"


def _modules(root):
  """{dotted module name below jaxcomp ('' for __init__): file path} of every .py file."""
  found = {}
  for folder, _, files in os.walk(root):
    for name in files:
      if name.endswith(".py"):
        rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
        if rel[-1] == "__init__":
          rel = rel[:-1]
        found[".".join(rel)] = os.path.join(folder, name)
  return found


def _resolve(name, known):
  """Longest known module prefix of a dotted name below jaxcomp ('' if only the root)."""
  parts = name.split(".") if name else []
  while parts and ".".join(parts) not in known:
    parts.pop()
  return ".".join(parts)


def imports(root=ROOT):
  """[(importer module, imported module, 'file:line')] for every jaxcomp import in the package."""
  known = _modules(root)
  found = []
  for module, path in sorted(known.items()):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    for n in ast.walk(tree):
      targets = []
      if isinstance(n, ast.Import):
        targets = [a.name for a in n.names]
      elif isinstance(n, ast.ImportFrom):
        if n.level:  # relative: resolve against the importing package
          base = ["jaxcomp"] + package[:len(package) - n.level + 1]
          stem = ".".join(base + ([n.module] if n.module else []))
        else:
          stem = n.module or ""
        targets = [f"{stem}.{a.name}" for a in n.names]
      for target in targets:
        if target == "jaxcomp" or target.startswith("jaxcomp."):
          found.append((module, _resolve(target[len("jaxcomp."):], known),
                        f"{os.path.relpath(path, root)}:{n.lineno}"))
  return found


def package_graph(edges):
  """{node: set of nodes it imports} from `imports`' triples; self-imports and the imports of
  command-line modules (which may import anything, and are checked by the layer rule) dropped."""
  graph = {}
  for importer, imported, _ in edges:
    a, b = node(importer), node(imported)
    graph.setdefault(a, set())
    if a != b and a != ENTRY:
      graph[a].add(b)
  return graph


def cycles(graph):
  """Strongly connected components with more than one node (Tarjan), each a sorted list."""
  index, low, stack, on_stack, result = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        result.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return result


def violations(edges, layers=LAYERS, exceptions=EXCEPTIONS):
  """Every broken rule as a readable line; [] when the graph is layered."""
  problems = []
  for importer, imported, where in edges:
    a, b = node(importer), node(imported)
    if a == b or a == ENTRY or (a, b) in exceptions:
      continue
    for p in (a, b):
      if p not in layers:
        problems.append(f"{where}: package {p!r} has no layer in LAYERS")
    if a in layers and b in layers and layers[b] > layers[a]:
      problems.append(f"{where}: {a} (L{layers[a]}) imports {imported or 'jaxcomp'} "
                      f"({b}, L{layers[b]}): an import pointing up")
  graph = package_graph(edges)
  for (a, b) in exceptions:
    graph.get(a, set()).discard(b)
  problems += [f"package cycle: {' <-> '.join(c)}" for c in cycles(graph)]
  return sorted(set(problems))


@functools.lru_cache(maxsize=None)
def _jaxcomp_imports():
  return tuple(imports())


def test_jaxcomp_is_layered():
  edges = list(_jaxcomp_imports())
  assert len(edges) > 300  # the scan sees module-level and function-level imports
  assert violations(edges) == []


def test_every_package_has_a_layer():
  packages = {node(m) for m in _modules(ROOT)}
  assert packages <= set(LAYERS), packages - set(LAYERS)


def test_function_level_imports_are_seen(tmp_path):
  """An import inside a function counts like one at the top (and relative imports resolve)."""
  for pkg in ("codec", "coding"):
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text("")
  (tmp_path / "__init__.py").write_text("")
  (tmp_path / "codec" / "export.py").write_text(
      "def load():\n  from jaxcomp.coding import tables\n  return tables\n")
  (tmp_path / "coding" / "tables.py").write_text("from ..codec import export\n")
  edges = imports(str(tmp_path))
  assert {(a, b) for a, b, _ in edges} == {("codec.export", "coding.tables"),
                                           ("coding.tables", "codec.export")}
  assert violations(edges) == ["codec/export.py:2: codec (L2) imports coding.tables (coding, L3): "
                               "an import pointing up", "package cycle: codec <-> coding"]


def _with(*extra):
  return list(_jaxcomp_imports()) + [(a, b, "synthetic") for a, b in extra]


@pytest.mark.parametrize("extra, expected", [
    # the old codec <-> coding cycle: codec/export.py imported coding/tables.py
    ([("codec.export", "coding.tables")],
     ["package cycle: codec <-> coding",
      "synthetic: codec (L2) imports coding.tables (coding, L3): an import pointing up"]),
    # the old metrics <-> saliency cycle: saliency/learned.py imported metrics/lpips.py
    ([("saliency.learned", "metrics.lpips")],
     ["package cycle: metrics <-> saliency",
      "synthetic: saliency (L2) imports metrics.lpips (metrics, L3): an import pointing up"]),
    # the old metrics <-> perceptual cycle: metrics/dpl.py imported perceptual/heads.py
    ([("metrics.dpl", "perceptual.heads")],
     ["package cycle: evaluate <-> metrics <-> perceptual",  # perceptual -> evaluate -> metrics
      "synthetic: metrics (L3) imports perceptual.heads (perceptual, L4): an import pointing up"]),
    # the old train -> cli edge: train/quickstart.py called jaxcomp.cli.main
    ([("train.quickstart", "cli")],
     ["synthetic: train (L4) imports cli (<entry>, L6): an import pointing up"]),
    # a cycle inside one layer fails too, though no import points up
    ([("coding.compression", "metrics.psnr"), ("metrics.psnr", "coding.container")],
     ["package cycle: coding <-> metrics"]),
])
def test_todays_cycles_would_fail(extra, expected):
  """The checker fails on each cycle of the graph before issue 16 (added to today's imports)."""
  assert violations(_with(*extra)) == expected
