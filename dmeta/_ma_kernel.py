"""Compiled kernel of the modeled-activation (MA) matrix: CSR rows for a block of analyses.

An analysis's MA map is the maximum, voxel by voxel, of its foci's kernels. Each focus's
kernel is applied row by row (a row runs along the last, fastest axis): within a row a
Gaussian kernel is positive over one contiguous span, known in advance (:func:`row_spans`),
so the inner loop is a plain running maximum with no test per voxel, over a whole-volume
buffer. Every volume row an analysis reaches records the span it was reached over.

The maps are built in *levels*, each kernel value's rank among the distinct values of all
kernels (:func:`kernel_levels`): the maximum of values is the value of the maximum level,
so anything computed from a value (its float32 self, log(1 - value), its histogram bin) is
computed once per distinct value, by numpy, and looked up per voxel.

The map is then read back in flat (C) order: the analysis's rows in order, each over its
reached span, keeping in-mask voxels with a positive value. That is the order of the in-mask
columns (the mask's flat indices are increasing), so no sort is needed, and reading a row
also clears it for the next analysis. Reading back can count each analysis's non-zeros,
write them into arrays allocated at their exact size, and reduce them to what an ALE fit
reads (:mod:`dmeta.ma_summary`): the sum of log(1 - MA) per voxel, each analysis's maximum
and its histogram of values.
"""

import numba
import numpy as np

from dmeta.ma_summary import flush_histogram


def row_spans(kernels):
    """Per kernel and row ``(di, dj)``, the span ``[lo, hi)`` of ``dk`` with positive values.

    Parameters
    ----------
    kernels : (n_kernels, side, side, side) array
        Kernels zero-padded to one cube (:meth:`dmeta.kernels.KernelBank.stack`).

    Returns
    -------
    (n_kernels, side, side, 2) int64
        ``lo == hi`` where a row has no positive value.

    Raises
    ------
    ValueError
        If a row's positive values are not contiguous (never so for a Gaussian).
    """
    positive = kernels > 0
    side = kernels.shape[-1]
    any_ = positive.any(axis=-1)
    lo = np.where(any_, positive.argmax(axis=-1), 0)
    hi = np.where(any_, side - positive[..., ::-1].argmax(axis=-1), 0)
    k = np.arange(side)
    inside = (k >= lo[..., None]) & (k < hi[..., None])
    if not np.array_equal(inside, positive):
        raise ValueError("a kernel row's positive values are not contiguous")
    return np.stack([lo, hi], axis=-1).astype(np.int64)


def kernel_levels(kernels):
    """The kernels as levels: ranks into their sorted distinct values, 0 for value 0.

    Returns
    -------
    levels : int32 array, the shape of ``kernels``
    values : (n_levels,) float32
        ``values[levels] == kernels``; ``values[0] == 0``.
    """
    values, levels = np.unique(np.concatenate([[0], kernels.ravel()]).astype(np.float32),
                               return_inverse=True)
    return levels[1:].reshape(kernels.shape).astype(np.int32), values


def count_rows(block, counts):
    """Non-zeros of each analysis of a block into ``counts``."""
    ma_pass(*block, counts, *_no_rows(), *_no_summary(), False, False)


def write_rows(block, counts, indices, data, summary):
    """A block's CSR columns and values into ``indices``, ``data`` (``counts`` from
    :func:`count_rows`) and its reductions into ``summary`` (see :func:`summary_arrays`)."""
    ma_pass(*block, counts, indices, data, *summary, True, True)


def summarize_rows(block, summary):
    """A block's reductions into ``summary`` (see :func:`summary_arrays`), and no rows."""
    counts = np.zeros(block[1].shape[0] - 1, np.int64)
    ma_pass(*block, counts, *_no_rows(), *summary, False, True)
    return counts


def summary_arrays(n_analyses, n_voxels, n_bins):
    """Zeroed outputs of a block's reductions.

    Returns
    -------
    log_sum : (n_voxels,) float64
        Sum of log(1 - MA) per voxel, in row order.
    top : (n_analyses,) int64
        Each analysis's highest level.
    hist_ptr, hist_bins, hist_counts : int64
        Each analysis's occupied histogram bins (ascending) and voxel counts, CSR-style;
        ``hist_ptr[-1]`` is the number written.
    scratch : (n_bins,) int64
    """
    room = n_analyses * n_bins
    return (np.zeros(n_voxels), np.zeros(n_analyses, np.int64),
            np.zeros(n_analyses + 1, np.int64), np.zeros(room, np.int64),
            np.zeros(room, np.int64), np.zeros(n_bins, np.int64))


def _no_rows():
    return np.zeros(0, np.int32), np.zeros(0, np.float32)


def _no_summary():
    return summary_arrays(0, 0, 0)


def output(nnz):
    """Zeroed ``indices`` (int32) and ``data`` (float32) for ``nnz`` values, in memory.

    ``np.zeros`` would map the pages lazily, and faulting them in from inside
    :func:`ma_pass`'s writes was measured to cost twice as much as writing them once first.
    """
    indices, data = np.empty(nnz, np.int32), np.empty(nnz, np.float32)
    indices.fill(0)
    data.fill(0)
    return indices, data


