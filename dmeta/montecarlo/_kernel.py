"""Compiled hot loop of the Monte Carlo null: one random-foci ALE map per iteration.

Everything stays in log space: log(1 - ALE) = sum over analyses of log(1 - MA), and an
analysis's log(1 - MA) is the minimum over its foci of log(1 - kernel). Only the kernel cubes
around the random foci are touched. The volume is swept in slabs of a few planes whose
buffers fit in a core's cache, because scattering kernel cubes over a whole-volume buffer
is bound by memory latency, not arithmetic. Every buffer is reset where it was touched, so
an iteration costs two or three passes over its foci's kernel voxels, never the volume.
Clusters are labelled among the few supra-threshold voxels only.

Buffers and kernels are float32, the precision NiMARE keeps MA and ALE maps in.
"""

import numba
import numpy as np

#: Columns of the per-iteration output.
MAX_STAT, MAX_SIZE, MAX_MASS = 0, 1, 2

#: Planes per slab: two float32 buffers of SLAB x 109 x 91 voxels stay well inside L2.
SLAB = 4


@numba.njit(cache=True, inline="always")
def _span(c, rad, lo, hi):
    return max(c - rad, lo), min(c + rad + 1, hi)


@numba.njit(cache=True)
def _scatter(out, kern, big_r, rad, c, s0, s1, ny, nz, mode):
    """Apply one kernel cube to the slab buffer ``out``: 0 add, 1 min."""
    i0, i1 = _span(c[0], rad, s0, s1)
    j0, j1 = _span(c[1], rad, 0, ny)
    k0, k1 = _span(c[2], rad, 0, nz)
    for i in range(i0, i1):
        for j in range(j0, j1):
            row = ((i - s0) * ny + j) * nz
            ki, kj, kk = i - c[0] + big_r, j - c[1] + big_r, k0 - c[2] + big_r
            if mode == 0:
                for k in range(k0, k1):
                    out[row + k] += kern[ki, kj, kk + k - k0]
            else:
                for k in range(k0, k1):
                    out[row + k] = min(out[row + k], kern[ki, kj, kk + k - k0])


@numba.njit(cache=True)
def _move(total, buf, rad, c, s0, s1, ny, nz):
    """total += buf; buf = 0 over one cube (a second visit adds zeros)."""
    i0, i1 = _span(c[0], rad, s0, s1)
    j0, j1 = _span(c[1], rad, 0, ny)
    k0, k1 = _span(c[2], rad, 0, nz)
    for i in range(i0, i1):
        for j in range(j0, j1):
            row = ((i - s0) * ny + j) * nz
            for k in range(k0, k1):
                total[row + k] += buf[row + k]
                buf[row + k] = 0.0


@numba.njit(cache=True)
def _nearest(value, inv_step, n_bins):
    scaled = value * inv_step
    low = np.floor(scaled)
    idx = int(low) + int(scaled - low >= 0.5)
    return min(max(idx, 0), n_bins - 1)


