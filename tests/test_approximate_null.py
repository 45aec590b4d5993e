"""The fast approximate null (``method="segments"``) against NiMARE's fold, on small cases.

The fold rounds the running null to the 1e-5 grid after every analysis (as NiMARE does), so
its result depends on the order of the analyses; the fast method follows the fold in any
order, and the order itself moves z by a few 1e-4 (NiMARE's behaviour, bounded below).
"""

import numpy as np
import pytest
from scipy import sparse

from dmeta.approximate_null import (
    NullFold,
    _dest,
    approximate_null,
    hist_to_p,
    histogram_bins,
    shift_segments,
)
from dmeta.errors import InputError
from dmeta.ma_summary import MAHistograms
from dmeta.stats import p_to_logp, p_to_z

N_VOXELS = 20_000


def ma_matrix(n_analyses, seed=0):
    """Analyses shaped like real MA maps: ~15% of voxels reached, a few kernel values each."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_analyses):
        kernel = np.geomspace(2e-6, rng.uniform(2e-3, 1e-2), 40)
        row = np.zeros(N_VOXELS, dtype=np.float32)
        reached = rng.random(N_VOXELS) < 0.15
        row[reached] = kernel[rng.integers(0, 40, reached.sum()) ** 2 // 40]
        rows.append(row)
    return sparse.csr_matrix(np.array(rows))


def null_of(matrix, bins, method="segments"):
    return approximate_null(MAHistograms.of_matrix(matrix), N_VOXELS, bins, method=method)


def p_and_z(matrix, method="segments"):
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    p = hist_to_p(bins, null_of(matrix, bins, method=method), bins)
    return p, p_to_z(p)


@pytest.mark.parametrize("n_analyses, seed", [(1, 0), (2, 1), (30, 2), (120, 3)])
def test_segments_equal_the_fold(n_analyses, seed):
    matrix = ma_matrix(n_analyses, seed)
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    fast = null_of(matrix, bins)
    fold = null_of(matrix, bins, method="nimare")
    np.testing.assert_array_equal(fast, fold)
    p, z = p_and_z(matrix)
    p_fold, z_fold = p_and_z(matrix, method="nimare")
    np.testing.assert_allclose(p, p_fold, rtol=0, atol=1e-12)
    np.testing.assert_allclose(z, z_fold, rtol=0, atol=1e-9)


def test_segments_equal_nimare_kernels():
    """Bit for bit NiMARE's own numba kernels, in its loop."""
    null_utils = pytest.importorskip("nimare.meta.cbma.null_utils")
    matrix = ma_matrix(40, seed=4)
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    inv_step = 1 / (bins[1] - bins[0])  # as NiMARE computes it: not exactly 1e5
    null, tmp = None, np.zeros(bins.size)
    for a in range(matrix.shape[0]):
        values = matrix.data[matrix.indptr[a] : matrix.indptr[a + 1]]
        hist = null_utils._study_ma_histogram(values, N_VOXELS - values.size, 1.0 / N_VOXELS,
                                              inv_step, bins.size)
        if null is None:
            null = hist.copy()
            continue
        i, j = np.flatnonzero(null), np.flatnonzero(hist)
        null_utils._update_ale_histogram(i, null[i], j, hist[j], bins, inv_step, bins.size,
                                         tmp)
        null, tmp = tmp, null
    np.testing.assert_array_equal(null_of(matrix, bins), null)


def test_order_of_analyses():
    """Any order: the fold's result in that order. Orders differ by < 1e-3 in z up to z = 8
    (by ~2e-3 at z = 13): NiMARE's fold does too, so nothing that matches it can do better."""
    matrix = ma_matrix(30, seed=5)
    p, z = p_and_z(matrix)
    for seed in range(3):
        shuffled = matrix[np.random.default_rng(seed).permutation(matrix.shape[0])]
        p_shuffled, z_shuffled = p_and_z(shuffled)
        np.testing.assert_allclose(p_shuffled, p_and_z(shuffled, method="nimare")[0],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(p_shuffled, p, rtol=0, atol=1e-4)
        bulk = z < 8
        np.testing.assert_allclose(z_shuffled[bulk], z[bulk], rtol=0, atol=1e-3)


def test_shift_segments_cover_every_bin_with_its_shift():
    """The galloping search finds exactly the runs a bin-by-bin scan finds."""
    bins = histogram_bins(np.full(40, 0.01))
    inv_step = 1 / (bins[1] - bins[0])
    ptr, starts, ends, shifts = shift_segments(bins, inv_step, 1000)
    for k in (0, 1, 7, 333, 1000):
        runs = slice(ptr[k], ptr[k + 1])
        assert starts[runs][0] == 0 and ends[runs][-1] == bins.size
        np.testing.assert_array_equal(starts[runs][1:], ends[runs][:-1])
        expected = [_dest(k, n, bins, inv_step) - n for n in range(bins.size)]
        np.testing.assert_array_equal(np.repeat(shifts[runs], ends[runs] - starts[runs]),
                                      expected)


def test_edge_cases():
    bins = histogram_bins([0.01, 0.01])
    empty = sparse.csr_matrix((2, N_VOXELS), dtype=np.float32)  # no analysis reaches a voxel
    null = null_of(empty, bins)
    assert null[0] == 1.0 and null[1:].sum() == 0.0
    assert null_of(sparse.csr_matrix((0, N_VOXELS)), bins) is None
    with pytest.raises(InputError, match="^method must be one of 'segments', 'nimare', got 'fft'"):
        null_of(empty, bins, method="fft")


def test_fold_in_steps_equals_the_fold():
    """NullFold: blocks folded as they come, on the grid to ALE = 1, cut to the set's bins,
    bit for bit the fold on the set's own grid; analyses reaching no voxel are skipped."""
    matrix = sparse.vstack([ma_matrix(50, seed=6), sparse.csr_matrix((1, N_VOXELS)),
                            ma_matrix(20, seed=7)]).tocsr()
    histograms = MAHistograms.of_matrix(matrix)
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    fold = NullFold(N_VOXELS)
    for a0, a1 in [(0, 17), (17, 51), (51, 71)]:
        fold.add(histograms.subset(np.arange(a0, a1)))
    reaching = np.flatnonzero(histograms.reached)
    expected = approximate_null(histograms.subset(reaching), N_VOXELS, bins)
    np.testing.assert_array_equal(fold.weights(bins), expected)
    assert fold.weights(bins[:40]) is None  # reached past those bins: not NiMARE's
    assert NullFold(N_VOXELS).weights(bins) is None  # nothing folded


def test_subnormal_p_converts_as_nimare():
    """A null on thousands of analyses ends in subnormal weights, so p of ALE values beyond
    its support is subnormal: z and -log10 p convert it as NiMARE does, not clipped at the
    smallest normal double (which would give z 37.5 instead of 38.45)."""
    transforms = pytest.importorskip("nimare.transforms")
    p = np.array([1e-323, 5e-310, 2.3e-308, 1e-100])
    np.testing.assert_allclose(p_to_z(p), transforms.p_to_z(p, tail="one"), rtol=1e-12)
    np.testing.assert_allclose(p_to_logp(p), -np.log10(p), rtol=1e-12)
