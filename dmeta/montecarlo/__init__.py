"""The Monte Carlo engine: random-foci ALE nulls as chunked, resumable Dask work."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dmeta.docstrings import fill_doc
from dmeta.montecarlo.adaptive import StoppingRule, iteration_budget
from dmeta.montecarlo.engine import run_null, run_nulls
from dmeta.montecarlo.plan import NullPlan

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from dmeta.ale import ALE

__all__ = ["NullPlan", "StoppingRule", "iteration_budget", "run_null", "run_nulls",
           "voxelwise_null"]


@fill_doc
def voxelwise_null(ale: ALE, n_iters: int, seed: int | None = None,
                   chunk_iters: int | None = None, store: str | os.PathLike | None = None,
                   ) -> tuple[np.ndarray, xr.Dataset]:
    """Empirical voxelwise null of a fitted ALE: histogram of every null ALE value.

    No clusters are formed: the store keeps 0 for every iteration's cluster size and mass.

    Parameters
    ----------
    ale : ALE
        A fitted estimator: its modeled activation and histogram bins.
    %(n_iters)s
    %(seed)s
    %(chunk_iters)s
    %(store)s

    Returns
    -------
    hist : numpy.ndarray
        Null ALE values counted in each of ``ale.bins_``, over every iteration.
    nulls : xarray.Dataset
        ``max_stat`` over ``iteration``; its ``attrs["seed"]`` is the root seed used.
    """
    plan = NullPlan(ale.ma_, thresh=None, bins=ale.bins_)
    nulls, hist = run_null(plan, n_iters, seed, chunk_iters, store, name="voxelwise")
    return hist, nulls[["max_stat"]]
