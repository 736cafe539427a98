"""Errors a user can act on: they name the file, column, row or option and what to do."""


class InputError(Exception):
    """Bad input data or options; the step exits non-zero with this message alone."""
