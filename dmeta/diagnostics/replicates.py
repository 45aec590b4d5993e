"""Thresholded support of resampling replicates, many at once.

With L = log(1 - MA) (analysis x voxel) and S a (replicate x analysis) 0/1 indicator of the
analyses each replicate keeps, S @ L is every replicate's log(1 - ALE) in one product.
"""

import numpy as np
from scipy import sparse

from dmeta.clusters import supra_threshold_clusters
from dmeta.diagnostics.null import passes


def log_complement(matrix):
    """L = log(1 - MA) as a float64 CSR matrix with MA's sparsity."""
    return sparse.csr_matrix(
        (np.log1p(-matrix.data).astype(np.float64), matrix.indices, matrix.indptr),
        shape=matrix.shape,
    )


def replicate_supports(log_ma, subsets, thresholds, voxel_thresh, space):
    """Packed binary support maps of replicates (voxels in surviving clusters).

    Parameters
    ----------
    log_ma : scipy.sparse.csr_matrix
        L of all analyses.
    subsets : (n_replicates, kept) int
        Analyses kept by each replicate.
    thresholds : list of (weights, bins, size_cut)
        Per replicate: the approximate null its z-values come from, and the cluster size
        (voxels) a cluster must exceed.
    voxel_thresh : float
        Cluster-forming uncorrected p.
    space : Space

    Returns
    -------
    (n_replicates, ceil(n_voxels / 8)) uint8
        ``np.packbits`` of each replicate's support.
    """
    rows = np.repeat(np.arange(len(subsets)), subsets.shape[1])
    indicator = sparse.csr_matrix(
        (np.ones(rows.size), (rows, subsets.ravel())), shape=(len(subsets), log_ma.shape[0])
    )
    log_ale = (indicator @ log_ma).toarray()
    packed = []
    for values, (weights, bins, size_cut) in zip(log_ale, thresholds):
        stat = (-np.expm1(values)).astype(np.float32)
        supra = passes(stat, weights, bins, voxel_thresh)
        labels, sizes, _ = supra_threshold_clusters(space.to_volume(supra.astype(np.int8)), 0)
        packed.append(np.packbits(space.from_volume((sizes > size_cut)[labels])))
    return np.array(packed, dtype=np.uint8).reshape(len(subsets), -1)
