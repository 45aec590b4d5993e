"""Multiple-comparisons correction: Monte Carlo FWE (voxel and cluster level) and FDR."""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from scipy import special

from dmeta.ale import ALE
from dmeta.approximate_null import hist_to_threshold
from dmeta.base import DmetaBase
from dmeta.clusters import supra_threshold_clusters
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.montecarlo import NullPlan, run_null
from dmeta.results import MetaResult
from dmeta.stats import null_to_p, p_to_logp, p_to_z
from dmeta.validation import check_choice, check_run_params
from dmeta.versions import versions

_SUFFIX = "corr-FWE_method-montecarlo"


@fill_doc
class FWECorrector(DmetaBase):
    """Family-wise error correction by Monte Carlo simulation of random-foci datasets.

    Each iteration scatters every analysis's foci at random in-mask voxels, rebuilds ALE and
    keeps its maximum, its largest cluster and its heaviest cluster above the cluster-forming
    threshold (the ALE value with uncorrected p = ``voxel_thresh`` under the approximate null).

    Parameters
    ----------
    method : {"montecarlo"}
    %(voxel_thresh)s
    %(n_iters)s
    %(seed)s
    %(chunk_iters)s
    %(store)s
    """

    def __init__(self, method: Literal["montecarlo"] = "montecarlo", voxel_thresh: float = 0.001,
                 n_iters: int = 5000, seed: int | None = None, chunk_iters: int | None = None,
                 store: str | os.PathLike | None = None):
        self.method = method
        self.voxel_thresh = voxel_thresh
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.store = store

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the voxel-, cluster-size and cluster-mass maps.

        The copy's ``attrs["corrections"]["corr-FWE_method-montecarlo"]`` records what ran
        rather than what was asked for: the iterations in the null the maps were computed
        from, the seed it was drawn with (the one drawn, or found in ``store``, when ``seed``
        is None), ``voxel_thresh`` and the ALE value it gives as the cluster-forming
        threshold. The estimator's parameters stay in ``attrs["params"]``.
        """
        if self.method != "montecarlo":
            raise InputError(f"FWECorrector supports method='montecarlo', got {self.method!r}")
        if not 0 < self.voxel_thresh < 1:
            raise InputError(f"voxel_thresh must be a p-value in (0, 1), got {self.voxel_thresh}")
        check_run_params(self.seed, n_iters=self.n_iters, chunk_iters=self.chunk_iters)
        ale = result.estimator
        if not isinstance(ale, ALE):
            raise InputError("FWE correction needs the result of ALE.fit in this session")
        ale.check_fitted("ma_", "null_weights_", "bins_")
        thresh = float(hist_to_threshold(ale.null_weights_, ale.bins_, self.voxel_thresh))
        nulls, _ = run_null(NullPlan(ale.ma_, thresh), self.n_iters, self.seed,
                            self.chunk_iters, self.store)
        corrected = result.copy()
        corrected.add_maps(_fwe_maps(result, thresh, nulls))
        corrected.nulls = nulls.assign_attrs(
            cluster_forming_stat=thresh, voxel_thresh=self.voxel_thresh
        )
        n_iters = int(nulls.sizes["iteration"])
        _record_correction(corrected, _SUFFIX, {
            "name": type(self).__name__, "method": self.method, "n_iters": n_iters,
            "seed": int(nulls.attrs["seed"]), "voxel_thresh": float(self.voxel_thresh),
            "cluster_forming_stat": thresh,
        })
        corrected.description += (
            f" Family-wise error was controlled with {n_iters} Monte Carlo iterations "
            "of random-foci datasets (maximum ALE, cluster size and cluster mass), with "
            f"face-connected clusters formed at uncorrected p < {self.voxel_thresh}."
        )
        return corrected


def _fwe_maps(result, thresh, nulls):
    """z and logp maps of voxel-, cluster-size and cluster-mass FWE p against ``nulls``."""
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
    return maps


def _record_correction(result, suffix, record):
    """Record in ``result.attrs`` what a corrector ran, and the software versions it ran on.

    Records are kept under the suffix of the maps they describe
    (``attrs["corrections"]["corr-FWE_method-montecarlo"]``), apart from the estimator's
    ``attrs["params"]``: correcting a result twice (FWE then FDR, or FDR with both methods)
    keeps both records, and re-running a corrector replaces its record with its maps.
    """
    result.attrs.setdefault("corrections", {})[suffix] = record
    result.attrs["versions"] = versions()


class FDRCorrector(DmetaBase):
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

    def __init__(self, method: Literal["indep", "negcorr"] = "indep", alpha: float = 0.05):
        self.method = method
        self.alpha = alpha

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the FDR-corrected maps added.

        The copy's ``attrs["corrections"]["corr-FDR_method-<method>"]`` records the method
        and ``alpha``.
        """
        check_choice("FDRCorrector method", self.method, self._METHODS)
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        names = [n for n in result.maps.data_vars if n == "p" or (
            n.startswith("p_") and "_corr-" not in n)]
        if not names:
            raise InputError("FDR correction needs an uncorrected p map; the result has none")
        suffix = f"corr-FDR_method-{self.method}"
        out = result.copy()
        for name in names:
            out.add_maps(_fdr_maps(result, name, self.method, suffix))
        _record_correction(out, suffix, {"name": type(self).__name__, "method": self.method,
                                         "alpha": float(self.alpha)})
        procedure = ("Benjamini-Hochberg" if self.method == "indep" else "Benjamini-Yekutieli")
        out.description += (f" False discovery rate correction was performed with the "
                            f"{procedure} procedure.")
        return out


def _fdr_maps(result, p_name, method, suffix):
    """FDR-adjusted p, z and logp maps of one uncorrected ``p`` / ``p_<desc>`` map.

    The z and logp twins are made only where the result has the uncorrected ones (z takes
    their sign: a subtraction's z is two-sided).
    """
    z_name, logp_name = ("z", "logp") if p_name == "p" else (
        "z_" + p_name[2:], "logp_" + p_name[2:])
    nlogp = _uncorrected_nlogp(result, p_name, logp_name)
    corrected = np.full_like(nlogp, np.nan)
    valid = ~np.isnan(nlogp)
    corrected[valid] = fdr_nlogp(nlogp[valid], method)
    tiny = np.nextafter(np.float32(0), np.float32(1))
    maps = {f"{p_name}_{suffix}": np.clip(np.exp(corrected), tiny, 1).astype(np.float32)}
    if z_name in result.maps:
        sign = np.sign(result.get_map(z_name, "array"))
        maps[f"{z_name}_{suffix}"] = (nlogp_to_z(corrected) * sign).astype(np.float32)
    if logp_name in result.maps:
        logp = corrected / -np.log(10.0) + 0.0
        maps[f"{logp_name}_{suffix}"] = np.clip(
            logp, 0, np.finfo(np.float32).max).astype(np.float32)
    return maps


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
