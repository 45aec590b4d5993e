"""Multiple-comparisons correction: Monte Carlo FWE (voxel and cluster level) and FDR."""

import numpy as np

from dmeta.approximate_null import hist_to_threshold
from dmeta.clusters import supra_threshold_clusters
from dmeta.errors import InputError
from dmeta.montecarlo import NullPlan, run_null
from dmeta.stats import null_to_p, p_to_logp, p_to_z

_SUFFIX = "corr-FWE_method-montecarlo"


class FWECorrector:
    """Family-wise error correction by Monte Carlo simulation of random-foci datasets.

    Each iteration scatters every analysis's foci at random in-mask voxels, rebuilds ALE and
    keeps its maximum, its largest cluster and its heaviest cluster above the cluster-forming
    threshold (the ALE value with uncorrected p = ``voxel_thresh`` under the approximate null).

    Parameters
    ----------
    method : {"montecarlo"}
    voxel_thresh : float
        Uncorrected cluster-forming p threshold.
    n_iters : int
        Monte Carlo iterations.
    seed : int, optional
        Root seed; iteration ``i`` draws from a generator seeded with ``(seed, i)``.
    chunk_iters : int, optional
        Iterations per Dask task (results do not depend on it).
    store : str or Path, optional
        Zarr store in which the null is kept block by block, to resume or extend a run.
    """

    def __init__(self, method="montecarlo", voxel_thresh=0.001, n_iters=5000, seed=None,
                 chunk_iters=None, store=None):
        self.method = method
        self.voxel_thresh = voxel_thresh
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.store = store

    def transform(self, result):
        """Return a copy of ``result`` with the voxel-, cluster-size and cluster-mass maps."""
        if self.method != "montecarlo":
            raise InputError(f"FWECorrector supports method='montecarlo', got {self.method!r}")
        if not 0 < self.voxel_thresh < 1:
            raise InputError(f"voxel_thresh must be a p-value in (0, 1), got {self.voxel_thresh}")
        ale = getattr(result, "estimator", None)
        if ale is None or not hasattr(ale, "ma_"):
            raise InputError("FWE correction needs the result of ALE.fit in this session")
        thresh = hist_to_threshold(ale.null_weights_, ale.bins_, self.voxel_thresh)
        plan = NullPlan(ale.ma_, thresh)
        nulls, _ = run_null(plan, self.n_iters, self.seed, self.chunk_iters, self.store)

        stat = result.get_map("stat", return_type="array")
        space = result.space
        labels, sizes, masses = supra_threshold_clusters(space.to_volume(stat), thresh)
        labels = space.from_volume(labels).astype(int)
        p = {
            "level-voxel": null_to_p(stat, nulls["max_stat"].values),
            "desc-size_level-cluster": null_to_p(sizes, nulls["max_cluster_size"].values)[labels],
            "desc-mass_level-cluster": null_to_p(masses, nulls["max_cluster_mass"].values)[labels],
        }
        maps = {}
        for level, values in p.items():
            maps[f"z_{level}_{_SUFFIX}"] = p_to_z(values)
            maps[f"logp_{level}_{_SUFFIX}"] = p_to_logp(values)
        corrected = result.copy()
        corrected.add_maps(maps)
        corrected.nulls = nulls.assign_attrs(
            cluster_forming_stat=float(thresh), voxel_thresh=self.voxel_thresh
        )
        corrected.description += (
            f" Family-wise error was controlled with {self.n_iters} Monte Carlo iterations "
            "of random-foci datasets (maximum ALE, cluster size and cluster mass), with "
            f"face-connected clusters formed at uncorrected p < {self.voxel_thresh}."
        )
        corrected.estimator = ale
        return corrected
