"""The SCALE estimator: ALE tested against foci drawn from a base rate of activation."""

from __future__ import annotations

import copy
import os

import numpy as np

from dmeta.ale import ALE
from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.montecarlo import run_null
from dmeta.results import MetaResult
from dmeta.scale.base_rate import base_rate_ijk
from dmeta.scale.null import ScalePlan, digest
from dmeta.space import MaskLike, Space
from dmeta.stats import p_to_logp, p_to_z
from dmeta.validation import check_run_params
from dmeta.versions import versions

#: Name of the null in a store (group ``montecarlo/scale``).
STORE_NAME = "scale"


@fill_doc
class SCALE(DmetaBase):
    """Specific coactivation likelihood estimation (Langner et al., 2014).

    ALE's usual null scatters foci uniformly over the brain, so regions that many tasks
    activate (e.g. the anterior insula) come out of any meta-analysis. SCALE asks instead
    where a set of analyses converges more than foci drawn from a base rate of activation
    would: in each of ``n_iters`` null datasets every focus of every analysis moves to a
    coordinate drawn at random from ``xyz`` (with replacement; each analysis keeps its number
    of foci and its kernel), and ALE is recomputed. A voxel's p is the fraction of null
    datasets whose ALE there is at least the observed one, clipped to [1/n, 1 - 1/n], as in
    NiMARE 0.22.1, whose map names ``stat``, ``z`` and ``logp`` are kept (with ``p``).

    The null runs on dmeta's Monte Carlo engine: blocks of iterations are Dask tasks that
    return per-voxel counts, never an (iteration x voxel) array; iteration ``i`` draws from
    ``(seed, i)``, so the maps do not depend on ``chunk_iters`` or on the workers.

    Parameters
    ----------
    xyz : (n, 3) array_like of float
        Base-rate coordinates in mm, in the mask's space; a coordinate listed twice is drawn
        twice as often. :func:`dmeta.scale.scale_base_rate` builds them from a studyset.
    n_iters : int
        Null datasets of foci drawn from ``xyz``.
    %(seed)s
    %(chunk_iters)s
    %(kernel_fwhm)s
    %(sample_size)s
    %(mask)s
    %(store)s

    Attributes
    ----------
    ma_ : dmeta.modeled_activation.ModeledActivation
        The observed analyses' modeled activation.
    space_ : dmeta.space.Space
    """

    def __init__(self, xyz, n_iters: int = 5000, seed: int | None = None,
                 chunk_iters: int | None = None, kernel_fwhm: float | None = None,
                 sample_size: int | None = None, mask: MaskLike = None,
                 store: str | os.PathLike | None = None):
        self.xyz = xyz
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.mask = mask
        self.store = store

    def fit(self, cset: CoordinateSet) -> MetaResult:
        """Fit SCALE to a coordinate set and return a :class:`~dmeta.MetaResult`.

        Maps: ``stat`` (ALE, as :class:`~dmeta.ALE` gives it), ``p``, ``z`` and ``logp``.
        ``result.nulls["max_stat"]`` holds each null dataset's maximum ALE (the null of
        voxel-level FWE correction, as NiMARE's ``correct_fwe_montecarlo`` builds it).
        """
        if not isinstance(cset, CoordinateSet):
            raise InputError(
                f"SCALE.fit expects a dmeta.CoordinateSet, got {type(cset).__name__}; "
                "read one with dmeta.io.load(path)"
            )
        check_run_params(self.seed, n_iters=self.n_iters, chunk_iters=self.chunk_iters)
        self.space_ = Space.from_mask(self.mask)
        points = base_rate_ijk(self.xyz, self.space_)
        ale = ALE(self.kernel_fwhm, self.sample_size, mask=self.space_).fit(cset)
        self.ma_ = ale.estimator.ma_
        nulls, counts = run_null(ScalePlan(self.ma_, points), self.n_iters, self.seed,
                                 self.chunk_iters, self.store, name=STORE_NAME)
        p = exceedance_p(counts, self.n_iters)
        maps = {"stat": ale.get_map("stat", "array"), "p": p, "z": p_to_z(p),
                "logp": p_to_logp(p)}
        result = MetaResult(
            {name: values.astype(np.float32) for name, values in maps.items()},
            space=self.space_,
            tables=ale.tables,
            description=self.describe(len(points)),
            nulls=nulls[["max_stat"]],
            attrs={"estimator": "SCALE", "versions": versions(),
                   "params": self.provenance(xyz=_describe_xyz(points),
                                             seed=int(nulls.attrs["seed"]))},
        )
        # A snapshot: refitting this estimator must not change what this result refers to.
        result.estimator = copy.copy(self)
        return result

    def null_maxima(self, n_iters, seed, chunk_iters=None, store=None):
        """Each null dataset's maximum ALE over ``n_iters`` (voxel-level FWE), from the same
        plan as the fit: the fit's store resumes and extends it."""
        self.check_fitted("ma_", "space_")
        plan = ScalePlan(self.ma_, base_rate_ijk(self.xyz, self.space_))
        return run_null(plan, n_iters, seed, chunk_iters, store, name=STORE_NAME)[0][["max_stat"]]

    def describe(self, n_points: int) -> str:
        """Methods text for the report."""
        return (
            "A specific coactivation likelihood estimation (SCALE) meta-analysis (Langner et "
            f"al., 2014) was performed with dmeta on {int(self.ma_.foci.counts.sum())} foci "
            f"from {len(self.ma_.ids)} experiments. The ALE value of every voxel was compared "
            f"with its distribution over {self.n_iters} null datasets, in which each focus "
            f"was replaced by one of {n_points} base-rate coordinates drawn at random; the "
            "p-value is the fraction of null datasets with an ALE at least as large."
        )


def exceedance_p(counts, n_iters):
    """NiMARE's SCALE p (float32): exceedances over iterations, clipped to [1/n, 1 - 1/n]."""
    smallest = 1.0 / n_iters
    p = np.asarray(counts, dtype=np.float32) / n_iters
    return np.clip(p, smallest, 1.0 - smallest).astype(np.float32)


def _describe_xyz(points):
    """What provenance keeps of the base rate: its size and a digest of its voxels."""
    return f"{len(points)} base-rate coordinates (voxels sha256 {digest(points)[:16]})"
