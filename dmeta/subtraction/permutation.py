"""Permutation nulls of an ALE difference as blocked (permutation x voxel) Dask work.

With the pooled analyses' L = log(1 - MA) and a relabelling's group-1 indicator row P, group
1's log(1 - ALE) is ``a = P @ L`` and group 2's is ``T - a`` (T: every analysis). The
difference ALE1 - ALE2 = exp(T - a) - exp(a) falls as ``a`` grows, so "permuted difference >=
observed" is "a <= a threshold" fixed per voxel before any permutation runs: the hot loop is
sums and comparisons, with no exp. Thresholds are found once by bisection on the difference
exactly as NiMARE evaluates it (float64), against whichever observed difference the caller
gives: the same float64 arithmetic applied to the observed grouping's own sum (a relabelling
reproducing it ties, and counts in both tails), or NiMARE's float32 map (ties fall on the
side NiMARE counts them).

Relabelling ``i`` comes from a generator seeded with ``(seed, i)``; a voxel's sum runs over
its analyses in a fixed order. Counts are therefore the same for any block sizes and workers.
"""

import numba
import numpy as np
from scipy import sparse

from dmeta.compute import run_blocks
from dmeta.errors import InputError
from dmeta.seeds import settle_seed
from dmeta.validation import check_positive_int

DEFAULT_CHUNK_ITERS = 500
DEFAULT_CHUNK_VOXELS = 32768


def relabellings(seed, start, stop, n_total, n_group1):
    """Group-1 indicators (analysis x permutation, float64 0/1) of relabellings start:stop.

    Stored analysis-major so the hot loop reads one analysis's row over contiguous permutations.
    """
    out = np.zeros((n_total, stop - start))
    for col, it in enumerate(range(start, stop)):
        members = np.random.default_rng([seed, it]).permutation(n_total)[:n_group1]
        out[members, col] = 1.0
    return out


class LogComplementBlock:
    """log(1 - MA) of the pooled analyses on a run of voxels, voxel-major (CSC) for the loop."""

    def __init__(self, ma_csr, start, stop):
        block = ma_csr[:, start:stop].tocsc()
        block.sort_indices()
        self.indptr = block.indptr.astype(np.int64)
        self.indices = block.indices.astype(np.int64)
        # float32 log1p, as NiMARE and dmeta.ale take it, then summed in float64.
        self.data = np.log1p(-block.data.astype(np.float32)).astype(np.float64)
        self.n_analyses = ma_csr.shape[0]
        self.start, self.stop = start, stop


@numba.njit(cache=True, inline="always")
def _voxel_sums(indicators, indptr, indices, data, v, acc):
    """acc[p] = sum of voxel v's L over the group-1 analyses of permutation p (fixed order)."""
    first, stop = indptr[v], indptr[v + 1]
    if first == stop:
        acc[:] = 0.0
        return
    row, value = indicators[indices[first]], data[first]
    for p in range(acc.shape[0]):
        acc[p] = row[p] * value
    for j in range(first + 1, stop):
        row, value = indicators[indices[j]], data[j]
        for p in range(acc.shape[0]):
            acc[p] += row[p] * value


@numba.njit(cache=True)
def group_sums(indicators, indptr, indices, data):
    """(voxel x permutation) group-1 log(1 - ALE) of a block; for observed values and tests."""
    n_voxels = indptr.shape[0] - 1
    out = np.empty((n_voxels, indicators.shape[1]))
    acc = np.empty(indicators.shape[1])
    for v in range(n_voxels):
        _voxel_sums(indicators, indptr, indices, data, v, acc)
        out[v] = acc
    return out


@numba.njit(cache=True)
def _tail_counts(indicators, indptr, indices, data, upper_thresh, lower_thresh):
    n_voxels = indptr.shape[0] - 1
    counts = np.zeros((2, n_voxels), dtype=np.int64)
    acc = np.empty(indicators.shape[1])
    for v in range(n_voxels):
        _voxel_sums(indicators, indptr, indices, data, v, acc)
        up, lo = upper_thresh[v], lower_thresh[v]
        n_up = 0
        n_lo = 0
        for p in range(acc.shape[0]):
            n_up += acc[p] <= up
            n_lo += acc[p] >= lo
        counts[0, v] = n_up
        counts[1, v] = n_lo
    return counts


def block_counts(indicators, block, upper_thresh, lower_thresh):
    """(2, voxels) counts of permuted differences >= and <= the observed one, in one block."""
    return _tail_counts(indicators, block.indptr, block.indices, block.data,
                        upper_thresh[block.start:block.stop], lower_thresh[block.start:block.stop])


def nimare_difference(a, total):
    """ALE1 - ALE2 from group 1's log(1 - ALE) ``a``, evaluated as NiMARE does (float64)."""
    with np.errstate(over="ignore"):
        return (1.0 - np.exp(a)) - (1.0 - np.exp(total - a))


def _to_key(x):
    bits = np.asarray(x, dtype=np.float64).view(np.int64)
    return np.where(bits >= 0, bits, -(bits & np.int64(0x7FFFFFFFFFFFFFFF)))


def _from_key(key):
    bits = np.where(key >= 0, key, (-key) | np.int64(-0x8000000000000000))
    return bits.view(np.float64)


