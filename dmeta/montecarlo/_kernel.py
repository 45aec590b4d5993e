"""Compiled hot loop of the Monte Carlo null: one random-foci ALE map per iteration.

Everything stays in log space: log(1 - ALE) = sum over analyses of log(1 - MA), and an
analysis's log(1 - MA) is the minimum over its foci of log(1 - kernel). Both sums and
minima of log values (all <= 0) leave a voxel unchanged when given 0, which the layout below
relies on.

The volume is swept in slabs of a few planes whose buffers fit in a core's cache, because
scattering kernel cubes over a whole-volume buffer is bound by memory latency, not
arithmetic. Within a slab:

* every kernel row is stored zero-padded to a fixed width ``W`` (a multiple of the SIMD
  width), and slab rows carry ``W - 1`` spare voxels, so a kernel row is always applied
  whole: no clipping at the volume's z edges, and loops of one fixed length that compile
  to a few vector instructions;
* a focus whose cube meets no other cube of its analysis in the slab adds straight into
  the total; those that meet take their minimum in a second buffer, then move it in;
* the slab is then read once densely (max ALE, supra-threshold voxels) and zeroed, which
  is cheaper than revisiting the cubes since they cover the volume more than once over.

Clusters are labelled among the few supra-threshold voxels only. Buffers and kernels are
float32, the precision NiMARE keeps MA and ALE maps in; sums run over analyses in their
order, so an iteration's values do not depend on how iterations are blocked.
"""

import numba
import numpy as np

from dmeta.approximate_null import nearest

#: Columns of the per-iteration output.
MAX_STAT, MAX_SIZE, MAX_MASS = 0, 1, 2

#: Planes per slab: two float32 buffers of SLAB x 109 x 114 voxels stay inside L2.
SLAB = 4

#: Kernel rows are padded to a multiple of this many float32 (one AVX register).
LANES = 8


@numba.njit(cache=True, inline="always")
def _span(c, rad, lo, hi):
    return max(c - rad, lo), min(c + rad + 1, hi)


