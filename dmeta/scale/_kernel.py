"""Compiled core of the SCALE null: per-voxel counts of null ALE at or above the observed.

Each iteration's ALE map is built with the Monte Carlo kernel's slab scheme and cube
helpers (:mod:`dmeta.montecarlo._kernel`: log space, kernel rows applied whole to slabs that
fit in cache). Two things differ:

* foci are rows of a table of voxel subscripts (the base rate, or the observed foci) that
  may lie anywhere, in the mask or not, on the grid or not. Slab rows carry a margin of the
  largest kernel radius on both sides in z, so a focus up to that far beyond the grid still
  applies its rows whole; foci whose cubes miss the grid are skipped (they add nothing);
* each slab is compared voxel by voxel with a per-voxel cut, the observed log(1 - ALE), and
  the voxels at or below it (null ALE >= observed ALE) are counted.

The observed map comes from this same code (:func:`log_complement_volume`), so its float32
sums are those of a null iteration that drew the observed foci: a null dataset reproducing
the observed configuration at a voxel ties with it exactly, and counts.
"""

import numba
import numpy as np

from dmeta.montecarlo._kernel import (
    SLAB,
    _any_below,
    fill_slab,
)

#: Unsigned indices let LLVM vectorise the row loops (see dmeta.montecarlo._kernel).
_U = numba.uint64


@numba.njit(cache=True)
def _place(points, draw, starts, kernel_index, radii, shape, centers, rad, live):
    """Put focus ``f`` at ``points[draw[f]]``; ``live[f]``: whether its cube meets the grid."""
    for a in range(starts.shape[0] - 1):
        for f in range(starts[a], starts[a + 1]):
            centers[f] = points[draw[f]]
            rad[f] = radii[kernel_index[a]]
            live[f] = True
            for d in range(3):
                if centers[f, d] + rad[f] < 0 or centers[f, d] - rad[f] >= shape[d]:
                    live[f] = False


@numba.njit(cache=True)
def _count_row(total, o, cut, counts, m, n):
    """counts[m:m + n] += total[o:o + n] <= cut[m:m + n], as one vector loop."""
    for k in range(n):
        counts[_U(m + k)] += total[_U(o + k)] <= cut[_U(m + k)]


@numba.njit(cache=True)
def _masked_min(total, o, mask_flat, m, n, lowest):
    """The least of ``lowest`` and the in-mask values of ``total[o:o + n]``."""
    for k in range(n):
        if mask_flat[m + k] and total[o + k] < lowest:
            lowest = total[o + k]
    return lowest