def tail_thresholds(total, observed):
    """Per voxel, the largest ``a`` whose difference is >= ``observed`` and the smallest whose
    difference is <= it: permuted sums at or below / at or above them count in each tail.

    The closed-form root of exp(T - a) - exp(a) = d brackets each threshold; bisection over
    float64 values ordered as integers then makes it exact for the difference as evaluated.
    """
    total = np.asarray(total, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    # Voxels no analysis reaches have a = 0 in every relabelling, and a difference of 0.
    upper, lower = np.zeros_like(total), np.zeros_like(total)
    reached = np.flatnonzero(total < 0)
    t, d = total[reached], observed[reached]
    x = 0.5 * (np.sqrt(d**2 + 4.0 * np.exp(t)) - d)
    root, width = np.log(x), 1e-12 / (x + np.exp(t) / x)
    # f(T - 1) > e - 1 and f(1) < 1 - e: a bracket for every difference of two ALE values.
    wide = (t - 1.0, np.ones_like(t))
    keys = _bisect(root - width, root + width, wide,
                   lambda a, i: nimare_difference(a, t[i]) >= d[i])[0]
    upper[reached] = _from_key(keys)
    # Next to the last a with f >= d comes the first with f <= d, unless f = d over a run.
    keys = keys + 1
    flat = np.flatnonzero(nimare_difference(upper[reached], t) == d)
    keys[flat] = _bisect(wide[0][flat], upper[reached][flat], (wide[0][flat], wide[1][flat]),
                         lambda a, i: nimare_difference(a, t[flat][i]) > d[flat][i])[1]
    lower[reached] = _from_key(keys)
    return upper, lower


def _bisect(lo, hi, wide, below):
    """Ordered keys (lo, hi) with ``below`` true at lo and false at hi, hi = lo + 1."""
    index = np.arange(lo.size)
    bad = ~below(lo, index) | below(hi, index)
    lo[bad], hi[bad] = wide[0][bad], wide[1][bad]
    lo, hi = _to_key(lo), _to_key(hi)
    active = np.flatnonzero(hi - lo > 1)
    while active.size:
        mid = lo[active] + (hi[active] - lo[active]) // 2
        go_up = below(_from_key(mid), active)
        lo[active] = np.where(go_up, mid, lo[active])
        hi[active] = np.where(go_up, hi[active], mid)
        active = active[hi[active] - lo[active] > 1]
    return lo, hi


def log_complement_blocks(ma_csr, chunk_voxels=DEFAULT_CHUNK_VOXELS):
    """L of the pooled (analysis x voxel) CSR MA matrix, cut into runs of voxel columns."""
    check_positive_int("chunk_voxels", chunk_voxels)
    n_voxels = ma_csr.shape[1]
    edges = list(range(0, n_voxels, chunk_voxels)) + [n_voxels]
    return [LogComplementBlock(ma_csr, a, b) for a, b in zip(edges[:-1], edges[1:])]


def group_log_complement(blocks, indicators):
    """(voxel x column) group-1 log(1 - ALE) for given indicator columns, block by block."""
    return np.concatenate([
        group_sums(indicators, b.indptr, b.indices, b.data) for b in blocks
    ])


def _permuted_counts(seed, start, stop, n_group1, block, upper_thresh, lower_thresh):
    indicators = relabellings(seed, start, stop, block.n_analyses, n_group1)
    return block_counts(indicators, block, upper_thresh, lower_thresh)


def permutation_tail_counts(blocks, n_group1, upper_thresh, lower_thresh, n_iters, seed=None,
                            chunk_iters=None):
    """Upper and lower tail counts per voxel over ``n_iters`` relabellings, as Dask tasks.

    One task per (permutation block, voxel block); integer counts are added up as tasks
    finish. Each L block and the thresholds go to the workers once.

    Parameters
    ----------
    blocks : list of LogComplementBlock
        From :func:`log_complement_blocks`.
    n_group1 : int
        Analyses in group 1.
    upper_thresh, lower_thresh : (n_voxels,) float
        From :func:`tail_thresholds`.
    n_iters : int
        Relabellings.
    seed : int, optional
        Root seed; None draws one.
    chunk_iters : int, optional
        Relabellings per task (default up to 500).

    Returns
    -------
    upper, lower : (n_voxels,) int64
        Relabellings whose difference is >= / <= the observed one.
    seed : int
        The root seed used.
    """
    check_positive_int("n_iters", n_iters)
    chunk_iters = chunk_iters or min(DEFAULT_CHUNK_ITERS, n_iters)
    check_positive_int("chunk_iters", chunk_iters)
    seed = settle_seed(seed)
    tasks = {
        (start, b.start): (seed, start, min(start + chunk_iters, n_iters), n_group1, b,
                           upper_thresh, lower_thresh)
        for start in range(0, n_iters, chunk_iters) for b in blocks
    }
    counts = np.zeros((2, blocks[-1].stop), dtype=np.int64)

    def add(key, block):
        counts[:, key[1]:key[1] + block.shape[1]] += block

    run_blocks(_permuted_counts, tasks, add, shared=(*blocks, upper_thresh, lower_thresh),
               desc="Permutations")
    return counts[0], counts[1], seed


def pooled_csr(ma1, ma2):
    """Stack two groups' MA matrices (group 1 first) after checking they share a space."""
    if ma1.space != ma2.space:
        raise InputError(
            f"the two groups are in different spaces ({ma1.space!r} vs {ma2.space!r}); "
            "fit both with the same mask"
        )
    return sparse.vstack([ma1.matrix, ma2.matrix], format="csr")
