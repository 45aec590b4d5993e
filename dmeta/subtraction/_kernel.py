"""Compiled loops over (voxel x relabelling) group sums of log(1 - MA).

A relabelling's group-1 log(1 - ALE) at voxel v is ``a = sum of L over its group-1
analyses``, summed over the voxel's analyses in a fixed order, so the same relabelling gives
the same bits in any block. The ALE difference ``exp(T - a) - exp(a)`` falls as ``a`` grows,
so "difference >= d" is "a <= a threshold" found once per voxel (``tail_thresholds``): the
loops compare sums, and take an exp only for the few (voxel, relabelling) pairs whose value
they need: those in a tail, and those that could raise a relabelling's maximum |difference|
(never above the voxel's pooled ALE, ``bound``).
"""

import numba
import numpy as np

from dmeta.montecarlo._kernel import largest_cluster

#: Histogram bins of |difference| are float32 values sharing their top bits: 2**12 bins per
#: octave, so a bin is at most 2.4e-4 of its value wide.
HIST_SHIFT = 11


@numba.njit(cache=True, inline="always")
def voxel_sums(indicators, indptr, indices, data, v, acc):
    """acc[p] = sum of voxel v's L over the group-1 analyses of relabelling p (fixed order)."""
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


@numba.njit(cache=True, inline="always")
def difference(a, total):
    """ALE1 - ALE2 from group 1's log(1 - ALE) ``a``, evaluated as NiMARE does (float64)."""
    return (1.0 - np.exp(a)) - (1.0 - np.exp(total - a))


@numba.njit(cache=True)
def group_sums(indicators, indptr, indices, data):
    """(voxel x relabelling) group-1 log(1 - ALE); for observed values and tests."""
    n_voxels = indptr.shape[0] - 1
    out = np.empty((n_voxels, indicators.shape[1]))
    acc = np.empty(indicators.shape[1])
    for v in range(n_voxels):
        voxel_sums(indicators, indptr, indices, data, v, acc)
        out[v] = acc
    return out


@numba.njit(cache=True, inline="always")
def _raise_max(max_abs, acc, total, b, floor):
    """Raise each relabelling's maximum |difference| with this voxel's; returns the new
    smallest maximum. A voxel whose bound ``b`` is below it cannot raise any: most voxels
    cost one comparison."""
    if b <= floor:
        return floor
    for p in range(acc.shape[0]):
        if b > max_abs[p]:
            d = abs(difference(acc[p], total))
            if d > max_abs[p]:
                max_abs[p] = d
    return max_abs.min()


@numba.njit(cache=True)
def tail_counts(indicators, indptr, indices, data, upper, lower, total, bound):
    """Per voxel, relabellings with difference >= / <= the observed one; and each
    relabelling's maximum absolute difference.

    The sums are :func:`voxel_sums`' (same order, same bits), with the comparisons folded
    into the last analysis's pass rather than a pass of their own.

    Returns ``counts`` (2, voxels) int64 and ``max_abs`` (relabellings,) float64.
    """
    n_voxels = indptr.shape[0] - 1
    n_perm = indicators.shape[1]
    counts = np.zeros((2, n_voxels), dtype=np.int64)
    max_abs = np.zeros(n_perm)
    floor = 0.0
    acc = np.zeros(n_perm)
    for v in range(n_voxels):
        first, stop = indptr[v], indptr[v + 1]
        up, lo = upper[v], lower[v]
        if first == stop:  # a = 0 in every relabelling
            counts[0, v] = n_perm * (0.0 <= up)
            counts[1, v] = n_perm * (0.0 >= lo)
            continue
        n_up = 0
        n_lo = 0
        row, value = indicators[indices[first]], data[first]
        if stop - first == 1:
            for p in range(n_perm):
                a = row[p] * value
                acc[p] = a
                n_up += a <= up
                n_lo += a >= lo
        else:
            for p in range(n_perm):
                acc[p] = row[p] * value
            for j in range(first + 1, stop - 1):
                row, value = indicators[indices[j]], data[j]
                for p in range(n_perm):
                    acc[p] += row[p] * value
            row, value = indicators[indices[stop - 1]], data[stop - 1]
            for p in range(n_perm):
                a = acc[p] + row[p] * value
                acc[p] = a
                n_up += a <= up
                n_lo += a >= lo
        counts[0, v] = n_up
        counts[1, v] = n_lo
        floor = _raise_max(max_abs, acc, total[v], bound[v], floor)
    return counts, max_abs


