"""jaxcomp.registry: the one name -> implementation convention and its `name:arg` spec parser."""

import pytest

from jaxcomp.errors import UserError
from jaxcomp.registry import Registry, parse_spec


@pytest.mark.parametrize("spec,expected", [
    ("ssim", ("ssim", None)),
    ("dpl:/runs/heads", ("dpl", "/runs/heads")),
    ("learned:C:/x:y", ("learned", "C:/x:y")),  # colons in the arg stay in the arg
    ("zoo:a:b:c", ("zoo", "a:b:c")),
    ("dpl:", ("dpl", "")),  # an empty arg is not a missing one
    ("configs/hyperprior.py:q3", ("configs/hyperprior.py", "q3")),
    ("  mse  ", ("mse", None)),
])
def test_parse_spec(spec, expected):
  assert parse_spec(spec) == expected


def test_parse_spec_refuses_non_strings():
  with pytest.raises(UserError, match="name or name:arg"):
    parse_spec(None)


def _toys():
  toys = Registry("toy", hint=" (make one with `toy new`)")
  toys.register("b", 2)
  toys.register("a", 1)

  @toys.register("family", takes_arg=True)
  def _family(arg):
    return f"family of {arg!r}"

  return toys


def test_lookup_plain_and_family():
  toys = _toys()
  assert toys.lookup("a") == (1, None)
  factory, arg = toys.lookup("family:x:y")
  assert arg == "x:y" and factory(arg) == "family of 'x:y'"
  assert toys.lookup("family:")[1] == ""
  assert list(toys) == ["b", "a", "family"]  # registration order, for --help listings
  assert toys.names() == ["a", "b", "family:<arg>"]
  assert "a" in toys and "c" not in toys and toys["b"] == 2 and len(toys) == 3


@pytest.mark.parametrize("spec", ["c", "a:1", "family", "c:family"])
def test_unknown_is_one_line_listing_the_known(spec):
  with pytest.raises(UserError) as info:
    _toys().lookup(spec)
  message = str(info.value)
  assert message == (f"unknown toy {spec!r} (known: a, b, family:<arg>) (make one with `toy new`)")
  assert "\n" not in message


def test_duplicate_and_malformed_registration():
  toys = _toys()
  with pytest.raises(ValueError, match="toy 'a' is registered twice"):
    toys.register("a", 3)
  with pytest.raises(ValueError, match="twice"):
    toys.register("family")(lambda arg: None)
  for bad in ("", "x:y"):
    with pytest.raises(ValueError, match="no colon"):
      toys.register(bad, 0)
  assert toys.lookup("a") == (1, None)  # the first registration stays


def test_modules_are_imported_on_first_read_only(monkeypatch):
  imported = []
  monkeypatch.setattr("importlib.import_module", imported.append)
  lazy = Registry("thing", modules=("pkg.one", "pkg.two"))
  lazy.register("x", 0)
  assert imported == []
  assert lazy.names() == ["x"] and "x" in lazy
  assert imported == ["pkg.one", "pkg.two"]  # once, in order


def test_copy_and_remove_are_independent():
  toys = _toys()
  other = toys.copy()
  other.register("c", 3)
  other.remove("family")
  assert "c" not in toys and toys.takes_arg("family")
  assert other.names() == ["a", "b", "c"]
