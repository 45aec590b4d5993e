"""Monte Carlo blocks as Dask tasks: scatter the plan once, one task per block.

Finished blocks are written to the null store as they arrive, so a crash or ``kill -9``
costs only the blocks in flight, and a progress bar follows them (tasks also show on the
Dask dashboard).
"""

import math

from distributed import as_completed
from tqdm.auto import tqdm

from dmeta.compute import session
from dmeta.montecarlo.store import NullStore

DEFAULT_CHUNK_ITERS = 250


def default_chunk_iters(n_iters):
    """A few hundred iterations per task, but at least eight tasks for short runs."""
    return max(1, min(DEFAULT_CHUNK_ITERS, math.ceil(n_iters / 8)))


def _run_block(plan, seed, start, stop):
    values, hist = plan.run(seed, start, stop)
    return start, stop, values, hist


def run_null(plan, n_iters, seed=None, chunk_iters=None, store=None, name="fwe"):
    """Compute (or resume, or extend) a Monte Carlo null of ``n_iters`` iterations.

    Parameters
    ----------
    plan : dmeta.montecarlo.plan.NullPlan
    n_iters : int
    seed : int, optional
        Root seed; a new store without one draws a seed and records it.
    chunk_iters : int, optional
        Iterations per task. A store keeps the block size it was created with.
    store : str or Path, optional
        Zarr store to keep the null in (group ``montecarlo/<name>``).
    name : str
        Name of the null inside the store.

    Returns
    -------
    nulls : xarray.Dataset
        ``max_stat``, ``max_cluster_size``, ``max_cluster_mass`` over ``iteration``.
    hist : numpy.ndarray
        Voxelwise-null histogram summed over all iterations (length 1 if not requested).
    """
    if not (isinstance(n_iters, int) and n_iters > 0):
        raise ValueError(f"n_iters must be a positive integer, got {n_iters!r}")
    chunk_iters = chunk_iters or default_chunk_iters(n_iters)
    nulls = NullStore.open(store, name, plan, seed, chunk_iters)
    pending = nulls.pending(n_iters)
    if pending:
        with session() as client:
            [plan_future] = client.scatter([plan], broadcast=True, hash=False)
            futures = [
                client.submit(_run_block, plan_future, nulls.seed, a, b, pure=False)
                for a, b in pending
            ]
            try:
                done = tqdm(as_completed(futures), total=len(futures), unit="block",
                            desc=f"Monte Carlo {name}", leave=False)
                for future in done:
                    nulls.write(*future.result())
                    future.release()
            finally:
                client.cancel(futures)
    return nulls.read(n_iters)