@numba.njit(cache=True)
def histogram_key(value, scratch):
    """Histogram key of a non-negative float32: its bits without the last HIST_SHIFT."""
    scratch[0] = value
    return scratch.view(np.int32)[0] >> HIST_SHIFT


@numba.njit(cache=True)
def null_block(indicators, indptr, indices, data, total, bound, level, cut_up, cut_lo,
               base_key, n_bins, flat, shape):
    """Null statistics of a block of relabellings.

    ``values`` (relabellings x 3): maximum |difference|, and with a cluster-forming
    ``level`` >= 0 and ``n_bins`` == 0, the largest face-connected cluster's size and mass
    among voxels with float32 |difference| > level (positive and negative differences
    apart, mass summing |difference| - level). With ``n_bins`` > 0, ``hist`` counts float32
    |difference| >= ``level`` by histogram key from ``base_key`` (values below are not
    counted; bin 0 also takes those the float32 rounding moves below the base key).
    ``cut_up``/``cut_lo`` are the per-voxel sums past which |difference| >= level.
    ``flat`` gives each voxel's index in the C-ordered volume of ``shape``.
    """
    n_voxels = indptr.shape[0] - 1
    n_perm = indicators.shape[1]
    values = np.zeros((n_perm, 3))
    hist = np.zeros(n_bins, dtype=np.int64)
    acc = np.empty(n_perm)
    scratch = np.empty(1, dtype=np.float32)
    clusters = n_bins == 0 and level >= 0
    # Supra-threshold voxels, relabelling by relabelling: (relabelling, flat index, value).
    cap = 1024
    who = np.empty(cap, dtype=np.int64)
    where = np.empty(cap, dtype=np.int64)
    what = np.empty(cap)
    n_supra = 0
    max_abs = np.zeros(n_perm)
    floor = 0.0
    for v in range(n_voxels):
        if indptr[v] == indptr[v + 1]:
            continue
        voxel_sums(indicators, indptr, indices, data, v, acc)
        t = total[v]
        floor = _raise_max(max_abs, acc, t, bound[v], floor)
        if level < 0 or bound[v] < level:
            continue
        up, lo = cut_up[v], cut_lo[v]
        for p in range(n_perm):
            if acc[p] > up and acc[p] < lo:
                continue
            d = np.float32(difference(acc[p], t))
            if n_bins > 0:
                key = histogram_key(abs(d), scratch)
                hist[max(key - base_key, 0)] += 1
            elif abs(d) > level:
                if n_supra == cap:
                    cap *= 2
                    who, where, what = _grow(who, where, what, n_supra, cap)
                who[n_supra] = p
                where[n_supra] = flat[v]
                what[n_supra] = d
                n_supra += 1
    values[:, 0] = max_abs
    if clusters:
        _cluster_maxima(values, who[:n_supra], where[:n_supra], what[:n_supra], level, shape)
    return values, hist


@numba.njit(cache=True)
def _grow(who, where, what, n, cap):
    new = (np.empty(cap, dtype=np.int64), np.empty(cap, dtype=np.int64), np.empty(cap))
    new[0][:n] = who[:n]
    new[1][:n] = where[:n]
    new[2][:n] = what[:n]
    return new


