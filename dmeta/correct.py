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
from dmeta.montecarlo import NullPlan, iteration_budget, run_null
from dmeta.montecarlo.adaptive import MAX_ITERS, PRECISION, adaptive_record, describe
from dmeta.montecarlo.store import NULL_NAMES
from dmeta.results import MetaResult
from dmeta.scale import SCALE
from dmeta.stats import null_to_p, p_to_logp, p_to_z
from dmeta.subtraction import ALESubtraction
from dmeta.subtraction.fwe import difference_nulls, subtraction_fwe_maps
from dmeta.validation import check_choice, check_p, check_run_params
from dmeta.versions import versions

_SUFFIX = "corr-FWE_method-montecarlo"
_TARGETS = ("pairwise", "main-effects", "all")


@fill_doc
class FWECorrector(DmetaBase):
    """Family-wise error correction: Monte Carlo nulls, or cutoffs predicted by NiMARE's models.

    ``method="montecarlo"`` on an ALE result: each iteration scatters every analysis's foci
    at random in-mask voxels, rebuilds ALE and keeps its maximum, its largest cluster and its
    heaviest cluster above the cluster-forming threshold (the ALE value with uncorrected
    p = ``voxel_thresh`` under the approximate null). On an :class:`~dmeta.ALESubtraction`
    result: relabellings of the pooled analyses, keeping each one's maximum absolute difference and
    largest clusters above the quantile 1 - ``voxel_thresh`` of absolute difference (``target``
    chooses the contrast, the two main effects, or all).

    ``method="predictive"``: voxel- and cluster-level cutoffs predicted from the numbers of
    analyses, subjects and foci by the XGBoost models NiMARE ships (extra
    ``dmeta[predictive]``; :func:`dmeta.predictive.correct_fwe_predictive`).

    Parameters
    ----------
    method : {"montecarlo", "predictive"}
    %(voxel_thresh)s
    %(n_iters_auto)s
    %(seed)s
    %(chunk_iters)s
    %(store)s
    vfwe_only : bool
        Only the voxel-level maps (no cluster nulls).
    target : {"pairwise", "main-effects", "all"}
        For a subtraction: correct the group difference, each group's main effect, or both.
    %(precision)s
    %(max_iters)s
    """

    def __init__(self, method: Literal["montecarlo", "predictive"] = "montecarlo",
                 voxel_thresh: float = 0.001, n_iters: int = 5000, seed: int | None = None,
                 chunk_iters: int | None = None, store: str | os.PathLike | None = None,
                 vfwe_only: bool = False,
                 target: Literal["pairwise", "main-effects", "all"] = "pairwise",
                 precision: float = PRECISION, max_iters: int = MAX_ITERS):
        self.method = method
        self.voxel_thresh = voxel_thresh
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.store = store
        self.vfwe_only = vfwe_only
        self.target = target
        self.precision = precision
        self.max_iters = max_iters

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the corrected maps.

        The copy's ``attrs["corrections"]["corr-FWE_method-<method>"]`` records what ran
        rather than what was asked for: the iterations in the null the maps were computed
        from, the seed it was drawn with (the one drawn, or found in ``store``, when ``seed``
        is None), ``voxel_thresh`` and the cluster-forming threshold it gives. The
        estimator's parameters stay in ``attrs["params"]``.
        """
        check_choice("FWECorrector method", self.method, ("montecarlo", "predictive"))
        check_p("voxel_thresh", self.voxel_thresh)
        if self.method == "predictive":
            if self.voxel_thresh != 0.001:
                raise InputError("method='predictive' predicts cutoffs for clusters formed at "
                                 f"p < 0.001; voxel_thresh={self.voxel_thresh} is not allowed")
            from dmeta.predictive import correct_fwe_predictive

            return correct_fwe_predictive(result)
        check_run_params(self.seed, chunk_iters=self.chunk_iters)
        self._budget(())
        check_choice("target", self.target, _TARGETS)
        estimator = result.estimator
        if isinstance(estimator, ALESubtraction):
            return self._correct_subtraction(result, estimator)
        if isinstance(estimator, SCALE):
            return self._correct_scale(result, estimator)
        if not isinstance(estimator, ALE):
            raise InputError("FWE correction needs the result of ALE.fit, ALESubtraction.fit "
                             "or SCALE.fit in this session")
        return self._correct_ale(result, estimator)

    def _correct_ale(self, result, ale, name="fwe"):
        ale.check_fitted("ma_", "null_weights_", "bins_")
        thresh = float(hist_to_threshold(ale.null_weights_, ale.bins_, self.voxel_thresh))
        nulls, _ = run_null(NullPlan(ale.ma_, None if self.vfwe_only else thresh),
                            self._budget(_critical_columns(self.vfwe_only)), self.seed,
                            self.chunk_iters, self.store, name)
        corrected = result.copy()
        corrected.add_maps(_fwe_maps(result, thresh, nulls, self.vfwe_only))
        corrected.nulls = nulls.assign_attrs(
            cluster_forming_stat=thresh, voxel_thresh=self.voxel_thresh
        )
        n_iters = int(nulls.sizes["iteration"])
        self._record(corrected, nulls, thresh)
        levels = ("maximum ALE" if self.vfwe_only
                  else "maximum ALE, cluster size and cluster mass")
        corrected.description += (
            f" Family-wise error was controlled with {n_iters} Monte Carlo iterations "
            f"of random-foci datasets ({levels})"
            + ("." if self.vfwe_only else ", with face-connected clusters formed at "
               f"uncorrected p < {self.voxel_thresh}.")
        ) + _describe(nulls)
        return corrected

    def _correct_subtraction(self, result, subtraction):
        """The contrast's and/or the main effects' maps, NiMARE's names."""
        corrected = result.copy()
        if self.target in ("pairwise", "all"):
            nulls, thresh = self._difference_nulls(result, subtraction)
            corrected.add_maps(subtraction_fwe_maps(result, nulls, thresh, subtraction.tested_,
                                                    _SUFFIX))
            corrected.nulls = nulls
            n_iters = int(nulls.sizes["iteration"])
            self._record(corrected, nulls, thresh)
            first = nulls.attrs.get("threshold_adaptive")
            if first:  # an adaptive histogram pass: its own count and precision
                corrected.attrs["corrections"][_SUFFIX].update(
                    threshold_n_iters=int(nulls.attrs["threshold_iters"]),
                    threshold_achieved_precision=float(max(first["achieved"].values())),
                    threshold_converged=bool(first["converged"]))
            corrected.description += (
                f" Family-wise error was controlled with {n_iters} random reassignments of the "
                "pooled experiments to groups of the original sizes, keeping each one's maximum "
                "absolute ALE difference"
                + ("." if self.vfwe_only else
                   " and its largest cluster's size and mass, clusters (face-connected, positive "
                   "and negative apart) being formed at the quantile "
                   f"{1 - self.voxel_thresh:g} of absolute ALE differences over all "
                   "reassignments and voxels.")
            ) + _describe(nulls, "reassignments") + (
                f" The cluster-forming threshold was read from the first "
                f"{nulls.attrs['threshold_iters']} reassignments, where the maximum absolute "
                f"difference's critical value was known to {max(first['achieved'].values()):.3f}"
                " of its value." if first else "")
        if self.target in ("main-effects", "all"):
            for label, group in zip(("group1", "group2"), subtraction.groups_):
                main = self._correct_ale(group, group.estimator, f"fwe-{label}")
                corrected.add_maps({_group_map_name(name, label): main.get_map(name, "array")
                                    for name in main.maps.data_vars if _SUFFIX in name})
            corrected.description += (" Each group's main effect was corrected in the same "
                                      "way as a one-sample ALE.")
        return corrected

    def _correct_scale(self, result, scale):
        """Voxel-level maps only: SCALE's nulls are specific to each voxel, so there is no
        cluster-level correction (as in NiMARE)."""
        fitted = result.nulls
        if fitted.sizes["iteration"] == self.n_iters and self.seed in (
                None, fitted.attrs.get("seed")):
            nulls = fitted
        else:
            seed = result.attrs["params"]["seed"] if self.seed is None else self.seed
            nulls = scale.null_maxima(self._budget(NULL_NAMES[:1]), seed, self.chunk_iters,
                                      self.store)
        corrected = result.copy()
        corrected.add_maps(_fwe_maps(result, None, nulls, vfwe_only=True))
        corrected.nulls = nulls
        n_iters = int(nulls.sizes["iteration"])
        self._record(corrected, nulls, None)
        corrected.description += (
            f" Family-wise error was controlled at the voxel level with the maximum ALE of "
            f"{n_iters} base-rate null datasets.") + _describe(nulls, "null datasets")
        return corrected

    def _difference_nulls(self, result, subtraction):
        """The fit's nulls when they answer this request, else new ones (NiMARE's rule)."""
        def same_budget(fitted):
            # The same count (not an adaptive null: its threshold came from fewer), or both
            # "auto" with the same precision and limit, watching the same critical values.
            info = fitted.attrs.get("adaptive")
            if self.n_iters != "auto":
                return not info and fitted.sizes.get("iteration") == self.n_iters
            return bool(info) and info["precision"] == self.precision and (
                info["max_iters"] == self.max_iters) and (
                bool(fitted.attrs.get("vfwe_only", True)) == bool(self.vfwe_only))

        fitted = result.nulls
        if fitted is not None and same_budget(fitted) and (
                self.vfwe_only or not fitted.attrs.get("vfwe_only", True)) and (
                self.vfwe_only or fitted.attrs.get("voxel_thresh") == self.voxel_thresh) and (
                self.seed is None or self.seed == fitted.attrs.get("seed")):
            return fitted, fitted.attrs.get("cluster_forming_stat")
        lc = subtraction.log_complement()
        space = result.space
        seed = subtraction.seed_ if self.seed is None and self.store is None else self.seed
        nulls, thresh = difference_nulls(
            lc, len(subtraction.ma1_.ids), space.flat_index[lc.voxels], space.shape,
            self._budget(_critical_columns(self.vfwe_only)), self.voxel_thresh,
            self.vfwe_only, seed, self.chunk_iters, self.store)
        return nulls.assign_attrs(cluster_forming_stat=thresh,
                                  voxel_thresh=self.voxel_thresh), thresh

    def _budget(self, columns):
        """``n_iters`` as the Monte Carlo engine takes it: a count, or a rule watching the
        95th percentiles of ``columns``."""
        return iteration_budget(self.n_iters, self.precision, self.max_iters, columns)

    def _record(self, corrected, nulls, thresh):
        _record_correction(corrected, _SUFFIX, {
            "name": type(self).__name__, "method": self.method,
            "n_iters": int(nulls.sizes["iteration"]), "seed": int(nulls.attrs["seed"]),
            "voxel_thresh": float(self.voxel_thresh),
            "cluster_forming_stat": thresh, "vfwe_only": bool(self.vfwe_only),
            "target": self.target, **adaptive_record(nulls),
        })


