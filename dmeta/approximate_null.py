"""The approximate ALE null (Eickhoff et al., 2012): a histogram convolution.

Under spatial independence each analysis's MA value at a random voxel is drawn from that
analysis's MA histogram over the mask; the null of ALE = 1 - prod(1 - MA) is their
successive combination. The histogram grid (bin centres 1e-5 apart up to the largest
attainable ALE, values rounded to the nearest centre, ties away from zero) is NiMARE's, and
so is the rounding of the running null back onto the grid after every analysis.

That per-step rounding is not a detail: combining bin ``n`` with MA bin ``k`` lands on
``n + k - round(n k 1e-5)``, and the dropped fraction is a bias, not noise. Against the
exact distribution of ALE (same MA histograms, no per-step rounding), NiMARE's z differs by
up to 8e-4 on the bundled 21-analysis sets, and at 2,000 analyses its null's mean is 8.5
bins (0.006 sd) higher. So no exact method (FFT in the -log(1 - ALE) domain, tilting) can
stay within 1e-4 of NiMARE's z; this module reproduces NiMARE's fold, only faster (see
:func:`shift_segments` and :func:`_segment_fold`).
"""

import numba
import numpy as np

from dmeta.validation import check_choice

STEP = 1e-5
METHODS = ("segments", "nimare")


def histogram_bins(max_ma):
    """Bin centres from 0 to the largest ALE that analyses with these MA maxima can reach."""
    ceil_ma = np.ceil(np.asarray(max_ma, dtype=float) / STEP) * STEP
    max_ale = 1.0 - np.prod(1.0 - ceil_ma)
    return np.round(np.arange(0, max_ale + 1.5 * STEP, STEP), 5)


def approximate_null(histograms, n_voxels, bins, method="segments"):
    """Null histogram weights of ALE over ``bins`` from per-analysis MA histograms.

    Parameters
    ----------
    histograms : dmeta.ma_summary.MAHistograms
        The analyses' MA histograms, folded in their order.
    n_voxels : int
        In-mask voxels (each analysis's unreached ones count in bin 0).
    bins : ndarray
        Bin centres (:func:`histogram_bins`).
    method : {"segments", "nimare"}
        ``"segments"`` (the default) and ``"nimare"`` (NiMARE's loop, kept for parity
        tests) fold the analyses in order with the same floating-point operations in the
        same order, so they return the same weights, bit for bit; the first is several
        times faster on 500+ analyses.

    Returns
    -------
    ndarray or None
        None if there are no analyses.
    """
    check_choice("method", method, METHODS)
    inv_step = 1.0 / (bins[1] - bins[0])
    h = histograms
    if len(h) == 0:
        return None
    hist_args = (h.ptr, h.bins, h.counts, h.reached, float(n_voxels))
    if method == "nimare":
        return _nimare_fold(*hist_args, bins, inv_step)
    kmax = min(int(h.bins.max()), bins.size - 1) if h.bins.size else 0
    segments = shift_segments(bins, inv_step, kmax)
    state = _empty_state(bins.size)
    return _segment_fold(*hist_args, bins, inv_step, *segments, *state)[0]


def _empty_state(n_bins):
    """A fold before its first analysis: null, scratch, lo, top (-1: empty), highest bin."""
    return np.zeros(n_bins), np.zeros(n_bins), np.zeros(n_bins), 0, -1, -1


class NullFold:
    """NiMARE's fold taken in steps, for analyses that arrive block by block, in order.

    The set's bins are only known once every analysis's maximum is, so the fold runs on the
    grid up to ALE = 1 and :meth:`weights` cuts it to the set's bins. That gives NiMARE's
    weights bit for bit unless the fold reached past the set's last bin (where NiMARE's grid
    would have clipped); :meth:`weights` then returns None, and the caller folds the set
    again on its own grid. On the sets folded this way (thousands of analyses) the null's
    top has underflowed to zero long before.

    Analyses that reach no voxel are skipped: their histogram is all in bin 0, and
    combining with it is not exact (n_voxels x (1 / n_voxels) need not be 1.0).
    """

    def __init__(self, n_voxels):
        self.n_voxels = float(n_voxels)
        self.bins = histogram_bins([1.0])
        self.inv_step = 1.0 / (self.bins[1] - self.bins[0])
        self.kmax = -1
        self.state = _empty_state(self.bins.size)

    def add(self, histograms):
        """Fold in the analyses of ``histograms`` (a :class:`~dmeta.ma_summary.MAHistograms`)."""
        h = histograms.subset(np.flatnonzero(histograms.reached > 0))
        if not len(h):
            return
        if h.bins.max() > self.kmax:  # runs for the new MA bins (rare: the first block)
            self.kmax = int(h.bins.max())
            self.segments = shift_segments(self.bins, self.inv_step, self.kmax)
        self.state = _segment_fold(h.ptr, h.bins, h.counts, h.reached, self.n_voxels,
                                   self.bins, self.inv_step, *self.segments, *self.state)

    def weights(self, bins):
        """The null over ``bins`` (the set's), or None if that would differ from NiMARE's."""
        null, *_, top, highest = self.state
        if top < 0 or highest > bins.size - 1:
            return None
        return null[:bins.size].copy()


