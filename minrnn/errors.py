"""Errors a user can fix. Each message says what is wrong and what to do; the command line prints
it on one line and exits with status 1."""


class UserError(ValueError):
    """Input, options or files that minrnn can't use, with what to do about it."""
