"""Compiled loops of the balanced ALE subtraction.

A balanced difference at a voxel is the mean, over D pairs of equal-size subsamples (one
per group), of ALE1 - ALE2 = P2 - P1, where P_g is the product of (1 - MA) over the
subsample's analyses reaching the voxel. Products need no ``exp``. Analyses in every
subsample of their group (a group no larger than the subsample size) are multiplied in
once, as a scalar. For the k others, the mean over pairs of their product is either taken
pair by pair, k D-long vector updates, or, for small k, expanded over the 2^k subsets of
those analyses, each weighted by how many pairs hold it all (a popcount of D-bit words);
either way no (pair x voxel) array exists.

Each voxel's arithmetic is fixed by its own column and the subsamples, so values do not
depend on how voxels or iterations are cut into blocks.
"""

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _multiply(acc, member, factor_minus_one, first):
    """acc[d] (*)= 1 + member[d] * (factor - 1): the factor where member[d] is 1, else 1."""
    one = np.float32(1.0)
    if first:
        for d in range(acc.shape[0]):
            acc[d] = one + member[d] * factor_minus_one
    else:
        for d in range(acc.shape[0]):
            acc[d] *= one + member[d] * factor_minus_one


@numba.njit(cache=True, inline="always")
def _mean(acc):
    """Mean of ``acc`` in float64, summed in eight interleaved partial sums.

    Eight scalars stay in registers as eight independent chains of additions, several times
    faster than one chain or partial sums in an array; their order is fixed, so the mean
    does not depend on the machine.
    """
    n = acc.shape[0]
    whole = n - n % 8
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    for d in range(0, whole, 8):
        s0 += acc[d]
        s1 += acc[d + 1]
        s2 += acc[d + 2]
        s3 += acc[d + 3]
        s4 += acc[d + 4]
        s5 += acc[d + 5]
        s6 += acc[d + 6]
        s7 += acc[d + 7]
    total = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for d in range(whole, n):
        total += acc[d]
    return total / n


#: Up to this many analyses of a group varying at a voxel, its mean over pairs is expanded
#: over their subsets (2^k popcounts of D-bit words); above, it is taken pair by pair (k
#: D-long products), which costs less from about six analyses on.
EXPAND_MAX = 5


@numba.njit(cache=True, inline="always")
def _popcount(x):
    """Set bits of a uint64 word (the SWAR count, which LLVM turns into ``popcnt``)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True)
def _membership_bits(members):
    """``members`` (analysis x D, 0/1) as (analysis x ceil(D / 64)) bit words."""
    n, n_draws = members.shape
    bits = np.zeros((n, (n_draws + 63) // 64), np.uint64)
    for a in range(n):
        for d in range(n_draws):
            if members[a, d] > 0:
                bits[a, d >> 6] |= np.uint64(1) << np.uint64(d & 63)
    return bits


@numba.njit(cache=True)
def _expanded_mean(entries, k, rows, factors, bits, ands, prods, n_draws):
    """Mean over pairs d of prod_j (1 + x_jd (f_j - 1)) for the ``k`` non-zeros ``entries``:
    the sum over subsets T of them of N(T) prod_{j in T} (f_j - 1) / D, N(T) the number of
    pairs whose subsample holds all of T (a popcount of ANDed membership bits)."""
    total = float(n_draws)
    prods[0] = 1.0
    for t in range(1, 1 << k):
        j = 0
        while not (t >> j) & 1:
            j += 1
        rest = t & (t - 1)  # t without its lowest member j
        e = entries[j]
        prods[t] = prods[rest] * (np.float64(factors[e]) - 1.0)
        word = bits[rows[e]]
        count = 0
        for w in range(word.shape[0]):
            x = word[w] if rest == 0 else ands[rest, w] & word[w]
            ands[t, w] = x
            count += _popcount(x)
        total += count * prods[t]
    return total / n_draws


@numba.njit(cache=True)
def _direct_mean(entries, k, rows, factors, members, acc):
    """The same mean, pair by pair: D-long products, one per non-zero."""
    one = np.float32(1.0)
    for i in range(k):
        e = entries[i]
        _multiply(acc, members[rows[e]], factors[e] - one, i == 0)
    return _mean(acc)


@numba.njit(cache=True, inline="always")
def _group_mean(first, stop, g, rows, factors, group, always, members, bits, ands, prods, acc,
                entries):
    """Mean over pairs of group g's product of 1 - MA over non-zeros ``first:stop``."""
    scale = 1.0
    k = 0
    for j in range(first, stop):
        a = rows[j]
        if group[a] != g:
            continue
        if always[a]:
            scale *= factors[j]
        else:
            entries[k] = j
            k += 1
    if k == 0:
        return scale
    if k <= EXPAND_MAX:
        return scale * _expanded_mean(entries, k, rows, factors, bits, ands, prods,
                                      members.shape[1])
    return scale * _direct_mean(entries, k, rows, factors, members, acc)


