"""The approximate ALE null (Eickhoff et al., 2012): a histogram convolution.

Under spatial independence each analysis's MA value at a random voxel is drawn from that
analysis's MA histogram over the mask; the null of ALE = 1 - prod(1 - MA) is their
successive combination. The histogram grid (bin centres 1e-5 apart up to the largest
attainable ALE, values rounded to the nearest centre, ties away from zero) is NiMARE's, so
p-values agree with NiMARE's to floating-point precision.
"""

import numba
import numpy as np

STEP = 1e-5


def histogram_bins(max_ma):
    """Bin centres from 0 to the largest ALE that analyses with these MA maxima can reach."""
    ceil_ma = np.ceil(np.asarray(max_ma, dtype=float) / STEP) * STEP
    max_ale = 1.0 - np.prod(1.0 - ceil_ma)
    return np.round(np.arange(0, max_ale + 1.5 * STEP, STEP), 5)


def approximate_null(ma_matrix, n_voxels, bins):
    """Null histogram weights of ALE over ``bins`` from an (analysis x voxel) CSR MA matrix."""
    inv_step = 1.0 / (bins[1] - bins[0])
    null = None
    out = np.zeros(bins.size)
    for a in range(ma_matrix.shape[0]):
        values = ma_matrix.data[ma_matrix.indptr[a] : ma_matrix.indptr[a + 1]]
        hist = np.bincount(nearest_bin(values, inv_step, bins.size), minlength=bins.size)
        hist = hist.astype(float)
        hist[0] += n_voxels - values.size
        hist /= n_voxels
        if null is None:
            null = hist
            continue
        _combine(np.flatnonzero(null), null, np.flatnonzero(hist), hist, bins, inv_step, out)
        null, out = out, null
    return null


@numba.njit(cache=True)
def nearest(value, inv_step, n_bins):
    """Index of the bin centre nearest ``value`` (ties away from zero), clipped to the grid."""
    scaled = value * inv_step
    low = np.floor(scaled)
    idx = int(low) + int(scaled - low >= 0.5)
    return min(max(idx, 0), n_bins - 1)


@numba.njit(cache=True)
def nearest_bin(values, inv_step, n_bins):
    """Index of the nearest bin centre for each value (ties away from zero), clipped."""
    out = np.empty(values.shape[0], dtype=np.int64)
    for n in range(values.shape[0]):
        out[n] = nearest(values[n], inv_step, n_bins)
    return out


@numba.njit(cache=True)
def _combine(null_idx, null, hist_idx, hist, bins, inv_step, out):
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
