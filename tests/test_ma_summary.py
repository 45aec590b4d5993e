"""The block reductions an ALE fit reads, against plain numpy on the same rows."""

import numpy as np
import pytest
from scipy import sparse

from dmeta.approximate_null import STEP
from dmeta.ma_summary import MAHistograms, MASummary


@pytest.fixture(scope="module")
def matrix():
    """Rows like real MA maps (a few distinct float32 values), some empty."""
    rng = np.random.default_rng(0)
    dense = np.zeros((40, 3000), dtype=np.float32)
    for a in rng.permutation(40)[:35]:
        reached = rng.random(3000) < 0.2
        dense[a, reached] = np.geomspace(1e-6, 0.02, 60, dtype=np.float32)[
            rng.integers(0, 60, reached.sum())]
    return sparse.csr_matrix(dense)


def summary_of(matrix):
    return MASummary.of_rows(matrix.indptr, matrix.indices, matrix.data, matrix.shape[1])


def test_one_block_matches_numpy(matrix):
    summary = summary_of(matrix)
    log_complement = np.bincount(matrix.indices, weights=np.log1p(-matrix.data),
                                 minlength=matrix.shape[1])
    np.testing.assert_array_equal(summary.log_complement, log_complement)
    np.testing.assert_array_equal(summary.statistic(),
                                  (1.0 - np.exp(log_complement)).astype(np.float32))
    np.testing.assert_array_equal(summary.maxima, matrix.max(axis=1).toarray().ravel())
    h = summary.histograms
    for a in range(matrix.shape[0]):
        values = matrix.data[matrix.indptr[a]:matrix.indptr[a + 1]].astype(float)
        scaled = values / STEP
        nearest = np.floor(scaled) + (scaled - np.floor(scaled) >= 0.5)
        bins, counts = np.unique(nearest.astype(np.int64), return_counts=True)
        np.testing.assert_array_equal(h.bins[h.ptr[a]:h.ptr[a + 1]], bins)
        np.testing.assert_array_equal(h.counts[h.ptr[a]:h.ptr[a + 1]], counts)
        assert h.reached[a] == values.size


def test_blocks_combine_to_the_whole(matrix):
    edges = [0, 7, 8, 30, 40]
    parts = [summary_of(matrix[a0:a1]) for a0, a1 in zip(edges[:-1], edges[1:])]
    whole, combined = summary_of(matrix), MASummary.combine(parts)
    np.testing.assert_allclose(combined.log_complement, whole.log_complement, rtol=1e-14)
    np.testing.assert_array_equal(combined.maxima, whole.maxima)
    for field in ("ptr", "bins", "counts", "reached"):
        np.testing.assert_array_equal(getattr(combined.histograms, field),
                                      getattr(whole.histograms, field))


def test_histogram_subsets(matrix):
    indices = [5, 0, 39, 5, 12]
    expected = MAHistograms.of_matrix(matrix[indices])
    got = MAHistograms.of_matrix(matrix).subset(indices)
    for field in ("ptr", "bins", "counts", "reached"):
        np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))


def test_only_empty_analyses_are_dropped(matrix):
    summary = summary_of(matrix)
    reaching = np.flatnonzero(summary.histograms.reached)
    assert reaching.size == 35
    kept = summary.of_analyses(reaching)
    np.testing.assert_array_equal(kept.statistic(), summary.statistic())
    assert len(kept.histograms) == 35
    with pytest.raises(ValueError, match="reach no voxel"):
        summary.of_analyses(reaching[1:])
