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
from dmeta.results import MetaResult
from dmeta.space import MaskLike, Space
from dmeta.stats import p_to_logp, p_to_z
from dmeta.validation import check_choice, check_run_params
from dmeta.versions import versions

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

NULL_METHODS = ("approximate", "montecarlo")


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
        ``seed`` and ``chunk_iters`` are used by the latter only.
    %(n_iters)s
    %(seed)s
    %(chunk_iters)s
    %(mask)s
    """

    def __init__(
        self,
        kernel_fwhm: float | None = None,
        sample_size: int | None = None,
        null_method: Literal["approximate", "montecarlo"] = "approximate",
        n_iters: int = 5000,
        seed: int | None = None,
        chunk_iters: int | None = None,
        mask: MaskLike = None,
    ):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.null_method = null_method
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask

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
        check_run_params(self.seed, n_iters=self.n_iters, chunk_iters=self.chunk_iters)
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
        if self.null_method == "montecarlo":
            from dmeta.montecarlo import voxelwise_null

            weights, nulls = voxelwise_null(self, self.n_iters, self.seed, self.chunk_iters)
            p = hist_to_p(stat, weights, self.bins_)
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
                   "versions": versions()},
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
                    if name not in ("n_iters", "seed", "chunk_iters")}
        return self.provenance(seed=int(nulls.attrs["seed"]))

    def analysis_table(self, cset: CoordinateSet) -> pd.DataFrame:
        """Per-analysis sample size, kernel FWHM and number of foci, for the analyses used."""
        table = cset.analyses.loc[self.ma_.ids, ["sample_size"]]
        table["kernel_fwhm"] = self.ma_.kernels.fwhms
        table["n_foci"] = self.ma_.foci.counts
        return table

    def describe(self, cset: CoordinateSet) -> str:
        """Methods text for the report."""
        if self.null_method == "montecarlo":
            null = f"a Monte Carlo null of {self.n_iters} random-foci datasets"
        else:
            null = "the approximate null distribution (Eickhoff et al., 2012)"
        return (
            "An activation likelihood estimation (ALE) meta-analysis (Turkeltaub et al., 2002; "
            "Eickhoff et al., 2009, 2012) was performed with dmeta on "
            f"{int(self.ma_.foci.counts.sum())} foci from {len(self.ma_.ids)} experiments. "
            f"ALE values were converted to p-values with {null}."
        )
