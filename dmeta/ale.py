"""The ALE estimator: modeled activation -> ALE statistic -> p, z, -log10 p."""

import copy

import numpy as np

from dmeta.approximate_null import approximate_null, hist_to_p, histogram_bins
from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.errors import InputError
from dmeta.modeled_activation import OUTSIDE_TABLE, ModeledActivation
from dmeta.results import MetaResult
from dmeta.space import Space
from dmeta.stats import p_to_logp, p_to_z
from dmeta.validation import check_choice
from dmeta.versions import versions

NULL_METHODS = ("approximate", "montecarlo")


class ALE(DmetaBase):
    """Activation likelihood estimation (Turkeltaub et al., 2002; Eickhoff et al., 2009, 2012).

    Parameters
    ----------
    kernel_fwhm : float, optional
        One kernel FWHM (mm) for every analysis, instead of one from each sample size.
    sample_size : int, optional
        One sample size for every analysis's kernel, instead of each analysis's own.
    null_method : {"approximate", "montecarlo"}
        How ALE values become p-values: the analytic histogram null, or the empirical null
        of ``n_iters`` random-foci datasets (run on the Monte Carlo engine).
    n_iters : int
        Iterations of the Monte Carlo null (``null_method="montecarlo"`` only).
    seed : int, optional
        Root seed of the Monte Carlo null.
    chunk_iters : int, optional
        Iterations per task of the Monte Carlo null; results do not depend on it.
    mask : str, Path or nibabel image, optional
        Analysis mask; the bundled MNI152 2 mm brain mask by default.
    """

    def __init__(
        self,
        kernel_fwhm=None,
        sample_size=None,
        null_method="approximate",
        n_iters=5000,
        seed=None,
        chunk_iters=None,
        mask=None,
    ):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.null_method = null_method
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask

    def fit(self, cset):
        """Fit ALE to a coordinate set and return a :class:`~dmeta.MetaResult`.

        Maps: ``stat`` (ALE), ``p``, ``z`` and ``logp`` (-log10 p).
        """
        if not isinstance(cset, CoordinateSet):
            raise InputError(
                f"ALE.fit expects a dmeta.CoordinateSet, got {type(cset).__name__}; "
                "read one with dmeta.io.load(path)"
            )
        check_choice("null_method", self.null_method, NULL_METHODS)
        self.space_ = Space.from_mask(self.mask)
        self.ma_ = ModeledActivation(cset, self.space_, self.kernel_fwhm, self.sample_size)
        matrix = self.ma_.matrix
        stat = ale_statistic(matrix)
        self.bins_ = histogram_bins(_row_max(matrix))
        self.null_weights_ = approximate_null(matrix, self.space_.n_voxels, self.bins_)
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

    def params_as_run(self, nulls):
        """Parameters as run: the Monte Carlo null's only if it ran, with the seed it drew.

        With the approximate null, ``n_iters``, ``seed`` and ``chunk_iters`` were not used;
        recording them would let a reader take them for a corrector's.
        """
        if nulls is None:
            return {name: value for name, value in self.provenance().items()
                    if name not in ("n_iters", "seed", "chunk_iters")}
        return self.provenance(seed=int(nulls.attrs["seed"]))

    def analysis_table(self, cset):
        """Per-analysis sample size, kernel FWHM and number of foci, for the analyses used."""
        table = cset.analyses.loc[self.ma_.ids, ["sample_size"]]
        table["kernel_fwhm"] = self.ma_.kernels.fwhms
        table["n_foci"] = self.ma_.foci.counts
        return table

    def describe(self, cset):
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


def ale_statistic(ma_matrix):
    """ALE = 1 - prod over analyses of (1 - MA), summed in log space.

    Maps are float32, as NiMARE's are; p-values are looked up from the float32 statistic so
    that values on a histogram bin edge fall into the same bin as in NiMARE.
    """
    log_complement = np.bincount(
        ma_matrix.indices, weights=np.log1p(-ma_matrix.data), minlength=ma_matrix.shape[1]
    )
    return (1.0 - np.exp(log_complement)).astype(np.float32)


def _row_max(matrix):
    return matrix.max(axis=1).toarray().ravel()
