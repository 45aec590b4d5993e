"""What an ALE fit reads from modeled activation, reduced block by block.

A fit reads the (analysis x in-mask voxel) MA matrix three ways: summed over analyses in
log space (the statistic), each analysis's maximum (the null's bins) and each analysis's
histogram of values (the approximate null). Each reduces a block of analyses' rows to
something small, so the blocks of a large set are reduced where they are built and only
the reductions travel: one voxel vector per block and a few tens of histogram bins per
analysis, instead of ~350 kB of rows per analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from dmeta.approximate_null import STEP, nearest

#: Inverse width of the histogram bins, and bins enough for any MA value (at most 1).
INV_STEP = 1.0 / STEP
GRID_BINS = int(INV_STEP) + 2

#: Values per chunk when summing log(1 - MA): numpy takes the logarithm (so the values are
#: numpy's, bit for bit) a cache-sized chunk at a time, and a compiled loop adds them in.
LOG_CHUNK = 1 << 20


@dataclass
class MAHistograms:
    """Per analysis, how many in-mask voxels fall in each occupied MA bin of the null grid.

    Attributes
    ----------
    ptr : (n_analyses + 1,) int64
        Analysis ``a``'s bins are ``bins[ptr[a]:ptr[a + 1]]``, ascending.
    bins : int64
        Bin indices on the grid of step :data:`~dmeta.approximate_null.STEP`.
    counts : int64
        Voxels per bin.
    reached : (n_analyses,) int64
        Voxels with MA > 0 per analysis (the rest count in bin 0).
    """

    ptr: np.ndarray
    bins: np.ndarray
    counts: np.ndarray
    reached: np.ndarray

    def __len__(self):
        return self.reached.size

    @classmethod
    def of_matrix(cls, matrix) -> MAHistograms:
        """The histograms of the rows of a CSR MA matrix."""
        return block_reductions(matrix.data, matrix.indptr)[1]

    def subset(self, indices) -> MAHistograms:
        """The histograms of the analyses at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        lengths = self.ptr[indices + 1] - self.ptr[indices]
        ptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        take = np.repeat(self.ptr[indices] - ptr[:-1], lengths) + np.arange(ptr[-1])
        return MAHistograms(ptr, self.bins[take], self.counts[take], self.reached[indices])


@dataclass
class MASummary:
    """The reductions of an MA matrix an ALE fit needs, for the analyses in order.

    Attributes
    ----------
    log_complement : (n_voxels,) float64
        Sum over analyses of log(1 - MA): ALE = 1 - exp(log_complement).
    maxima : (n_analyses,) float32
        Each analysis's largest MA value (0 if it reaches no voxel).
    histograms : MAHistograms
    """

    log_complement: np.ndarray
    maxima: np.ndarray
    histograms: MAHistograms

    @classmethod
    def of_rows(cls, indptr, indices, data, n_voxels) -> MASummary:
        """The summary of CSR rows (one block of analyses)."""
        maxima, histograms = block_reductions(data, indptr)
        return cls(log_complement_sum(indices, data, n_voxels), maxima, histograms)

    @classmethod
    def of_kernel(cls, arrays, reached, values) -> MASummary:
        """The summary from the MA kernel's reductions of a block (``_ma_kernel``).

        Parameters
        ----------
        arrays : tuple
            ``summary_arrays`` as the kernel filled them.
        reached : (n_analyses,) int64
            Non-zeros per analysis.
        values : float32
            The value of each kernel level.
        """
        log_sum, top, hist_ptr, hist_bins, hist_counts, _ = arrays
        used = hist_ptr[-1]
        histograms = MAHistograms(hist_ptr, hist_bins[:used].copy(), hist_counts[:used].copy(),
                                  np.asarray(reached, dtype=np.int64))
        return cls(log_sum, values[top], histograms)

    @classmethod
    def combine(cls, parts) -> MASummary:
        """The summary of consecutive blocks, from theirs in block order.

        The block sums are added in block order, so a set of analyses gives the same
        floating-point sums however its blocks are computed, wherever, in whatever order.
        """
        log_complement = parts[0].log_complement.copy()
        for part in parts[1:]:
            log_complement += part.log_complement
        hists = [part.histograms for part in parts]
        offsets = np.cumsum([0] + [h.ptr[-1] for h in hists[:-1]])
        histograms = MAHistograms(
            np.concatenate([[0]] + [h.ptr[1:] + o for h, o in zip(hists, offsets)]),
            np.concatenate([h.bins for h in hists]),
            np.concatenate([h.counts for h in hists]),
            np.concatenate([h.reached for h in hists]),
        )
        return cls(log_complement, np.concatenate([p.maxima for p in parts]), histograms)

    def of_analyses(self, indices) -> MASummary:
        """The summary without the analyses not at ``indices``, which must reach no voxel.

        Such analyses add nothing to the sum, so only the per-analysis parts change.
        """
        indices = np.asarray(indices, dtype=np.int64)
        dropped = np.setdiff1d(np.arange(self.maxima.size), indices)
        if self.histograms.reached[dropped].any():
            raise ValueError("only analyses that reach no voxel can be dropped from a summary")
        return MASummary(self.log_complement, self.maxima[indices],
                         self.histograms.subset(indices))

    def statistic(self) -> np.ndarray:
        """ALE = 1 - prod over analyses of (1 - MA), as float32 as NiMARE's maps are.

        p-values are looked up from the float32 statistic so that values on a histogram bin
        edge fall into the same bin as in NiMARE.
        """
        return (1.0 - np.exp(self.log_complement)).astype(np.float32)