@numba.njit(cache=True)
def null_iterations(draws, mask_ijk, starts, kernel_index, radii, log_kernels, shape,
                    mask_flat, thresh, hist, inv_step):
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
    log_kernels : (n_kernels, s, s, s) float32
        log(1 - kernel), zero-padded to one cube of side s.
    shape : (3,) int64
        Volume shape.
    mask_flat : (prod(shape),) uint8
        The mask, C-order flat.
    thresh : float
        Cluster-forming ALE threshold: clusters are voxels with ALE above it.
    hist : (n_bins,) int64
        Voxelwise-null histogram, incremented in place (length 1 to skip it).
    inv_step : float
        Inverse bin width of ``hist``.

    Returns
    -------
    (n_iters, 3) float64
        Max ALE, max cluster size (voxels) and max cluster mass (sum of ALE - thresh).
    """
    n_iters, n_foci = draws.shape
    n_analyses = starts.shape[0] - 1
    nx, ny, nz = shape[0], shape[1], shape[2]
    big_r = log_kernels.shape[1] // 2
    plane = ny * nz
    n_mask = mask_ijk.shape[0]
    n_bins = hist.shape[0]
    log_thresh = np.log1p(-thresh)
    total = np.zeros(SLAB * plane, dtype=np.float32)
    buf = np.zeros(SLAB * plane, dtype=np.float32)
    labels = np.zeros(nx * plane, dtype=np.int64)
    supra = np.empty(nx * plane, dtype=np.int64)
    supra_ale = np.empty(nx * plane)
    stack = np.empty(nx * plane, dtype=np.int64)
    centers = np.empty((n_foci, 3), dtype=np.int64)
    rad = np.empty(n_foci, dtype=np.int64)
    hits = np.empty(n_foci, dtype=np.int64)
    out = np.zeros((n_iters, 3))

    for it in range(n_iters):
        for a in range(n_analyses):
            for f in range(starts[a], starts[a + 1]):
                centers[f] = mask_ijk[draws[it, f]]
                rad[f] = radii[kernel_index[a]]
        lowest = 0.0
        n_supra = 0
        n_seen = 0
        for s0 in range(0, nx, SLAB):
            s1 = min(s0 + SLAB, nx)
            n_hits = 0
            for a in range(n_analyses):
                kern = log_kernels[kernel_index[a]]
                first = n_hits
                for f in range(starts[a], starts[a + 1]):
                    if centers[f, 0] + rad[f] >= s0 and centers[f, 0] - rad[f] < s1:
                        hits[n_hits] = f
                        n_hits += 1
                disjoint = True
                for p in range(first, n_hits):
                    for q in range(p + 1, n_hits):
                        fp, fq = hits[p], hits[q]
                        reach = rad[fp] + rad[fq]
                        if (abs(centers[fp, 1] - centers[fq, 1]) <= reach
                                and abs(centers[fp, 2] - centers[fq, 2]) <= reach
                                and abs(centers[fp, 0] - centers[fq, 0]) <= reach):
                            disjoint = False
                if disjoint:
                    for p in range(first, n_hits):
                        f = hits[p]
                        _scatter(total, kern, big_r, rad[f], centers[f], s0, s1, ny, nz, 0)
                else:
                    for p in range(first, n_hits):
                        f = hits[p]
                        _scatter(buf, kern, big_r, rad[f], centers[f], s0, s1, ny, nz, 1)
                    for p in range(first, n_hits):
                        f = hits[p]
                        _move(total, buf, rad[f], centers[f], s0, s1, ny, nz)

            # Collect the slab: max ALE, supra-threshold voxels, histogram; reset total.
            for p in range(n_hits):
                c = centers[hits[p]]
                i0, i1 = _span(c[0], rad[hits[p]], s0, s1)
                j0, j1 = _span(c[1], rad[hits[p]], 0, ny)
                k0, k1 = _span(c[2], rad[hits[p]], 0, nz)
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        row = ((i - s0) * ny + j) * nz
                        for k in range(k0, k1):
                            v = total[row + k]
                            if v == 0.0:
                                continue
                            total[row + k] = 0.0
                            idx = s0 * plane + row + k
                            if mask_flat[idx] == 0:
                                continue
                            n_seen += 1
                            if v < lowest:
                                lowest = v
                            if n_bins > 1:
                                hist[_nearest(-np.expm1(v), inv_step, n_bins)] += 1
                            if v < log_thresh:
                                ale = -np.expm1(np.float64(v))
                                if ale > thresh:
                                    supra[n_supra] = idx
                                    supra_ale[n_supra] = ale
                                    n_supra += 1
        if n_bins > 1:
            hist[0] += n_mask - n_seen
        out[it, MAX_STAT] = -np.expm1(np.float64(lowest))
        out[it, MAX_SIZE], out[it, MAX_MASS] = _largest_cluster(
            supra, supra_ale, n_supra, thresh, labels, stack, shape
        )
    return out


@numba.njit(cache=True)
def _largest_cluster(supra, supra_ale, n_supra, thresh, labels, stack, shape):
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