def _describe(nulls, unit="iterations"):
    """The methods sentence on an adaptive null's stop ("" for a fixed one)."""
    return describe(nulls.attrs.get("adaptive"), nulls.sizes["iteration"], unit)


def _critical_columns(vfwe_only):
    """Null columns whose 95th percentiles the FWE maps rest on."""
    return NULL_NAMES[:1] if vfwe_only else NULL_NAMES


def _group_map_name(name, label):
    """One-sample FWE map name inside a subtraction result, as NiMARE renames it."""
    kind, rest = name.split("_", 1)
    for level in ("size", "mass"):
        if rest.startswith(f"desc-{level}_"):
            return f"{kind}_desc-{label}{level.title()}_{rest[len(f'desc-{level}_'):]}"
    return f"{kind}_desc-{label}_{rest}"


def _fwe_maps(result, thresh, nulls, vfwe_only=False):
    """z and logp maps of voxel-, cluster-size and cluster-mass FWE p against ``nulls``."""
    stat = result.get_map("stat", return_type="array")
    p = {"level-voxel": null_to_p(stat, nulls["max_stat"].values)}
    if not vfwe_only:
        space = result.space
        labels, sizes, masses = supra_threshold_clusters(space.to_volume(stat), thresh)
        labels = space.from_volume(labels).astype(int)
        p["desc-size_level-cluster"] = null_to_p(sizes, nulls["max_cluster_size"].values)[labels]
        p["desc-mass_level-cluster"] = null_to_p(masses, nulls["max_cluster_mass"].values)[labels]
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
        check_p("alpha", self.alpha)
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
