"""The one exception type that the command line turns into a one-line `error: ...`."""


class UserError(Exception):
  """A problem with the user's input (file, flag, model) rather than a bug in jaxcomp."""
