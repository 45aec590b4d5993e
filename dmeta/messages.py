"""Warnings that read well: a count, a few examples, and the user's line as their origin."""

import sys
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent)


def examples(items, shown=3) -> str:
    """``"a, b, c and 4 more"``: the first ``shown`` items of a long list, then a count."""
    items = [str(item) for item in items]
    head = ", ".join(items[:shown])
    rest = len(items) - shown
    return f"{head} and {rest} more" if rest > 0 else head


def warn(message, category=UserWarning):
    """Issue a warning attributed to the first caller outside dmeta.

    A warning raised deep inside a reader or an estimator then names the user's own line
    (their notebook cell or script), where it is useful, whatever the call depth.
    """
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
