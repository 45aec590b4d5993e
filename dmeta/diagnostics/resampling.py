"""Resampling policies: how many analyses each replicate keeps, and which."""

from itertools import combinations
from math import comb
from typing import Literal

import numpy as np

from dmeta.errors import InputError
from dmeta.validation import check_choice, check_int_range

POLICIES = ("leave_1_out", "leave_k_out", "subsample")
#: A resampling policy, for annotations (the names in POLICIES).
Policy = Literal["leave_1_out", "leave_k_out", "subsample"]

#: Above this many distinct subsets, n_resamples must say how many to draw.
EXHAUSTIVE_LIMIT = 1000


def subset_size(policy, n, k=None, target_n=None):
    """Analyses kept per replicate under ``policy`` for ``n`` analyses; clear errors."""
    check_choice("resampling_policy", policy, POLICIES)
    if n < 3:
        raise InputError(f"resampling needs at least 3 analyses (replicates of at least 2), "
                         f"got {n}")
    if policy == "leave_1_out":
        kept = n - 1
    elif policy == "leave_k_out":
        if k is None:
            raise InputError("resampling_policy='leave_k_out' needs k")
        check_int_range("k", k, 1, n - 2,
                        f" for {n} analyses (each replicate keeps at least 2)")
        kept = n - int(k)
    else:
        if target_n is not None:
            check_int_range("target_n", target_n, 2, n, " (the number of analyses)")
        kept = n if target_n is None else target_n
    return int(kept)


def subset_schedule(n, kept, n_resamples=None, random_state=None):
    """Sorted analysis indices of each replicate, as an (n_replicates, kept) array.

    Keeping n - 1 is always the n leave-one-out subsets. Otherwise every subset is used
    when there are at most ``n_resamples`` (or, if None, at most 1000) of them; else
    ``n_resamples`` distinct subsets are drawn with ``random_state``.
    """
    if kept == n - 1:
        return np.array([np.delete(np.arange(n), i) for i in range(n)])
    total = comb(n, kept)
    if n_resamples is None and total > EXHAUSTIVE_LIMIT:
        raise InputError(f"{total} possible subsets of {kept} of {n} analyses are too many to "
                         "use them all; set n_resamples")
    wanted = total if n_resamples is None else min(int(n_resamples), total)
    if wanted < 1:
        raise InputError(f"n_resamples must be positive, got {n_resamples!r}")
    if wanted == total and total <= EXHAUSTIVE_LIMIT:
        return np.array(list(combinations(range(n), kept)))
    rng = np.random.default_rng(random_state)
    chosen = set()
    while len(chosen) < wanted:
        chosen.add(tuple(np.sort(rng.choice(n, size=kept, replace=False))))
    return np.array(sorted(chosen))