def padded_rows(log_kernels):
    """Kernels as (n_kernels, s, s, W) with each z row zero-padded to W, a multiple of LANES."""
    n, s = log_kernels.shape[:2]
    width = -(-s // LANES) * LANES
    rows = np.zeros((n, s, s, width), dtype=np.float32)
    rows[..., :s] = log_kernels
    return rows


#: Unsigned indices spare every access numba's negative-index wraparound test, which
#: otherwise keeps LLVM from vectorising the row loops.
_U = numba.uint64


@numba.njit(cache=True, inline="always")
def _add_row(out, o, kern, b, width):
    """out[o:o + W] += kern[b:b + W]."""
    for t in range(width):
        out[_U(o + t)] += kern[_U(b + t)]


@numba.njit(cache=True, inline="always")
def _min_row(out, o, kern, b, width, one):
    """out[o:o + W] = min(out[o:o + W], kern[b:b + W]).

    ``one`` is 1.0 passed at run time: multiplying by it is exact, but it makes the store
    unconditional, so LLVM emits vector min + store instead of a masked store, which is
    several times slower on AMD cores.
    """
    for t in range(width):
        x, y = out[_U(o + t)], kern[_U(b + t)]
        out[_U(o + t)] = (y if y < x else x) * one


@numba.njit(cache=True, inline="always")
def _move_row(total, buf, o, width):
    """total[o:o + W] += buf[o:o + W]; buf[o:o + W] = 0 (a second visit adds zeros)."""
    for t in range(width):
        total[_U(o + t)] += buf[_U(o + t)]
        buf[_U(o + t)] = 0.0


@numba.njit(cache=True)
def _apply_cube(out, kern, side, width, rad, ci, cj, ck, s0, s1, ny, nzp, mode, one):
    """Apply one focus's kernel rows (flat ``kern``) to the slab buffer ``out``: 0 add, 1 min."""
    big_r = side // 2
    i0, i1 = _span(ci, rad, s0, s1)
    j0, j1 = _span(cj, rad, 0, ny)
    for i in range(i0, i1):
        for j in range(j0, j1):
            # The row's first voxel is z = ck - big_r, stored at ck - big_r + big_r = ck.
            o = ((i - s0) * ny + j) * nzp + ck
            b = ((i - ci + big_r) * side + j - cj + big_r) * width
            if mode == 0:
                _add_row(out, o, kern, b, width)
            else:
                _min_row(out, o, kern, b, width, one)


@numba.njit(cache=True)
def _move_cube(total, buf, width, rad, ci, cj, ck, s0, s1, ny, nzp):
    """Move one cube's rows of ``buf`` into ``total``, leaving ``buf`` zeroed."""
    i0, i1 = _span(ci, rad, s0, s1)
    j0, j1 = _span(cj, rad, 0, ny)
    for i in range(i0, i1):
        for j in range(j0, j1):
            _move_row(total, buf, ((i - s0) * ny + j) * nzp + ck, width)


@numba.njit(cache=True)
def _mark_shared(hits, first, last, centers, rad, shared):
    """Flag the foci ``hits[first:last]`` whose cube meets another one of them.

    Only those need the minimum over foci; a focus alone over its cube adds straight into
    the total. Either way each voxel receives one term per analysis, in analysis order.
    """
    for p in range(first, last):
        shared[p] = False
    for p in range(first, last):
        for q in range(p + 1, last):
            fp, fq = hits[p], hits[q]
            reach = rad[fp] + rad[fq]
            if (abs(centers[fp, 1] - centers[fq, 1]) <= reach
                    and abs(centers[fp, 2] - centers[fq, 2]) <= reach
                    and abs(centers[fp, 0] - centers[fq, 0]) <= reach):
                shared[p] = shared[q] = True


@numba.njit(cache=True)
def _any_below(total, o, n, cut):
    """Whether any of ``total[o:o + n]`` is below ``cut``: a compare-and-or that vectorises,
    unlike a float min reduction, so rows holding no new maximum and no supra-threshold
    voxel are dismissed without visiting their voxels one by one."""
    found = False
    for k in range(n):
        found |= total[_U(o + k)] < cut
    return found


@numba.njit(cache=True)
def fill_slab(total, buf, flat_kernels, side, width, margin, starts, kernel_index, centers,
               rad, live, hits, shared, s0, s1, ny, nzp, one):
    """Add the dataset's log(1 - ALE) on planes ``s0:s1`` into ``total`` (zero on entry).

    Foci with ``live`` False are skipped (SCALE's base-rate points whose cube misses the
    grid); ``margin`` shifts z into a slab padded for cubes past the grid's faces. Returns
    the number of foci whose cubes reach the slab and the span of rows ``j`` they reach.
    Per voxel, each analysis adds one term, the minimum over its foci, in analysis order:
    the value depends on the foci only, not on the slab or on other iterations.
    """
    n_hits = 0
    j_lo, j_hi = ny, 0
    for a in range(starts.shape[0] - 1):
        kern = flat_kernels[kernel_index[a]]
        first = n_hits
        for f in range(starts[a], starts[a + 1]):
            if live[f] and centers[f, 0] + rad[f] >= s0 and centers[f, 0] - rad[f] < s1:
                hits[n_hits] = f
                n_hits += 1
        _mark_shared(hits, first, n_hits, centers, rad, shared)
        for p in range(first, n_hits):
            f = hits[p]
            _apply_cube(buf if shared[p] else total, kern, side, width, rad[f],
                        centers[f, 0], centers[f, 1], centers[f, 2] + margin, s0, s1, ny, nzp,
                        1 if shared[p] else 0, one)
            j0, j1 = _span(centers[f, 1], rad[f], 0, ny)
            j_lo, j_hi = min(j_lo, j0), max(j_hi, j1)
        for p in range(first, n_hits):
            f = hits[p]
            if shared[p]:
                _move_cube(total, buf, width, rad[f], centers[f, 0], centers[f, 1],
                           centers[f, 2] + margin, s0, s1, ny, nzp)
    return n_hits, j_lo, j_hi


@numba.njit(cache=True)
def null_iterations(draws, mask_ijk, starts, kernel_index, radii, log_kernels, shape,
                    mask_flat, thresh, clusters, hist, histogram, inv_step):
    """Run one block of Monte Carlo iterations.

    Parameters
    ----------
    draws : (n_iters, n_foci) int64
        Per iteration, the in-mask voxel number of every random focus.
    mask_ijk : (n_mask, 3) int64
        Subscripts of the in-mask voxels.
    starts : (n_analyses + 1,) int64
        Foci ``starts[a]:starts[a + 1]`` belong to analysis ``a``.
    kernel_index : (n_analyses,) int64
        Which of ``log_kernels`` each analysis uses.
    radii : (n_kernels,) int64
        Half side of each kernel's own cube.
    log_kernels : (n_kernels, s, s, W) float32
        log(1 - kernel), zero-padded to one cube of side s, rows padded to W (see
        :func:`padded_rows`).
    shape : (3,) int64
        Volume shape.
    mask_flat : (prod(shape),) uint8
        The mask, C-order flat.
    thresh : float
        Cluster-forming ALE threshold: clusters are voxels with ALE above it.
    clusters : bool
        Whether to compute cluster statistics (``thresh`` is not read otherwise).
    hist : (n_bins,) int64
        Voxelwise-null histogram, incremented in place.
    histogram : bool
        Whether to accumulate ``hist`` (it is not touched otherwise).
    inv_step : float
        Inverse bin width of ``hist``.

    Returns
    -------
    (n_iters, 3) float64
        Max ALE, max cluster size (voxels) and max cluster mass (sum of ALE - thresh); both
        cluster columns are 0 without ``clusters``.
    """
    n_iters, n_foci = draws.shape
    n_analyses = starts.shape[0] - 1
    nx, ny, nz = shape[0], shape[1], shape[2]
    side = log_kernels.shape[1]
    big_r = side // 2
    width = log_kernels.shape[3]
    flat_kernels = log_kernels.reshape(log_kernels.shape[0], -1)
    nzp = nz + width - 1
    plane = ny * nz
    n_mask = mask_ijk.shape[0]
    n_bins = hist.shape[0]
    log_thresh = np.log1p(-thresh) if clusters else 0.0
    # The float32 nearest above log_thresh: any float32 value below log_thresh is below it.
    cut_thresh = np.float32(log_thresh)
    if cut_thresh < log_thresh:
        cut_thresh = np.nextafter(cut_thresh, np.float32(0.0))
    one = np.float32(inv_step == inv_step)  # 1.0 that LLVM cannot fold away, see _min_row
    total = np.zeros(SLAB * ny * nzp, dtype=np.float32)
    buf = np.zeros(SLAB * ny * nzp, dtype=np.float32)
    n_scratch = nx * plane if clusters else 0
    labels = np.zeros(n_scratch, dtype=np.int64)
    supra = np.empty(n_scratch, dtype=np.int64)
    supra_ale = np.empty(n_scratch)
    stack = np.empty(n_scratch, dtype=np.int64)
    centers = np.empty((n_foci, 3), dtype=np.int64)
    rad = np.empty(n_foci, dtype=np.int64)
    hits = np.empty(n_foci, dtype=np.int64)
    shared = np.empty(n_foci, dtype=np.bool_)
    live = np.ones(n_foci, dtype=np.bool_)  # a random focus is an in-mask voxel
    out = np.zeros((n_iters, 3))

    for it in range(n_iters):
        for a in range(n_analyses):
            for f in range(starts[a], starts[a + 1]):
                centers[f] = mask_ijk[draws[it, f]]
                rad[f] = radii[kernel_index[a]]
        lowest = np.float32(0.0)
        n_supra = 0
        n_seen = 0
        for s0 in range(0, nx, SLAB):
            s1 = min(s0 + SLAB, nx)
            n_hits, j_lo, j_hi = fill_slab(total, buf, flat_kernels, side, width, 0, starts,
                                           kernel_index, centers, rad, live, hits, shared,
                                           s0, s1, ny, nzp, one)
            if n_hits == 0:
                continue

            # Read the slab densely over the rows the cubes reached, then zero them. Without
            # a histogram, a row is read voxel by voxel only if it may hold a new maximum or
            # a supra-threshold voxel (the vector test ignores the mask, so it errs on the
            # safe side).
            for i in range(s0, s1):
                for j in range(j_lo, j_hi):
                    o = ((i - s0) * ny + j) * nzp + big_r
                    m = (i * ny + j) * nz
                    if not histogram:
                        cut = max(lowest, cut_thresh) if clusters else lowest
                        if not _any_below(total, o, nz, cut):
                            continue
                    for k in range(nz):
                        v = total[o + k]
                        if v == 0.0 or mask_flat[m + k] == 0:
                            continue
                        lowest = min(lowest, v)
                        if histogram:
                            n_seen += 1
                            hist[nearest(-np.expm1(v), inv_step, n_bins)] += 1
                        if clusters and v < log_thresh:
                            ale = -np.expm1(np.float64(v))
                            if ale > thresh:
                                supra[n_supra] = m + k
                                supra_ale[n_supra] = ale
                                n_supra += 1
                total[((i - s0) * ny + j_lo) * nzp:((i - s0) * ny + j_hi) * nzp] = 0.0
        if histogram:
            hist[0] += n_mask - n_seen
        out[it, MAX_STAT] = -np.expm1(np.float64(lowest))
        if clusters:
            out[it, MAX_SIZE], out[it, MAX_MASS] = largest_cluster(
                supra, supra_ale, n_supra, thresh, labels, stack, shape
            )
    return out


@numba.njit(cache=True)
def largest_cluster(supra, supra_ale, n_supra, thresh, labels, stack, shape):
    """Largest size and mass of the face-connected clusters of the supra-threshold voxels.

    ``labels`` is a zeroed whole-volume scratch array, returned zeroed.
    """
    ny, nz = shape[1], shape[2]
    plane = ny * nz
    for s in range(n_supra):
        labels[supra[s]] = -(s + 1)
    best_size = 0.0
    best_mass = 0.0
    for s in range(n_supra):
        if labels[supra[s]] >= 0:
            continue
        labels[supra[s]] = 1
        stack[0] = supra[s]
        depth = 1
        size = 0.0
        mass = supra_ale[s] - thresh
        while depth > 0:
            depth -= 1
            idx = stack[depth]
            size += 1.0
            i0 = idx // plane
            i1 = (idx // nz) % ny
            i2 = idx % nz
            for step, ok in (
                (-plane, i0 > 0), (plane, i0 < shape[0] - 1),
                (-nz, i1 > 0), (nz, i1 < ny - 1),
                (-1, i2 > 0), (1, i2 < nz - 1),
            ):
                if ok and labels[idx + step] < 0:
                    mass += supra_ale[-labels[idx + step] - 1] - thresh
                    labels[idx + step] = 1
                    stack[depth] = idx + step
                    depth += 1
        best_size = max(best_size, size)
        best_mass = max(best_mass, mass)
    for s in range(n_supra):
        labels[supra[s]] = 0
    return best_size, best_mass