def value_tables(values):
    """log(1 - value) (numpy's float32 ``log1p``) and histogram bin of each MA value."""
    values = np.asarray(values, dtype=np.float32)
    return np.log1p(-values), _nearest_bins(values)


@numba.njit(cache=True)
def _nearest_bins(values):
    out = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        out[i] = nearest(values[i], INV_STEP, GRID_BINS)
    return out


@numba.njit(cache=True)
def flush_histogram(scratch, top, bins, counts, used):
    """Move the non-zero counts of ``scratch[:top + 1]`` (zeroing them) to ``bins`` and
    ``counts`` from position ``used`` on, in ascending bin order; return the new ``used``."""
    for k in range(top + 1):
        if scratch[k]:
            bins[used], counts[used] = k, scratch[k]
            scratch[k] = 0
            used += 1
    return used


def log_complement_sum(indices, data, n_voxels):
    """Sum of log(1 - MA) per voxel over CSR rows, in row order (as ``np.bincount`` adds)."""
    out = np.zeros(n_voxels)
    for start in range(0, data.size, LOG_CHUNK):
        chunk = slice(start, start + LOG_CHUNK)
        _add_at(out, indices[chunk], np.log1p(-data[chunk]))
    return out


@numba.njit(cache=True)
def _add_at(out, indices, values):
    for i in range(indices.shape[0]):
        out[indices[i]] += values[i]


def block_reductions(data, indptr):
    """Per-analysis maxima and :class:`MAHistograms` of CSR rows."""
    maxima, ptr, bins, counts = _reduce_rows(data, np.asarray(indptr, dtype=np.int64))
    return maxima, MAHistograms(ptr, bins, counts, np.diff(indptr).astype(np.int64))


@numba.njit(cache=True)
def _reduce_rows(data, indptr):
    """Each row's maximum and its values' counts per nearest grid bin (occupied bins only)."""
    n = indptr.shape[0] - 1
    top = 0
    for i in range(data.shape[0]):
        top = max(top, nearest(data[i], INV_STEP, GRID_BINS))
    scratch = np.zeros(top + 1, np.int64)
    maxima = np.zeros(n, np.float32)
    ptr = np.zeros(n + 1, np.int64)
    bins = np.empty(min(data.shape[0], n * (top + 1)), np.int64)
    counts = np.empty_like(bins)
    used = 0
    for a in range(n):
        row_top = 0
        for i in range(indptr[a], indptr[a + 1]):
            idx = nearest(data[i], INV_STEP, GRID_BINS)
            scratch[idx] += 1
            row_top = max(row_top, idx)
            maxima[a] = max(maxima[a], data[i])
        used = flush_histogram(scratch, row_top, bins, counts, used)
        ptr[a + 1] = used
    return maxima, ptr, bins[:used].copy(), counts[:used].copy()