@numba.njit(cache=True)
def nearest(value, inv_step, n_bins):
    """Index of the bin centre nearest ``value`` (ties away from zero), clipped to the grid."""
    scaled = value * inv_step
    low = np.floor(scaled)
    idx = int(low) + int(scaled - low >= 0.5)
    return min(max(idx, 0), n_bins - 1)


@numba.njit(cache=True)
def _study_hist(a, ptr, bin_index, counts, reached, n_voxels, hist):
    """Analysis ``a``'s MA histogram into ``hist`` (all zero on entry), as NiMARE builds it.

    NiMARE adds 1.0 per voxel value (here the exact integer counts), then the voxels the
    analysis does not reach at 0, and multiplies by 1 / n_voxels (dividing would differ in
    the last bit). Returns the highest bin used.
    """
    top = 0
    for i in range(ptr[a], ptr[a + 1]):
        idx = min(bin_index[i], hist.shape[0] - 1)
        hist[idx] += counts[i]
        top = max(top, idx)
    hist[0] += n_voxels - reached[a]
    recip = 1.0 / n_voxels
    for k in range(top + 1):
        hist[k] *= recip
    return top


@numba.njit(cache=True)
def _dest(k, n, bins, inv_step):
    """Bin that NiMARE's combine sends null bin ``n`` to when paired with MA bin ``k``."""
    return nearest(1.0 - (1.0 - bins[k]) * (1.0 - bins[n]), inv_step, bins.shape[0])


@numba.njit(cache=True)
def _in_run(k, n, shift, bins, inv_step):
    return n < bins.shape[0] and _dest(k, n, bins, inv_step) - n == shift


@numba.njit(cache=True)
def shift_segments(bins, inv_step, kmax):
    """Runs of null bins that NiMARE's combine moves by one constant shift, per MA bin k.

    ``_dest(k, n)`` is monotone in ``n`` (every floating-point step is) and rises by 0 or 1
    per bin, as the exact score rises by (1 - b) 1e-5 < 1e-5; so ``_dest(k, n) - n`` is
    non-increasing and piecewise constant, with about k + 1 pieces plus the clipped top.
    Each piece's end is found by galloping search. Returns (ptr, starts, ends, shifts):
    MA bin k's runs are ``ptr[k]:ptr[k + 1]``.
    """
    n_bins = bins.shape[0]
    ptr = np.zeros(kmax + 2, np.int64)
    starts, ends, shifts = [0], [0], [0]
    starts.pop(), ends.pop(), shifts.pop()
    for k in range(kmax + 1):
        n = 0
        while n < n_bins:
            d = _dest(k, n, bins, inv_step) - n
            step, last = 1, n  # gallop: last is in the run, last + step may not be
            while _in_run(k, last + step, d, bins, inv_step):
                last += step
                step *= 2
            while step > 1:  # then bisect the gap
                step //= 2
                if _in_run(k, last + step, d, bins, inv_step):
                    last += step
            starts.append(n)
            ends.append(last + 1)
            shifts.append(d)
            n = last + 1
        ptr[k + 1] = len(starts)
    return ptr, np.array(starts), np.array(ends), np.array(shifts)


@numba.njit(cache=True)
def _axpy(out, x, scale):
    """out += scale * x (a separate function so that LLVM vectorises the loop)."""
    for i in range(x.shape[0]):
        out[i] += scale * x[i]


