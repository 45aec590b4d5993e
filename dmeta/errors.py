"""Errors dmeta raises for problems in the user's input."""


class InputError(ValueError):
    """Bad input: a malformed file, a missing field, an impossible parameter.

    The message names the file (and, for text formats, the line) and the problem,
    so the command line can print it as one line.
    """
