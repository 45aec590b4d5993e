"""Monte Carlo blocks as Dask tasks: scatter the plan once, one task per block.

Finished blocks are written to the null store as they arrive, so a crash or ``kill -9``
costs only the blocks in flight, and a progress bar follows them (tasks also show on the
Dask dashboard).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np

from dmeta.compute import run_blocks
from dmeta.docstrings import fill_doc
from dmeta.montecarlo.adaptive import STEP, StoppingRule
from dmeta.montecarlo.store import NULL_NAMES, NullStore
from dmeta.validation import check_positive_int

if TYPE_CHECKING:
    import xarray as xr

    from dmeta.montecarlo.plan import NullPlan

DEFAULT_CHUNK_ITERS = 250


def default_chunk_iters(n_iters):
    """A few hundred iterations per task, but at least eight tasks for short runs."""
    return max(1, min(DEFAULT_CHUNK_ITERS, math.ceil(n_iters / 8)))


def _run_block(plan, seed, start, stop):
    return plan.run(seed, start, stop)


@fill_doc
def run_null(plan: NullPlan, n_iters: int | StoppingRule, seed: int | None = None,
             chunk_iters: int | None = None, store: str | os.PathLike | None = None,
             name: str = "fwe") -> tuple[xr.Dataset, np.ndarray]:
    """Compute (or resume, or extend) a Monte Carlo null of ``n_iters`` iterations.

    Parameters
    ----------
    plan : dmeta.montecarlo.plan.NullPlan
    n_iters : int or StoppingRule
        Iterations, or the rule that decides how many (see :func:`run_nulls`).
    %(seed)s
    %(chunk_iters)s
    %(store)s
    name : str
        Name of the null inside the store (group ``montecarlo/<name>``).

    Returns
    -------
    nulls : xarray.Dataset
        ``max_stat``, ``max_cluster_size``, ``max_cluster_mass`` over ``iteration``.
    hist : numpy.ndarray
        Voxelwise-null histogram summed over all iterations (length 1 if not requested).
    """
    return run_nulls({name: plan}, n_iters, seed, chunk_iters, store)[name]


@fill_doc
def run_nulls(plans: dict[str, NullPlan], n_iters: int | StoppingRule,
              seed: int | dict[str, int] | None = None, chunk_iters: int | None = None,
              store: str | os.PathLike | None = None,
              ) -> dict[str, tuple[xr.Dataset, np.ndarray]]:
    """Several Monte Carlo nulls (e.g. one per resampling replicate) as one set of tasks.

    Every plan's pending blocks are submitted together, block ``b`` of every plan before
    block ``b + 1`` of any, so the workers stay busy across plans, and each finished block
    goes to its own group of the store as it arrives. With a :class:`StoppingRule` each
    null stops on its own: once the iterations written without a gap reach a checkpoint
    where the rule is met, that null's remaining tasks are cancelled.

    Parameters
    ----------
    plans : dict of str to NullPlan
        Nulls to compute, by name in the store.
    n_iters : int or StoppingRule
        Iterations of every null, or the rule that decides each one's.
    seed : int or dict of str to int, optional
        Root seed of every null, or one per name; iteration ``i`` of a null draws from a
        generator seeded with ``(seed, i)``. A null without one draws a seed and records it.
    %(chunk_iters)s
    %(store)s

    Returns
    -------
    dict of str to (xarray.Dataset, numpy.ndarray)
        ``(nulls, hist)`` per name, as :func:`run_null` returns them. An adaptive null's
        ``attrs["adaptive"]`` holds the rule and the precision it reached.
    """
    rule = n_iters if isinstance(n_iters, StoppingRule) else None
    if rule is None:
        check_positive_int("n_iters", n_iters)
    budget = rule.max_iters if rule else n_iters
    default = STEP if rule else default_chunk_iters(n_iters)
    seeds = seed if isinstance(seed, dict) else dict.fromkeys(plans, seed)
    stores = {name: NullStore.open(store, name, plan, seeds.get(name), chunk_iters, default)
              for name, plan in plans.items()}
    progress = {name: _Progress(rule, st, store) for name, st in stores.items()} if rule else {}
    blocks = {(name, a, b): (plans[name], stores[name].seed, a, b)
              for name in plans if not (rule and progress[name].stopped)
              for a, b in stores[name].pending(budget)}
    blocks = dict(sorted(blocks.items(), key=lambda item: item[0][1]))
    by_name = {}
    for key in blocks:
        by_name.setdefault(key[0], []).append(key)

    def write(key, result):
        name, a, b = key
        stores[name].write(a, b, *result)
        if rule and progress[name].add(a, b, *result):
            return [k for k in by_name[name] if k[1] >= progress[name].n_iters]
        return ()

    label = next(iter(plans)) if len(plans) == 1 else f"{len(plans)} nulls"
    # Each plan with blocks to run goes to the workers once.
    run_blocks(_run_block, blocks, write, shared=[plans[name] for name in by_name],
               desc=f"Monte Carlo {label}", in_order=rule is not None)
    if not rule:
        return {name: stores[name].read(n_iters) for name in plans}
    return {name: progress[name].read() for name in plans}


class _Progress:
    """Where one adaptive null stands: its iterations written so far (kept here, so that
    looking costs no store reads), the checkpoints looked at, and where it stopped."""

    def __init__(self, rule, store, path):
        rule.check_block(store.chunk_iters, str(path) if path else "the run")
        self.rule, self.store = rule, store
        self.done = np.ones(-(-rule.max_iters // store.chunk_iters), dtype=bool)
        for start, _ in store.pending(rule.max_iters):
            self.done[start // store.chunk_iters] = False
        self.columns = store.columns(rule.max_iters)
        if rule.reads_histograms:  # each block's, for rules on a pooled (voxelwise) null
            self.columns.update(hist=store.group["hist"][:], chunk_iters=store.chunk_iters)
        self.looked = 0
        self.n_iters = None
        self.advance()

    @property
    def stopped(self):
        return self.n_iters is not None

    def add(self, start, stop, values, hist=None):
        """Take in a block just written; True when the null stops with it."""
        for n, name in enumerate(NULL_NAMES):
            self.columns[name][start:stop] = values[:, n]
        if "hist" in self.columns:
            self.columns["hist"][start // self.store.chunk_iters] = hist
        self.done[start // self.store.chunk_iters] = True
        return self.advance()

    def advance(self):
        """Look at the checkpoints newly written without a gap; True when the null stops."""
        if self.stopped:
            return False
        gap = np.flatnonzero(~self.done)
        available = min(gap[0] * self.store.chunk_iters if gap.size else self.rule.max_iters,
                        self.rule.max_iters)
        if available < self.rule.checkpoints(self.looked)[0]:
            return False
        self.n_iters = self.rule.stop(self.columns, available, self.looked)
        self.looked = available
        return self.stopped

    def read(self):
        nulls, hist = self.store.read(self.n_iters)
        nulls.attrs["adaptive"] = self.rule.info(self.columns, self.n_iters)
        return nulls, hist
