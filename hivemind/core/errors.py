"""The one error a user sees."""


class HivemindError(Exception):
    """The one error a user sees: its message says what is wrong and what to do. The CLI prints it
    without a traceback and exits non-zero."""
