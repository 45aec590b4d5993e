"""Multiple-comparisons correction: Monte Carlo FWE (voxel and cluster level) and FDR."""

import numpy as np
from scipy import special

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
        ale = result.estimator
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
        return corrected


class FDRCorrector:
    """False discovery rate correction of every uncorrected p map, NiMARE's way.

    Benjamini-Hochberg (``method="indep"``) or Benjamini-Yekutieli (``"negcorr"``) step-up
    adjustment, in log space so tails beyond float32's smallest p are kept. Each uncorrected
    ``p`` / ``p_<desc>`` map gives ``p_…``, ``z_…`` (two-sided z, signed like the
    uncorrected z) and ``logp_…`` maps suffixed ``_corr-FDR_method-<method>``.

    Parameters
    ----------
    method : {"indep", "negcorr"}
    alpha : float
        The rate the corrected maps are meant to be thresholded at (the adjustment itself
        does not depend on it).
    """

    _METHODS = ("indep", "negcorr")

    def __init__(self, method="indep", alpha=0.05):
        self.method = method
        self.alpha = alpha

    def transform(self, result):
        """Return a copy of ``result`` with the FDR-corrected maps added."""
        if self.method not in self._METHODS:
            raise InputError(f"FDRCorrector method must be one of {self._METHODS}, "
                             f"got {self.method!r}")
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        names = [n for n in result.maps.data_vars if n == "p" or (
            n.startswith("p_") and "_corr-" not in n)]
        if not names:
            raise InputError("FDR correction needs an uncorrected p map; the result has none")
        suffix = f"_corr-FDR_method-{self.method}"
        maps = {}
        for name in names:
            z_name, logp_name = ("z", "logp") if name == "p" else (
                "z_" + name[2:], "logp_" + name[2:])
            nlogp = _uncorrected_nlogp(result, name, logp_name)
            corrected = np.full_like(nlogp, np.nan)
            valid = ~np.isnan(nlogp)
            corrected[valid] = fdr_nlogp(nlogp[valid], self.method)
            tiny = np.nextafter(np.float32(0), np.float32(1))
            maps[name + suffix] = np.clip(np.exp(corrected), tiny, 1).astype(np.float32)
            if z_name in result.maps:
                sign = np.sign(result.get_map(z_name, "array"))
                maps[z_name + suffix] = (nlogp_to_z(corrected) * sign).astype(np.float32)
            if logp_name in result.maps:
                logp = corrected / -np.log(10.0) + 0.0
                maps[logp_name + suffix] = np.clip(
                    logp, 0, np.finfo(np.float32).max).astype(np.float32)
        out = result.copy()
        out.add_maps(maps)
        procedure = ("Benjamini-Hochberg" if self.method == "indep" else "Benjamini-Yekutieli")
        out.description += (f" False discovery rate correction was performed with the "
                            f"{procedure} procedure.")
        return out


def _uncorrected_nlogp(result, p_name, logp_name):
    """ln p from the p map, and from the logp map where p sits at its dtype's floor."""
    p = result.get_map(p_name, "array")
    nlogp = np.log(np.clip(p.astype(np.float64), np.nextafter(0.0, 1.0), 1.0))
    floored = p <= np.nextafter(p.dtype.type(0), p.dtype.type(1))
    if logp_name in result.maps and floored.any():
        logp = result.get_map(logp_name, "array").astype(np.float64)
        nlogp = np.where(floored, -np.log(10.0) * logp, nlogp)
    return nlogp


def fdr_nlogp(nlogp, method="indep"):
    """Step-up FDR adjustment of natural-log p-values (BH, or BY for ``"negcorr"``)."""
    n = nlogp.size
    order = np.argsort(nlogp)
    log_factor = np.log(np.arange(1, n + 1) / n)
    if method == "negcorr":
        log_factor = log_factor - np.log(np.sum(1 / np.arange(1, n + 1)))
    adjusted = np.minimum.accumulate((nlogp[order] - log_factor)[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adjusted, 0.0)
    return out


def nlogp_to_z(nlogp):
    """Two-sided z of natural-log p-values, without leaving log space."""
    return -special.ndtri_exp(nlogp - np.log(2.0)) + 0.0
