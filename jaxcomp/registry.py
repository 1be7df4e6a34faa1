"""Name -> implementation, one convention for the whole package, and one spec syntax.

Metrics, classical anchors, saliency models, architectures, entropy-coder backends and benchmarks
are each a `Registry`: a read-only mapping name -> entry (a factory, a dataclass, a module path)
with one way to add to it, one way to look a spec up, and one error for an unknown name.

A spec is `name` or `name:arg` (`parse_spec`): the name ends at the first colon and the arg is
everything after it, colons included, possibly empty:

    parse_spec("ssim")              -> ("ssim", None)
    parse_spec("dpl:/runs/heads")   -> ("dpl", "/runs/heads")
    parse_spec("learned:C:/x:y")    -> ("learned", "C:/x:y")
    parse_spec("dpl:")              -> ("dpl", "")
    parse_spec("configs/x.py:q3")   -> ("configs/x.py", "q3")

An entry registered with `takes_arg=True` is a family (`dpl:<path>`, `learned:<dir>`): `lookup`
gives it the arg; a plain entry refuses one.

    METRICS = Registry("metric", modules=("jaxcomp.metrics.psnr", "jaxcomp.metrics.ssim"))

    @METRICS.register("ssim")
    def _ssim(arg): ...

    factory, arg = METRICS.lookup("ssim")   # UserError: unknown metric 'x' (known: ...)

`modules` is the explicit list of modules that register entries into the registry when imported;
they are imported on the first read (so a registry can be listed by a cheap `--help` without
importing jax), never found by scanning a folder.
"""

import collections.abc
import importlib

from jaxcomp.errors import UserError


def parse_spec(spec):
  """'name' -> ('name', None); 'name:arg' -> ('name', 'arg'), split at the first colon.

  The arg keeps any further colons and may be empty ('dpl:' -> ('dpl', '')). Surrounding
  whitespace of the whole spec is removed.
  """
  if not isinstance(spec, str):
    raise UserError(f"expected a name or name:arg, got {spec!r}")
  name, sep, arg = spec.strip().partition(":")
  return name, (arg if sep else None)


class Registry(collections.abc.Mapping):
  """A mapping name -> entry of one kind of thing, filled by `register`.

  Args:
    kind: what the entries are, for messages ("metric", "anchor", "entropy coder").
    modules: dotted names of the modules that register the entries, imported on first read.
    hint: text appended to the unknown-name error (e.g. how to make a missing entry).

  Iteration is in registration order (`--help` listings); `names()` is sorted, with families
  shown as 'name:<arg>'.
  """

  def __init__(self, kind, modules=(), hint=""):
    self.kind = kind
    self.hint = hint
    self._modules = tuple(modules)
    self._loaded = not self._modules
    self._entries = {}
    self._takes_arg = set()

  def register(self, name, entry=None, *, takes_arg=False):
    """Adds `entry` under `name` and returns it; without `entry`, a decorator that adds its
    argument. ValueError if the name is taken or is not a plain name (no colon)."""

    def add(value):
      if not name or ":" in name:
        raise ValueError(f"{self.kind} name {name!r} must be non-empty and have no colon")
      if name in self._entries:
        raise ValueError(f"{self.kind} '{name}' is registered twice")
      self._entries[name] = value
      if takes_arg:
        self._takes_arg.add(name)
      return value

    return add if entry is None else add(entry)

  def _load(self):
    if not self._loaded:
      self._loaded = True  # first, so that a module reading this registry does not recurse
      try:
        for module in self._modules:
          importlib.import_module(module)
      except BaseException:
        self._loaded = False
        raise

  def __getitem__(self, name):
    self._load()
    return self._entries[name]

  def __iter__(self):
    self._load()
    return iter(list(self._entries))

  def __len__(self):
    self._load()
    return len(self._entries)

  def remove(self, name):
    """Removes the entry `name` (KeyError if absent), e.g. one a test registered for a while."""
    del self._entries[name]
    self._takes_arg.discard(name)

  def copy(self):
    """An independent registry with the same entries (e.g. to register into in a test)."""
    self._load()
    other = Registry(self.kind, hint=self.hint)
    other._entries = dict(self._entries)
    other._takes_arg = set(self._takes_arg)
    return other

  def takes_arg(self, name):
    """True for a family registered with `takes_arg=True`."""
    self._load()
    return name in self._takes_arg

  def names(self):
    """Plain names sorted, then families as 'name:<arg>' sorted."""
    self._load()
    plain = sorted(n for n in self._entries if n not in self._takes_arg)
    return plain + sorted(f"{n}:<arg>" for n in self._takes_arg)

  def unknown(self, spec, known=None):
    """The one-line UserError for a spec that names nothing here."""
    known = self.names() if known is None else known
    return UserError(f"unknown {self.kind} {spec!r} (known: {', '.join(known)}){self.hint}")

  def lookup(self, spec):
    """'name' or 'name:arg' -> (entry, arg); arg is None for a plain name.

    UserError (one line, listing the known names) for an unknown name, a plain name given an
    arg, or a family given none.
    """
    name, arg = parse_spec(spec)
    if name not in self or (arg is None) == self.takes_arg(name):
      raise self.unknown(spec.strip() if isinstance(spec, str) else spec)
    return self._entries[name], arg
