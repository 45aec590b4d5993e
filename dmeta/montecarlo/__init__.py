"""The Monte Carlo engine: random-foci ALE nulls as chunked, resumable Dask work."""

from dmeta.montecarlo.engine import run_null, run_nulls
from dmeta.montecarlo.plan import NullPlan

__all__ = ["NullPlan", "run_null", "run_nulls", "voxelwise_null"]


def voxelwise_null(ale, n_iters, seed=None, chunk_iters=None, store=None):
    """Empirical voxelwise null of a fitted ALE: histogram of every null ALE value."""
    plan = NullPlan(ale.ma_, thresh=1.0, bins=ale.bins_)
    nulls, hist = run_null(plan, n_iters, seed, chunk_iters, store, name="voxelwise")
    return hist, nulls[["max_stat"]]
