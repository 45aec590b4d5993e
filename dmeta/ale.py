"""The ALE estimator: modeled activation -> ALE statistic -> p, z, -log10 p."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Literal

import numpy as np

from dmeta.approximate_null import NullFold, approximate_null, hist_to_p, histogram_bins
from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.modeled_activation import OUTSIDE_TABLE, ModeledActivation
from dmeta.montecarlo.adaptive import (
    MAX_ITERS,
    PRECISION,
    STEP,
    PooledQuantileRule,
    StoppingRule,
    adaptive_record,
    describe,
    iteration_budget,
)
from dmeta.results import MetaResult
from dmeta.space import MaskLike, Space
from dmeta.stats import p_to_logp, p_to_z
from dmeta.validation import check_choice, check_run_params
from dmeta.versions import versions

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

NULL_METHODS = ("approximate", "montecarlo")
#: Uncorrected p whose critical value an adaptive voxelwise null is run for.
ADAPTIVE_P = 0.001


@fill_doc
class ALE(DmetaBase):
    """Activation likelihood estimation (Turkeltaub et al., 2002; Eickhoff et al., 2009, 2012).

    Parameters
    ----------
    %(kernel_fwhm)s
    %(sample_size)s
    null_method : {"approximate", "montecarlo"}
        How ALE values become p-values: the analytic histogram null, or the empirical null
        of ``n_iters`` random-foci datasets (run on the Monte Carlo engine). ``n_iters``,
        ``seed``, ``chunk_iters``, ``precision`` and ``max_iters`` are used by the latter
        only.
    n_iters : int or "auto"
        Monte Carlo iterations, each a random-foci dataset: every analysis's foci at random
        in-mask voxels, and the ALE they give. ``"auto"`` runs until the ALE at uncorrected
        p = 0.001 (the usual cluster-forming threshold) is known to ``precision``: the
        distribution-free 95% interval of the median of the batches of 100 iterations' own
        values, relative to the pooled value
        (:class:`~dmeta.montecarlo.adaptive.PooledQuantileRule`; at least 600 iterations).
    %(seed)s
    %(chunk_iters)s
    %(mask)s
    precision : float
        With ``n_iters="auto"``: the largest accepted relative half-width of that interval,
        in (0, 1).
    %(max_iters)s

    Attributes
    ----------
    n_iters_ : int or None
        The Monte Carlo iterations used (None with the approximate null).
    """

    def __init__(
        self,
        kernel_fwhm: float | None = None,
        sample_size: int | None = None,
        null_method: Literal["approximate", "montecarlo"] = "approximate",
        n_iters: int | Literal["auto"] = 5000,
        seed: int | None = None,
        chunk_iters: int | None = None,
        mask: MaskLike = None,
        precision: float = PRECISION,
        max_iters: int = MAX_ITERS,
    ):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.null_method = null_method
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask
        self.precision = precision
        self.max_iters = max_iters

    def fit(self, cset: CoordinateSet) -> MetaResult:
        """Fit ALE to a coordinate set and return a :class:`~dmeta.MetaResult`.

        Maps: ``stat`` (ALE), ``p``, ``z`` and ``logp`` (-log10 p).
        """
        if not isinstance(cset, CoordinateSet):
            raise InputError(
                f"ALE.fit expects a dmeta.CoordinateSet, got {type(cset).__name__}; "
                "read one with dmeta.io.load(path)"
            )
        check_choice("null_method", self.null_method, NULL_METHODS)
        budget = iteration_budget(self.n_iters, self.precision, self.max_iters)
        check_run_params(self.seed, chunk_iters=self.chunk_iters)
        self.space_ = Space.from_mask(self.mask)
        # A large set's blocks are folded into the null as they arrive from the workers.
        fold = NullFold(self.space_.n_voxels)
        self.ma_ = ModeledActivation(cset, self.space_, self.kernel_fwhm, self.sample_size,
                                     in_order=fold.add)
        summary = self.ma_.summary
        stat = summary.statistic()
        self.bins_ = histogram_bins(summary.maxima)
        self.null_weights_ = fold.weights(self.bins_)
        if self.null_weights_ is None:  # built in process (or the fold could not be cut)
            self.null_weights_ = approximate_null(summary.histograms, self.space_.n_voxels,
                                                  self.bins_)
        nulls = None
        self.n_iters_ = None
        if self.null_method == "montecarlo":
            from dmeta.montecarlo import voxelwise_null

            if isinstance(budget, StoppingRule):
                budget = PooledQuantileRule(budget.precision, budget.max_iters,
                                            q=1.0 - ADAPTIVE_P, bins=self.bins_)
            weights, nulls = voxelwise_null(self, budget, self.seed, self.chunk_iters)
            p = hist_to_p(stat, weights, self.bins_)
            self.n_iters_ = int(nulls.sizes["iteration"])
            self.adaptive_ = nulls.attrs.get("adaptive")
        else:
            p = hist_to_p(stat, self.null_weights_, self.bins_)
        maps = {"stat": stat, "p": p, "z": p_to_z(p), "logp": p_to_logp(p)}
        maps = {name: values.astype(np.float32) for name, values in maps.items()}
        tables = {"analyses": self.analysis_table(cset)}
        if not self.ma_.outside_mask.empty:
            tables[OUTSIDE_TABLE] = self.ma_.outside_mask
        result = MetaResult(
            maps,
            space=self.space_,
            tables=tables,
            description=self.describe(cset),
            nulls=nulls,
            attrs={"estimator": "ALE", "params": self.params_as_run(nulls),
                   "versions": versions(), **self._null_record(nulls)},
        )
        # A snapshot: refitting this estimator must not change what this result refers to.
        result.estimator = copy.copy(self)
        return result

    def params_as_run(self, nulls: xr.Dataset | None) -> dict:
        """Parameters as run: the Monte Carlo null's only if it ran, with the seed it drew.

        With the approximate null, ``n_iters``, ``seed`` and ``chunk_iters`` were not used;
        recording them would let a reader take them for a corrector's.
        """
        if nulls is None:
            return {name: value for name, value in self.provenance().items()
                    if name not in ("n_iters", "seed", "chunk_iters", "precision", "max_iters")}
        return self.provenance(seed=int(nulls.attrs["seed"]))

    @staticmethod
    def _null_record(nulls):
        """``{"voxelwise_null": ...}``: the iterations an adaptive Monte Carlo null used and
        the precision it reached (keys as a corrector's record); empty otherwise."""
        record = adaptive_record(nulls) if nulls is not None else {}
        if not record:
            return {}
        return {"voxelwise_null": {"n_iters": int(nulls.sizes["iteration"]), **record}}

    def analysis_table(self, cset: CoordinateSet) -> pd.DataFrame:
        """Per-analysis sample size, kernel FWHM and number of foci, for the analyses used."""
        table = cset.analyses.loc[self.ma_.ids, ["sample_size"]]
        table["kernel_fwhm"] = self.ma_.kernels.fwhms
        table["n_foci"] = self.ma_.foci.counts
        return table

    def describe(self, cset: CoordinateSet) -> str:
        """Methods text for the report."""
        if self.null_method == "montecarlo":
            n_iters = getattr(self, "n_iters_", None) or self.n_iters
            null = f"a Monte Carlo null of {n_iters} random-foci datasets." + describe(
                getattr(self, "adaptive_", None), n_iters, "random-foci datasets",
                f"the ALE at uncorrected p = {ADAPTIVE_P:g} (the median of its values over "
                f"batches of {STEP} datasets)")
        else:
            null = "the approximate null distribution (Eickhoff et al., 2012)."
        return (
            "An activation likelihood estimation (ALE) meta-analysis (Turkeltaub et al., 2002; "
            "Eickhoff et al., 2009, 2012) was performed with dmeta on "
            f"{int(self.ma_.foci.counts.sum())} foci from {len(self.ma_.ids)} experiments. "
            f"ALE values were converted to p-values with {null}"
        )

