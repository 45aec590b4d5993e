"""Root seeds: checking a given one, drawing a fresh one, deriving child seeds.

Every random stream in dmeta is keyed by a root seed (iteration ``i`` draws from a generator
seeded with ``(seed, i)``). A seed the user gives must be a non-negative integer; when none
is given a fresh one is drawn from the operating system's entropy and recorded, so a run can
be repeated.
"""

import numpy as np

from dmeta.errors import InputError


def fresh_seed():
    """A new root seed (an int below 2**32) drawn from fresh OS entropy."""
    return int(np.random.SeedSequence().generate_state(1, np.uint32)[0])


def check_seed(seed, name="seed"):
    """``seed`` as an int; InputError naming ``name`` unless it is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"{name} must be a non-negative integer, got {seed!r}")
    return int(seed)


def settle_seed(seed):
    """The root seed to use: ``seed`` checked with :func:`check_seed`, or a fresh one if None."""
    return fresh_seed() if seed is None else check_seed(seed)


def derive_seed(root, *parts):
    """A child seed (an int below 2**32) fixed by ``root`` and the integers ``parts``."""
    return int(np.random.SeedSequence([root, *parts]).generate_state(1, np.uint32)[0])
