"""Monte Carlo blocks as Dask tasks: scatter the plan once, one task per block.

Finished blocks are written to the null store as they arrive, so a crash or ``kill -9``
costs only the blocks in flight, and a progress bar follows them (tasks also show on the
Dask dashboard).
"""

import math
import warnings

from distributed import as_completed
from tqdm import TqdmWarning

from dmeta.compute import session
from dmeta.montecarlo.store import NullStore
from dmeta.validation import check_positive_int

with warnings.catch_warnings():
    # tqdm.auto draws a widget in Jupyter (when ipywidgets is installed) and text elsewhere;
    # it warns on import that the widget is "experimental", or that ipywidgets is missing
    # and it falls back to text. Either way the bar works, so the warning is only noise.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

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
    return run_nulls({name: plan}, n_iters, seed, chunk_iters, store)[name]


def run_nulls(plans, n_iters, seed=None, chunk_iters=None, store=None):
    """Several Monte Carlo nulls (e.g. one per resampling replicate) as one set of tasks.

    Every plan's pending blocks are submitted together, so the workers stay busy across
    plans, and each finished block goes to its own group of the store as it arrives.

    Parameters
    ----------
    plans : dict of str to NullPlan
        Nulls to compute, by name in the store.
    n_iters : int
        Iterations of every null.
    seed : int or dict of str to int, optional
        Root seed of every null, or one per name.
    chunk_iters, store
        As for :func:`run_null`.

    Returns
    -------
    dict of str to (xarray.Dataset, numpy.ndarray)
        ``(nulls, hist)`` per name, as :func:`run_null` returns them.
    """
    check_positive_int("n_iters", n_iters)
    chunk_iters = chunk_iters or default_chunk_iters(n_iters)
    seeds = seed if isinstance(seed, dict) else dict.fromkeys(plans, seed)
    stores = {name: NullStore.open(store, name, plan, seeds.get(name), chunk_iters)
              for name, plan in plans.items()}
    pending = {name: stores[name].pending(n_iters) for name in plans}
    if any(pending.values()):
        with session() as client:
            futures = {}
            for name, blocks in pending.items():
                if not blocks:
                    continue
                [plan_future] = client.scatter([plans[name]], broadcast=True, hash=False)
                for a, b in blocks:
                    future = client.submit(_run_block, plan_future, stores[name].seed, a, b,
                                           pure=False)
                    futures[future] = name
            try:
                label = next(iter(plans)) if len(plans) == 1 else f"{len(plans)} nulls"
                done = tqdm(as_completed(list(futures)), total=len(futures), unit="block",
                            desc=f"Monte Carlo {label}", leave=False)
                for future in done:
                    stores[futures[future]].write(*future.result())
                    future.release()
            finally:
                client.cancel(list(futures))
    return {name: stores[name].read(n_iters) for name in plans}