@numba.njit(cache=True)
def ma_pass(ijk, starts, kernel_index, levels, spans, shape, lookup, values, logs, bins,
            counts, indices, data, log_sum, top, hist_ptr, hist_bins, hist_counts, scratch,
            write, summarize):
    """One pass over analyses ``0 .. len(starts) - 2``: count, write and/or reduce their MA.

    Without ``write`` nor ``summarize`` it fills ``counts``, so that a pass with ``write``
    writes each analysis's columns and values into ``indices`` and ``data``, allocated
    exactly. Building the maps twice costs less than growing the output: the maps are cheap,
    and the output is by far the largest memory written. With ``summarize`` the pass adds
    each value's log(1 - value) into ``log_sum`` and counts it in its histogram bin.

    Parameters
    ----------
    ijk : (n_foci, 3) int64
        Foci voxel subscripts (possibly outside the volume), grouped by analysis.
    starts : (n_analyses + 1,) int64
        ``ijk[starts[a] - starts[0]:starts[a + 1] - starts[0]]`` are analysis ``a``'s foci.
    kernel_index : (n_analyses,) int64
        Each analysis's kernel in ``levels``.
    levels : (n_kernels, side, side, side) int32
        :func:`kernel_levels` of the kernels.
    spans : (n_kernels, side, side, 2) int64
        :func:`row_spans` of the kernels.
    shape : (3,) int64
        Volume shape.
    lookup : (prod(shape),) int32
        In-mask column of each flat voxel index, -1 outside the mask; increasing where >= 0.
    values : (n_levels,) float32
    logs : (n_levels,) float32
        log(1 - value) per level (numpy's ``log1p``).
    bins : (n_levels,) int64
        Histogram bin per level.
    counts : (n_analyses,) int64
        Non-zeros per analysis: filled unless writing, read when writing.
    indices : (counts.sum(),) int32
    data : (counts.sum(),) float32
        Columns and values, written when ``write``.
    log_sum, top, hist_ptr, hist_bins, hist_counts, scratch
        The reductions, written when ``summarize`` (see :func:`summary_arrays`).
    write, summarize : bool
    """
    nx, ny, nz = shape[0], shape[1], shape[2]
    buf = np.zeros(nx * ny * nz, dtype=np.int32)
    row_lo = np.full(nx * ny, nz, dtype=np.int64)  # reached span of each volume row
    row_hi = np.zeros(nx * ny, dtype=np.int64)
    offset = starts[0]
    nnz = 0
    for a in range(starts.shape[0] - 1):
        k = kernel_index[a]
        i_lo, i_hi, j_lo, j_hi = _mark(ijk[starts[a] - offset:starts[a + 1] - offset],
                                       levels[k], spans[k], nx, ny, nz, buf, row_lo, row_hi)
        begin = nnz
        highest = 0
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                row = i * ny + j
                k0, k1 = row_lo[row], row_hi[row]
                for idx in range(row * nz + k0, row * nz + k1):
                    col = lookup[idx]
                    level = buf[idx]
                    buf[idx] = 0
                    if col < 0 or level == 0:
                        continue
                    if write:
                        indices[nnz] = col
                        data[nnz] = values[level]
                    if summarize:
                        log_sum[col] += logs[level]
                        scratch[bins[level]] += 1
                        highest = max(highest, level)
                    nnz += 1
                row_lo[row], row_hi[row] = nz, 0
        if not write:
            counts[a] = nnz - begin
        if summarize:
            top[a] = highest
            hist_ptr[a + 1] = flush_histogram(scratch, bins[highest], hist_bins, hist_counts,
                                              hist_ptr[a])
    return nnz


@numba.njit(cache=True)
def _mark(foci, kern, span, nx, ny, nz, buf, row_lo, row_hi):
    """Max of the (level) kernels centred on ``foci`` into ``buf``; the reached rows' spans
    and box."""
    side = kern.shape[0]
    r = side // 2
    i_lo, i_hi, j_lo, j_hi = nx, 0, ny, 0
    for f in range(foci.shape[0]):
        ci, cj, ck = foci[f, 0], foci[f, 1], foci[f, 2]
        for di in range(max(0, r - ci), min(side, nx - ci + r)):
            i = ci + di - r
            for dj in range(max(0, r - cj), min(side, ny - cj + r)):
                dk0 = max(span[di, dj, 0], r - ck)
                dk1 = min(span[di, dj, 1], nz - ck + r)
                if dk0 >= dk1:
                    continue
                j = cj + dj - r
                row = i * ny + j
                base = row * nz + ck - r
                for dk in range(dk0, dk1):
                    buf[base + dk] = max(buf[base + dk], kern[di, dj, dk])
                row_lo[row] = min(row_lo[row], base + dk0 - row * nz)
                row_hi[row] = max(row_hi[row], base + dk1 - row * nz)
                i_lo, i_hi = min(i_lo, i), max(i_hi, i + 1)
                j_lo, j_hi = min(j_lo, j), max(j_hi, j + 1)
    return i_lo, i_hi, j_lo, j_hi
