"""Checks of small parameters, each raising :class:`~dmeta.errors.InputError` that names the
parameter and the value it got. Bools are refused wherever an integer is wanted.
"""

import numpy as np

from dmeta.errors import InputError
from dmeta.seeds import check_seed


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name, value):
    """InputError unless ``value`` is a positive integer."""
    if not (_is_int(value) and value > 0):
        raise InputError(f"{name} must be a positive integer, got {value!r}")


def check_run_params(seed=None, seed_name="seed", **positive_ints):
    """Check a run's root seed and positive integers (``n_iters=...``, ``chunk_iters=...``)
    where the parameters arrive; None stands for "the default" and is not checked."""
    for name, value in positive_ints.items():
        if value is not None:
            check_positive_int(name, value)
    if seed is not None:
        check_seed(seed, seed_name)


def check_int_range(name, value, low, high, detail=""):
    """InputError unless ``value`` is an integer from ``low`` to ``high`` (inclusive).

    ``detail`` is inserted after the range in the message, e.g. ``" for 20 analyses"``.
    """
    if not (_is_int(value) and low <= value <= high):
        raise InputError(f"{name} must be an integer from {low} to {high}{detail}, "
                         f"got {value!r}")


def check_choice(name, value, choices):
    """InputError unless ``value`` is one of ``choices``, which the message lists."""
    if value not in choices:
        listing = ", ".join(map(repr, choices))
        raise InputError(f"{name} must be one of {listing}, got {value!r}")


def check_p(name, value):
    """InputError unless ``value`` is a number in (0, 1), such as a p-value threshold."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (
            0 < value < 1):
        raise InputError(f"{name} must be a number in (0, 1), got {value!r}")