def _buffers(shape, log_kernels, n_foci):
    """Slab buffers (with their row length) and per-focus scratch of one kernel call."""
    side, width = log_kernels.shape[1], log_kernels.shape[3]
    nzp = shape[2] + width - 1 + 2 * (side // 2)
    slab = np.zeros(SLAB * shape[1] * nzp, dtype=np.float32)
    return (slab, slab.copy(), nzp, np.empty((n_foci, 3), dtype=np.int64),
            np.empty(n_foci, dtype=np.int64), np.empty(n_foci, dtype=np.bool_),
            np.empty(n_foci, dtype=np.int64), np.empty(n_foci, dtype=np.bool_))


@numba.njit(cache=True)
def _exceedances(draws, points, starts, kernel_index, radii, log_kernels, shape, mask_flat,
                 cut, counts, total, buf, nzp, centers, rad, live, hits, shared):
    n_iters = draws.shape[0]
    nx, ny, nz = shape[0], shape[1], shape[2]
    side, width = log_kernels.shape[1], log_kernels.shape[3]
    margin = side // 2
    flat_kernels = log_kernels.reshape(log_kernels.shape[0], -1)
    one = np.float32(nx > 0)  # 1.0 that LLVM cannot fold away, see _min_row there
    lowest_out = np.zeros(n_iters)
    for it in range(n_iters):
        _place(points, draws[it], starts, kernel_index, radii, shape, centers, rad, live)
        lowest = np.float32(0.0)
        for s0 in range(0, nx, SLAB):
            s1 = min(s0 + SLAB, nx)
            n_hits, j_lo, j_hi = fill_slab(total, buf, flat_kernels, side, width, margin,
                                            starts, kernel_index, centers, rad, live, hits,
                                            shared, s0, s1, ny, nzp, one)
            if n_hits == 0:
                continue
            for i in range(s0, s1):
                for j in range(j_lo, j_hi):
                    o = ((i - s0) * ny + j) * nzp + 2 * margin  # stored at z + big_r + margin
                    m = (i * ny + j) * nz
                    _count_row(total, o, cut, counts, m, nz)
                    if _any_below(total, o, nz, lowest):
                        lowest = _masked_min(total, o, mask_flat, m, nz, lowest)
                total[((i - s0) * ny + j_lo) * nzp:((i - s0) * ny + j_hi) * nzp] = 0.0
        lowest_out[it] = lowest
    return lowest_out


def exceedance_iterations(draws, points, starts, kernel_index, radii, log_kernels, shape,
                          mask_flat, cut, counts):
    """Run one block of SCALE null iterations.

    Parameters
    ----------
    draws : (n_iters, n_foci) int64
        Per iteration, the row of ``points`` every focus moves to.
    points : (n_points, 3) int64
        Voxel subscripts foci are drawn from; anywhere, on the grid or not.
    starts : (n_analyses + 1,) int64
        Foci ``starts[a]:starts[a + 1]`` belong to analysis ``a``.
    kernel_index, radii, log_kernels
        As :func:`dmeta.montecarlo._kernel.null_iterations` takes them.
    shape : (3,) int64
        Volume shape.
    mask_flat : (prod(shape),) uint8
        The mask, C-order flat.
    cut : (prod(shape),) float32
        Per voxel, the log(1 - ALE) a null map must be at or below to count; -inf where
        nothing should be counted.
    counts : (prod(shape),) int32
        Incremented in place.

    Returns
    -------
    (n_iters,) float64
        Each iteration's maximum in-mask ALE.
    """
    scratch = _buffers(shape, log_kernels, draws.shape[1])
    lowest = _exceedances(draws, points, starts, kernel_index, radii, log_kernels, shape,
                          mask_flat, cut, counts, *scratch)
    return -np.expm1(lowest)


@numba.njit(cache=True)
def _volume(points, starts, kernel_index, radii, log_kernels, shape, out, total, buf, nzp,
            centers, rad, live, hits, shared):
    nx, ny, nz = shape[0], shape[1], shape[2]
    side, width = log_kernels.shape[1], log_kernels.shape[3]
    margin = side // 2
    flat_kernels = log_kernels.reshape(log_kernels.shape[0], -1)
    one = np.float32(nx > 0)
    _place(points, np.arange(points.shape[0]), starts, kernel_index, radii, shape, centers,
           rad, live)
    for s0 in range(0, nx, SLAB):
        s1 = min(s0 + SLAB, nx)
        n_hits, j_lo, j_hi = fill_slab(total, buf, flat_kernels, side, width, margin, starts,
                                        kernel_index, centers, rad, live, hits, shared, s0, s1,
                                        ny, nzp, one)
        if n_hits == 0:
            continue
        for i in range(s0, s1):
            for j in range(j_lo, j_hi):
                o = ((i - s0) * ny + j) * nzp + 2 * margin
                m = (i * ny + j) * nz
                out[m:m + nz] = total[o:o + nz]
            total[((i - s0) * ny + j_lo) * nzp:((i - s0) * ny + j_hi) * nzp] = 0.0


def log_complement_volume(points, starts, kernel_index, radii, log_kernels, shape):
    """log(1 - ALE) on the whole grid (C-order flat float32) of foci ``points`` (in order),
    with exactly the arithmetic of :func:`exceedance_iterations`."""
    out = np.zeros(int(np.prod(shape)), dtype=np.float32)
    _volume(points, starts, kernel_index, radii, log_kernels, shape, out,
            *_buffers(shape, log_kernels, points.shape[0]))
    return out