@numba.njit(cache=True)
def _segment_fold(hist_ptr, bin_index, counts, reached, n_voxels, bins, inv_step, ptr, starts,
                  ends, shifts, null, out, hist, lo, top, highest):
    """NiMARE's sequential fold, each combine done as a few shifted axpy's per MA bin.

    NiMARE's combine loops over MA bins k (ascending), then null bins n (ascending), adding
    ``h[k] * null[n]`` to ``out[_dest(k, n)]``. Within a run of constant shift that is one
    vectorisable axpy; runs are taken in ascending order, so every output bin receives the
    same terms in the same order as in NiMARE. Cost per analysis is (occupied null bins) x
    (occupied MA bins), as in NiMARE, but without a rounding per term. Subnormal weights
    (< 2.2e-308) at the ends of the null are kept: they cost ~5% at 10,000 analyses, and
    they set the smallest p-value, that of ALE values beyond the null's support.

    The fold goes on from the state given (see :func:`_empty_state`) and returns it: the
    null (first), the scratch arrays, the occupied range ``lo:top + 1`` and the highest bin
    any combine wrote to.
    """
    n_bins = bins.shape[0]
    first = 0
    if top < 0:
        top = _study_hist(0, hist_ptr, bin_index, counts, reached, n_voxels, null)
        lo, highest, first = 0, max(highest, top), 1
    for a in range(first, reached.shape[0]):
        kmax = _study_hist(a, hist_ptr, bin_index, counts, reached, n_voxels, hist)
        new_lo, new_top = n_bins, 0
        for k in range(kmax + 1):
            hk = hist[k]
            if hk == 0.0:
                continue
            hist[k] = 0.0
            for s in range(ptr[k], ptr[k + 1]):
                s0, s1 = max(starts[s], lo), min(ends[s], top + 1)
                if s0 >= s1:
                    if starts[s] > top:
                        break
                    continue
                d = shifts[s]
                _axpy(out[s0 + d : s1 + d], null[s0:s1], hk)
                new_lo, new_top = min(new_lo, s0 + d), max(new_top, s1 - 1 + d)
        highest = max(highest, new_top)
        null[lo : top + 1] = 0.0
        null, out = out, null
        while new_top > new_lo and null[new_top] == 0.0:
            new_top -= 1
        while new_lo < new_top and null[new_lo] == 0.0:
            new_lo += 1
        lo, top = new_lo, new_top
    return null, out, hist, lo, top, highest


def _nimare_fold(hist_ptr, bin_index, counts, reached, n_voxels, bins, inv_step):
    """NiMARE's ``_compute_null_approximate`` loop, term by term (reference for tests)."""
    null = None
    out = np.zeros(bins.size)
    for a in range(reached.size):
        hist = np.zeros(bins.size)
        _study_hist(a, hist_ptr, bin_index, counts, reached, n_voxels, hist)
        if null is None:
            null = hist
            continue
        _nimare_combine(np.flatnonzero(null), null, np.flatnonzero(hist), hist, bins, inv_step,
                        out)
        null, out = out, null
    return null


@numba.njit(cache=True)
def _nimare_combine(null_idx, null, hist_idx, hist, bins, inv_step, out):
    """out = distribution of 1 - (1 - A)(1 - B) for A ~ null, B ~ hist, on the bin grid."""
    out[:] = 0.0
    for m in hist_idx:
        one_minus_b = 1.0 - bins[m]
        for n in null_idx:
            score = 1.0 - one_minus_b * (1.0 - bins[n])
            out[nearest(score, inv_step, bins.shape[0])] += hist[m] * null[n]


def hist_to_p(values, weights, bins):
    """One-sided p of each value: the null mass in its bin and above (min non-zero tail)."""
    tail = np.cumsum(weights[::-1])[::-1]
    tail = tail / tail[0]
    smallest = tail[tail > 0].min()
    values = np.asarray(values, dtype=float)
    p = np.ones(values.shape)
    positive = values > 0
    scaled = values[positive] / (bins[1] - bins[0])
    idx = np.where(np.abs(scaled - np.round(scaled)) == 0.5, np.ceil(scaled), np.round(scaled))
    p[positive] = tail[np.minimum(idx.astype(np.int64), bins.size - 1)]
    return np.clip(p, smallest, 1.0)


def hist_to_threshold(weights, bins, p):
    """The statistic whose upper-tail probability first falls to ``p`` (conservative)."""
    tail = np.cumsum(np.asarray(weights, dtype=float)[::-1])[::-1]
    if tail[0] <= 0:
        return bins[0]
    below = np.flatnonzero(tail / tail[0] <= p)
    if below.size == 0:
        return bins[-1]
    return bins[max(0, below[0] - 1)]