@numba.njit(cache=True)
def _cluster_maxima(values, who, where, what, level, shape):
    """Largest cluster size and mass of each relabelling, over both signs."""
    n_perm = values.shape[0]
    order = np.argsort(who, kind="mergesort")
    starts = np.searchsorted(who[order], np.arange(n_perm + 1))
    labels = np.zeros(shape[0] * shape[1] * shape[2], dtype=np.int64)
    stack = np.empty(max(1, who.shape[0]), dtype=np.int64)
    for p in range(n_perm):
        mine = order[starts[p]:starts[p + 1]]
        for sign in (1.0, -1.0):
            pick = mine[what[mine] * sign > 0]
            size, mass = largest_cluster(where[pick], np.abs(what[pick]), pick.shape[0],
                                         level, labels, stack, shape)
            values[p, 1] = max(values[p, 1], size)
            values[p, 2] = max(values[p, 2], mass)


@numba.njit(cache=True)
def observed_difference(a, total):
    """:func:`difference` of every voxel: the observed grouping in the loops' arithmetic."""
    out = np.empty(a.shape[0])
    for v in range(a.shape[0]):
        out[v] = difference(a[v], total[v])
    return out


_SIGN = np.int64(-0x8000000000000000)
_MAGNITUDE = np.int64(0x7FFFFFFFFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _to_key(x, floats, ints):
    """float64 -> int64 with the same order (negative floats count down from 0)."""
    floats[0] = x
    bits = ints[0]
    return bits if bits >= 0 else -(bits & _MAGNITUDE)


@numba.njit(cache=True, inline="always")
def _from_key(key, floats, ints):
    ints[0] = key if key >= 0 else (-key) | _SIGN
    return floats[0]


@numba.njit(cache=True, inline="always")
def _below(a, t, d, strict):
    f = difference(a, t)
    return f > d if strict else f >= d


@numba.njit(cache=True)
def _bisect(lo, hi, wide_lo, wide_hi, t, d, strict, floats, ints):
    """Adjacent keys (lo, hi) with ``_below`` true at lo and false at hi; the wide bracket
    replaces (lo, hi) when they do not bracket."""
    if not _below(lo, t, d, strict) or _below(hi, t, d, strict):
        lo, hi = wide_lo, wide_hi
    k_lo, k_hi = _to_key(lo, floats, ints), _to_key(hi, floats, ints)
    while k_hi - k_lo > 1:
        mid = k_lo + (k_hi - k_lo) // 2
        if _below(_from_key(mid, floats, ints), t, d, strict):
            k_lo = mid
        else:
            k_hi = mid
    return k_lo, k_hi


@numba.njit(cache=True)
def tail_thresholds(total, observed):
    """Per voxel, the largest ``a`` whose difference is >= ``observed`` and the smallest whose
    difference is <= it: sums at or below / at or above them count in each tail.

    The closed-form root of exp(T - a) - exp(a) = d brackets each threshold; bisection over
    float64 values ordered as integers makes it exact for the difference as evaluated.
    Voxels no analysis reaches (T = 0) have a = 0 in every relabelling: both thresholds 0.
    """
    n = total.shape[0]
    upper = np.zeros(n)
    lower = np.zeros(n)
    floats = np.empty(1)
    ints = floats.view(np.int64)
    for v in range(n):
        t, d = total[v], observed[v]
        if not t < 0:
            continue
        x = 0.5 * (np.sqrt(d * d + 4.0 * np.exp(t)) - d)
        # The root, and a change of a that moves f by 1e-14 (f' = -(x + e^T / x)).
        root, width = np.log(x), 1e-14 / (x + np.exp(t) / x)
        # f(T - 1) > e - 1 and f(1) < 1 - e: a bracket for every difference of two ALEs.
        k_up = _bisect(root - width, root + width, t - 1.0, 1.0, t, d, False, floats, ints)[0]
        upper[v] = _from_key(k_up, floats, ints)
        # Next to the last a with f >= d comes the first with f <= d, unless f = d on a run
        # (most voxels: f is flat over a few float64 steps of a).
        k_lo = k_up + 1
        if difference(upper[v], t) == d:
            k_lo = _bisect(upper[v] - width, upper[v], t - 1.0, 1.0, t, d, True, floats,
                           ints)[1]
        lower[v] = _from_key(k_lo, floats, ints)
    return upper, lower
