"""Jackknife: each analysis's proportional contribution to each cluster.

NiMARE refits the meta-analysis without each analysis in turn and reports, per cluster, the
mean over its voxels of ``1 - stat_without / stat``. With L = log(1 - MA) and T the sum of
L over a group's analyses, leaving analysis i out gives log(1 - ALE) = T - L_i, so

    ALE - ALE_without_i = exp(T - L_i) - exp(T) = (1 - ALE) * expm1(-L_i)
                        = (1 - ALE) * MA_i / (1 - MA_i),

non-zero only where MA_i is: every leave-one-out refit at once is one sparse product over
the cluster voxels, blocked over voxels (as Dask tasks) when the problem is large. A set
whose MA matrix was never brought to this process (one built on the workers) is done by
blocks of analyses instead: each task rebuilds its block's rows where it runs, and the
fit's own sum of log(1 - MA) gives 1 - ALE.
"""

import numpy as np
from scipy import sparse

from dmeta.compute import run_blocks
from dmeta.diagnostics.base import Diagnostics, statistic_map
from dmeta.docstrings import fill_doc

#: Non-zeros of MA in the cluster voxels above which blocks go to Dask workers.
DASK_NNZ = 20_000_000


def contribution_sums(ma_block, weights, cluster_index, n_clusters):
    """Per (analysis, cluster) sums of ``weights * MA / (1 - MA)`` over one voxel block.

    Parameters
    ----------
    ma_block : scipy.sparse.csr_matrix, (n_analyses, n_block_voxels)
    weights : (n_block_voxels,) float
        ``sign * (1 - ALE_group) / stat`` at each voxel.
    cluster_index : (n_block_voxels,) int
        Position of each voxel's cluster in the table's columns.
    """
    ma = ma_block.tocsr().astype(np.float64)
    ma.data = ma.data / (1.0 - ma.data)
    ma = ma @ sparse.diags(weights)
    onehot = sparse.csr_matrix(
        (np.ones(cluster_index.size), (np.arange(cluster_index.size), cluster_index)),
        shape=(cluster_index.size, n_clusters),
    )
    return np.asarray((ma @ onehot).todense())


def jackknife_contributions(ma, stat, labels, cluster_ids, sign=1, chunk_voxels=None):
    """(analysis x cluster) mean proportional contribution, NiMARE's Jackknife table.

    Parameters
    ----------
    ma : dmeta.modeled_activation.ModeledActivation
        MA of the group whose analyses are left out.
    stat : (n_voxels,) float
        The result's statistic (ALE, or group 1 minus group 2 ALE).
    labels : (n_voxels,) int
        Cluster label of each voxel (0 outside).
    cluster_ids : (n_clusters,) int
        Labels to report, in column order.
    sign : {1, -1}
        Sign of the group's ALE in ``stat``.
    chunk_voxels : int, optional
        Cluster voxels per block; blocks beyond one run as Dask tasks.
    """
    columns = np.flatnonzero(np.isin(labels, cluster_ids))
    cluster_index = np.searchsorted(cluster_ids, labels[columns])
    sizes = np.bincount(cluster_index, minlength=cluster_ids.size)
    if not ma.matrix_here:
        return _by_analysis_blocks(ma, stat, columns, cluster_index, cluster_ids.size,
                                   sign) / sizes
    block = ma.matrix[:, columns]
    log_complement = np.asarray(
        sparse.csr_matrix((np.log1p(-block.data.astype(np.float64)), block.indices, block.indptr),
                          shape=block.shape).sum(axis=0)
    ).ravel()
    weights = _weights(log_complement, stat[columns], sign)
    if chunk_voxels is None:
        chunk_voxels = columns.size if block.nnz <= DASK_NNZ else max(
            1, int(columns.size * DASK_NNZ / block.nnz))
    bounds = [(a, min(a + chunk_voxels, columns.size))
              for a in range(0, columns.size, max(1, chunk_voxels))]
    args = [(block[:, a:b], weights[a:b], cluster_index[a:b], cluster_ids.size) for a, b in bounds]
    if len(args) == 1:
        sums = contribution_sums(*args[0])
    else:
        parts = {}
        run_blocks(contribution_sums, dict(enumerate(args)), parts.__setitem__,
                   desc="Jackknife voxel blocks")
        sums = sum(parts[n] for n in range(len(args)))  # in block order: the same floats
    return sums / sizes


def _weights(log_complement, stat, sign):
    """``sign * (1 - ALE_group) / stat`` per voxel, 0 where ``stat`` is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(sign * np.exp(log_complement) / stat.astype(np.float64))


def _by_analysis_blocks(ma, stat, columns, cluster_index, n_clusters, sign):
    """Per (analysis, cluster) sums for a set whose MA rows are built on the workers."""
    weights = _weights(ma.summary.log_complement[columns], stat[columns], sign)
    blocks = {b: (part, columns, weights, cluster_index, n_clusters)
              for b, part in enumerate(ma.block_parts())}
    parts = {}
    run_blocks(_analysis_block_sums, blocks, parts.__setitem__,
               shared=(columns, weights, cluster_index), desc="Jackknife analysis blocks")
    return np.concatenate([parts[b] for b in range(len(blocks))])


def _analysis_block_sums(part, columns, weights, cluster_index, n_clusters):
    return contribution_sums(part.matrix[:, columns], weights, cluster_index, n_clusters)


@fill_doc
class Jackknife(Diagnostics):
    """Leave-one-out contribution of each analysis to each cluster (NiMARE's Jackknife).

    Values are the mean over a cluster's voxels of the proportional drop of the statistic
    when the analysis is left out, computed for every analysis at once (see module notes).

    Parameters
    ----------
    %(diagnostic_parameters)s
    chunk_voxels : int, optional
        Cluster voxels per block; by default one block, unless the modeled activation
        there is large. Blocks beyond one run as Dask tasks.
    """

    def __init__(self, target_image: str = "z_desc-size_level-cluster_corr-FWE_method-montecarlo",
                 voxel_thresh: float | None = None, cluster_threshold: int | None = None,
                 display_second_group: bool = False, chunk_voxels: int | None = None):
        super().__init__(target_image, voxel_thresh, cluster_threshold, display_second_group)
        self.chunk_voxels = chunk_voxels

    def contributions(self, result, group, labels, cluster_ids):
        return jackknife_contributions(group.ma, statistic_map(result), labels, cluster_ids,
                                       group.sign, self.chunk_voxels)
