"""ResampledStability: how reproducibly each voxel survives when analyses are resampled."""

from __future__ import annotations

import os
from typing import Literal

import pandas as pd

from dmeta.base import DmetaBase
from dmeta.diagnostics.base import analysis_groups
from dmeta.diagnostics.resampling import Policy
from dmeta.diagnostics.sweep import Config, Thresholds, as_attrs, iteration_row, run_supports
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.montecarlo.adaptive import MAX_ITERS, PRECISION
from dmeta.results import MetaResult
from dmeta.validation import check_run_params


@fill_doc
class ResampledStability(DmetaBase):
    """Voxelwise stability of the thresholded ALE under resampling of its analyses.

    Each replicate keeps a subset of the analyses (``leave_1_out``, ``leave_k_out`` or
    ``subsample``), rebuilds the ALE from them (all replicates as one product, see
    :mod:`dmeta.diagnostics.replicates`) and marks the voxels of clusters that are
    significant; the stability map is the fraction of replicates marking each voxel.

    With ``refit="approximate"`` (NiMARE's semantics) clusters are formed at approximate-null
    z > Phi^-1(1 - ``voxel_thresh``), z taken from the full data's null, and kept if larger
    than the (1 - ``alpha``) quantile of the largest cluster in ``n_iters`` random-foci
    datasets of the replicates' size (one null shared by all replicates; foci drawn from
    grey matter with ``mask_coverage="gm"``). With ``refit="full"`` every replicate gets its
    own approximate null and its own Monte Carlo null, all run as one set of Dask tasks.

    Parameters
    ----------
    target_image : str
        Names the outputs ``<target_image>_diag-ResampledStability`` (map) and
        ``..._tab-summary`` (table); the replicates are thresholded as described above.
    resampling_policy : {"leave_1_out", "leave_k_out", "subsample"}
    k : int, optional
        Analyses left out per replicate (``leave_k_out``).
    target_n : int, optional
        Analyses kept per replicate (``subsample``; default all).
    %(n_resamples)s
    %(random_state)s
    voxel_thresh : float, optional
        Cluster-forming uncorrected p, under the approximate null (0.001 if None).
    %(cluster_threshold_stability)s
    %(alpha_stability)s
    %(refit)s
    n_iters : int or "auto", optional
        Monte Carlo iterations per null; by default those of the result's FWE null, else 5000.
        ``"auto"`` runs each null (the shared one, or each replicate's with
        ``refit="full"``) until the cluster-size cut, the (1 - ``alpha``) quantile of its
        largest clusters, is known to ``precision`` (see :mod:`dmeta.montecarlo.adaptive`).
    %(mask_coverage)s
    %(store_stability)s
    %(chunk_iters)s
    %(precision)s
    %(max_iters)s
    """

    def __init__(self, target_image: str = "z_desc-size_level-cluster_corr-FWE_method-montecarlo",
                 resampling_policy: Policy = "subsample", k: int | None = None,
                 target_n: int | None = None, n_resamples: int | None = None,
                 random_state: int | None = None, voxel_thresh: float | None = None,
                 cluster_threshold: int | None = None, alpha: float = 0.05,
                 refit: Literal["approximate", "full"] = "approximate",
                 n_iters: int | None = None, mask_coverage: Literal["gm", "brain"] = "gm",
                 store: str | os.PathLike | None = None, chunk_iters: int | None = None,
                 precision: float = PRECISION, max_iters: int = MAX_ITERS):
        self.target_image = target_image
        self.resampling_policy = resampling_policy
        self.k = k
        self.target_n = target_n
        self.n_resamples = n_resamples
        self.random_state = random_state
        self.voxel_thresh = voxel_thresh
        self.cluster_threshold = cluster_threshold
        self.alpha = alpha
        self.refit = refit
        self.n_iters = n_iters
        self.mask_coverage = mask_coverage
        self.store = store
        self.chunk_iters = chunk_iters
        self.precision = precision
        self.max_iters = max_iters

    def _n_iters(self, result):
        if self.n_iters is not None:
            return self.n_iters
        if result.nulls is not None and "n_iters" in result.nulls.attrs:
            return int(result.nulls.attrs["n_iters"])
        return 5000

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the stability map and the summary table.

        The summary adds to NiMARE's columns the Monte Carlo iterations behind the
        replicates' cluster-size cuts (min, median, max over replicates) and the worst
        relative error of a cut (``precision_reached``); ``attrs["diagnostics"]`` records
        them under the map's name, with the thresholds.
        """
        check_run_params(self.random_state, "random_state", chunk_iters=self.chunk_iters,
                         n_resamples=self.n_resamples)
        Thresholds(n_iters=5000 if self.n_iters is None else self.n_iters, alpha=self.alpha,
                   precision=self.precision, max_iters=self.max_iters).check(self.chunk_iters)
        groups = analysis_groups(result)
        if len(groups) != 1:
            raise InputError("ResampledStability supports single-sample ALE results only")
        ma = groups[0].ma
        config = Config.build(self.resampling_policy, len(ma.ids), self.k, self.target_n,
                              self.n_resamples, self.random_state, self.refit)
        th = Thresholds(0.001 if self.voxel_thresh is None else self.voxel_thresh, self.alpha,
                        self._n_iters(result), self.cluster_threshold, self.mask_coverage,
                        self.precision, self.max_iters)
        st = run_supports(ma, {config.label: config}, th, self.random_state, self.store,
                          self.chunk_iters)[config.label]
        stability = st.stability()
        iterations = iteration_row(st)
        name = f"{self.target_image}_diag-ResampledStability"
        out = result.copy()
        out.add_maps({name: stability.astype("float32")})
        out.add_tables({f"{name}_tab-summary": pd.DataFrame([{
            "target_image": self.target_image,
            "resampling_policy": self.resampling_policy,
            "n_resamples": len(config.subsets),
            "target_n": config.kept,
            "k": self.k,
            "random_state": self.random_state,
            "n_iters_min": iterations["Iterations (min)"],
            "n_iters_median": iterations["Iterations (median)"],
            "n_iters_max": iterations["Iterations (max)"],
            "precision_reached": iterations["Precision reached"],
        }])})
        out.attrs.setdefault("diagnostics", {})[name] = {
            "name": type(self).__name__, "label": config.label, **th.identity(),
            "refit": self.refit, "random_state": self.random_state,
            **as_attrs(iterations),
        }
        return out