@numba.njit(cache=True)
def mean_differences(indptr, rows, factors, group, always, members, out):
    """Mean balanced difference ALE1 - ALE2 at each voxel (CSC column) of a block.

    Parameters
    ----------
    indptr : (n_voxels + 1,) int
    rows : int
        Pooled analysis of each non-zero, in a fixed order within a column.
    factors : float32
        1 - MA of each non-zero.
    group : (n_analyses,) int8
        0 for group 1, 1 for group 2.
    always : (n_analyses,) bool
        In every subsample of its group (``members`` is then not read).
    members : (n_analyses, D) float32
        1.0 where the analysis is in subsample ``d`` of its group, else 0.0.
    out : (n_voxels,) float64
        Written.
    """
    bits = _membership_bits(members)
    ands = np.empty((1 << EXPAND_MAX, bits.shape[1]), np.uint64)
    prods = np.empty(1 << EXPAND_MAX)
    acc = np.empty(members.shape[1], np.float32)
    entries = np.empty(members.shape[0], np.int64)
    for v in range(out.shape[0]):
        group2 = _group_mean(indptr[v], indptr[v + 1], 1, rows, factors, group, always,
                             members, bits, ands, prods, acc, entries)
        group1 = _group_mean(indptr[v], indptr[v + 1], 0, rows, factors, group, always,
                             members, bits, ands, prods, acc, entries)
        out[v] = group2 - group1


@numba.njit(cache=True)
def cluster_sizes(flat, shape, scratch):
    """Size of the face-connected cluster of each voxel of ``flat`` among them.

    Parameters
    ----------
    flat : (n,) int64
        Distinct C-order flat indices of the voxels into a volume of ``shape``.
    shape : (3,) int64
    scratch : (prod(shape),) int64
        All zero; returned all zero. Only the given voxels are visited, so labelling a few
        thousand supra-threshold voxels costs microseconds, not a pass over the volume.

    Returns
    -------
    (n,) int64
    """
    n = flat.shape[0]
    ny, nz = shape[1], shape[2]
    plane = ny * nz
    for s in range(n):
        scratch[flat[s]] = s + 1
    seen = np.zeros(n, np.bool_)
    stack = np.empty(n, np.int64)
    found = np.empty(n, np.int64)
    sizes = np.empty(n, np.int64)
    for s in range(n):
        if seen[s]:
            continue
        seen[s] = True
        stack[0] = s
        depth = 1
        count = 0
        while depth > 0:
            depth -= 1
            u = stack[depth]
            found[count] = u
            count += 1
            idx = flat[u]
            i0, i1, i2 = idx // plane, (idx // nz) % ny, idx % nz
            for step, ok in ((-plane, i0 > 0), (plane, i0 < shape[0] - 1),
                             (-nz, i1 > 0), (nz, i1 < ny - 1),
                             (-1, i2 > 0), (1, i2 < nz - 1)):
                if ok:
                    w = scratch[idx + step] - 1
                    if w >= 0 and not seen[w]:
                        seen[w] = True
                        stack[depth] = w
                        depth += 1
        for c in range(count):
            sizes[found[c]] = count
    for s in range(n):
        scratch[flat[s]] = 0
    return sizes


@numba.njit(cache=True)
def row_sums(indptr, indices, data, rows, out):
    """``out`` = the sum of CSR rows ``rows`` per column, adding rows in the order given
    (as ``np.bincount`` over those rows' entries adds them)."""
    out[:] = 0.0
    for r in rows:
        for j in range(indptr[r], indptr[r + 1]):
            out[indices[j]] += data[j]
