"""Every `jaxcomp ... --help` describes every sub-command and every option."""

import argparse

from jaxcomp import cli


def _walk(parser, path):
  """(command path, parser) for `parser` and every sub-command parser below it."""
  yield path, parser
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      for name, sub in action.choices.items():
        yield from _walk(sub, f"{path} {name}")


def _undescribed(parser, path):
  """The options, positionals and sub-commands of one parser that have no help text."""
  missing = []
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):  # pylint: disable=protected-access
      continue
    if isinstance(action, argparse._SubParsersAction):  # pylint: disable=protected-access
      described = {a.dest for a in action._choices_actions if a.help}  # pylint: disable=protected-access
      missing += [f"{path} {name} (sub-command)" for name in action.choices
                  if name not in described]
      continue
    if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
      missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
  return missing


def test_every_option_of_every_command_has_help():
  parsers = list(_walk(cli.build_parser(), "jaxcomp"))
  commands = {path for path, _ in parsers}
  assert {"jaxcomp eval", "jaxcomp plot", "jaxcomp bdrate", "jaxcomp study analyze"} <= commands
  missing = [m for path, parser in parsers for m in _undescribed(parser, path)]
  assert not missing, "options without a description in --help:\n" + "\n".join(missing)


def test_help_text_formats(capsys):
  """Each parser's help renders (a stray '%' in a help string breaks argparse's formatting)."""
  for _, parser in _walk(cli.build_parser(), "jaxcomp"):
    parser.format_help()
  capsys.readouterr()
