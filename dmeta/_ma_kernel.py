"""Compiled kernel of the modeled-activation (MA) matrix: CSR rows for a block of analyses.

An analysis's MA map is the maximum, voxel by voxel, of its foci's kernels. Each focus's
kernel is applied row by row (a row runs along the last, fastest axis): within a row a
Gaussian kernel is positive over one contiguous span, known in advance (:func:`row_spans`),
so the inner loop is a plain running maximum with no test per voxel, over a whole-volume
buffer. Every volume row an analysis reaches records the span it was reached over.

The map is then read back in flat (C) order: the analysis's rows in order, each over its
reached span, keeping in-mask voxels with a positive value. That is the order of the in-mask
columns (the mask's flat indices are increasing), so no sort is needed, and reading a row
also clears it for the next analysis. A first pass only counts each analysis's non-zeros, so
the second writes them into arrays allocated once at their exact size.

Values are float32, as NiMARE keeps MA: a maximum of float32 values is one of them, so the
result is the same whatever precision the maximum is taken in.
"""

import numba
import numpy as np


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


def count_rows(ijk, starts, kernel_index, kernels, spans, shape, lookup, counts):
    """Non-zeros of each analysis of a block into ``counts`` (see :func:`ma_pass`)."""
    ma_pass(ijk, starts, kernel_index, kernels, spans, shape, lookup, counts,
            np.zeros(0, np.int32), np.zeros(0, np.float32), False)


def write_rows(ijk, starts, kernel_index, kernels, spans, shape, lookup, counts, indices, data):
    """CSR columns and values of a block's analyses into ``indices``, ``data`` (``counts``
    from :func:`count_rows`; see :func:`ma_pass`)."""
    ma_pass(ijk, starts, kernel_index, kernels, spans, shape, lookup, counts, indices, data,
            True)


def output(nnz):
    """Zeroed ``indices`` (int32) and ``data`` (float32) for ``nnz`` values, in memory.

    ``np.zeros`` would map the pages lazily, and faulting them in from inside
    :func:`ma_pass`'s writes was measured to cost twice as much as writing them once first.
    """
    indices, data = np.empty(nnz, np.int32), np.empty(nnz, np.float32)
    indices.fill(0)
    data.fill(0)
    return indices, data


def block_rows(ijk, starts, kernel_index, kernels, spans, shape, lookup):
    """CSR rows of MA for one block of analyses (arguments as :func:`ma_pass` takes them).

    Returns
    -------
    counts : (n_analyses,) int64
        Non-zeros per analysis.
    indices : (nnz,) int32
    data : (nnz,) float32
    """
    args = (ijk, starts, kernel_index, kernels, spans, shape, lookup)
    counts = np.zeros(starts.shape[0] - 1, dtype=np.int64)
    count_rows(*args, counts)
    indices, data = output(counts.sum())
    write_rows(*args, counts, indices, data)
    return counts, indices, data


@numba.njit(cache=True)
def ma_pass(ijk, starts, kernel_index, kernels, spans, shape, lookup, counts, indices, data,
            write):
    """One pass over analyses ``0 .. len(starts) - 2``: count their non-zeros, or write them.

    A first pass (``write=False``) fills ``counts``, so that a second (``write=True``) writes
    each analysis's columns and values into ``indices`` and ``data``, allocated exactly.
    Building the maps twice costs less than growing the output: the maps are cheap, and the
    output is by far the largest memory written.

    Parameters
    ----------
    ijk : (n_foci, 3) int64
        Foci voxel subscripts (possibly outside the volume), grouped by analysis.
    starts : (n_analyses + 1,) int64
        ``ijk[starts[a] - starts[0]:starts[a + 1] - starts[0]]`` are analysis ``a``'s foci.
    kernel_index : (n_analyses,) int64
        Each analysis's kernel in ``kernels``.
    kernels : (n_kernels, side, side, side) float32
    spans : (n_kernels, side, side, 2) int64
        :func:`row_spans` of ``kernels``.
    shape : (3,) int64
        Volume shape.
    lookup : (prod(shape),) int32
        In-mask column of each flat voxel index, -1 outside the mask; increasing where >= 0.
    counts : (n_analyses,) int64
        Non-zeros per analysis: filled when counting, read when writing.
    indices : (counts.sum(),) int32
    data : (counts.sum(),) float32
        Columns and values, written when ``write``.
    write : bool
    """
    nx, ny, nz = shape[0], shape[1], shape[2]
    buf = np.zeros(nx * ny * nz, dtype=np.float32)
    row_lo = np.full(nx * ny, nz, dtype=np.int64)  # reached span of each volume row
    row_hi = np.zeros(nx * ny, dtype=np.int64)
    offset = starts[0]
    nnz = 0
    for a in range(starts.shape[0] - 1):
        k = kernel_index[a]
        i_lo, i_hi, j_lo, j_hi = _mark(ijk[starts[a] - offset:starts[a + 1] - offset],
                                       kernels[k], spans[k], nx, ny, nz, buf, row_lo, row_hi)
        begin = nnz
        for i in range(i_lo, i_hi):
            for j in range(j_lo, j_hi):
                row = i * ny + j
                k0, k1 = row_lo[row], row_hi[row]
                for idx in range(row * nz + k0, row * nz + k1):
                    col = lookup[idx]
                    v = buf[idx]
                    if write:
                        if col >= 0 and v > 0.0:
                            indices[nnz] = col
                            data[nnz] = v
                            nnz += 1
                    else:
                        nnz += (col >= 0) & (v > 0.0)
                    buf[idx] = 0.0
                row_lo[row], row_hi[row] = nz, 0
        if not write:
            counts[a] = nnz - begin
    return nnz


@numba.njit(cache=True)
def _mark(foci, kern, span, nx, ny, nz, buf, row_lo, row_hi):
    """Max of the kernels centred on ``foci`` into ``buf``; the reached rows' spans and box."""
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
