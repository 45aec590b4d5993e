"""ALE subtraction: group 1 minus group 2, tested against relabellings of the pooled analyses."""

from __future__ import annotations

import copy
from typing import Literal

import numpy as np

from dmeta.ale import ALE
from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.results import MetaResult
from dmeta.space import MaskLike
from dmeta.stats import p_to_logp, p_to_z
from dmeta.subtraction.permutation import (
    DEFAULT_CHUNK_VOXELS,
    group_log_complement,
    log_complement_blocks,
    nimare_difference,
    permutation_tail_counts,
    pooled_csr,
    tail_thresholds,
)
from dmeta.validation import check_choice, check_run_params
from dmeta.versions import versions

DESC = "desc-group1MinusGroup2"
TIE_HANDLING = ("exact", "nimare")


@fill_doc
class ALESubtraction(DmetaBase):
    """ALE subtraction analysis (Laird et al., 2005; Eickhoff et al., 2012).

    Every in-mask voxel is tested two-sided: the observed ALE difference against its
    difference under ``n_iters`` random relabellings of the pooled analyses (group sizes
    kept), with NiMARE's p = 2 min(upper, lower) / n, clipped to [1/n, 1 - 1/n], where
    upper and lower count the relabellings whose difference is >= and <= the observed one.
    Map names follow NiMARE 0.22.1's ``ALESubtraction``.

    Where only one or two analyses reach a voxel, many relabellings give exactly the
    observed difference, so how such ties are counted decides the p-value there.
    NiMARE 0.22.1 compares its float64 permuted differences with the float32-rounded
    observed one: the ties all land in one tail, and p = 1/n at voxels no real difference
    could make significant (between random halves of one group, 12% of in-mask voxels get
    p < 0.001). ``tie_handling="exact"`` (the default) computes the observed difference with
    the very arithmetic of the relabellings, so the observed grouping reproduces it bit for
    bit and every tie counts in both tails: a valid, conservative permutation test (1.1% of
    voxels at p < 0.05 between random halves; see ``benchmarks/calibration.py``).
    ``tie_handling="nimare"`` reproduces NiMARE's p-values, for comparisons.

    Parameters
    ----------
    %(kernel_fwhm)s
    %(sample_size)s
    %(n_iters_permutation)s
    %(seed_permutation)s
    %(chunk_iters_permutation)s
    %(mask)s
    %(chunk_voxels)s
    tie_handling : {"exact", "nimare"}
        "exact" (default): ties with the observed difference count in both tails. "nimare": the
        float32 observed difference NiMARE 0.22.1 compares with, ties on one side.
        ``stat_desc-group1MinusGroup2`` is NiMARE's float32 difference either way.

    Attributes
    ----------
    ma1_, ma2_ : dmeta.modeled_activation.ModeledActivation
        Each group's modeled activation (used by diagnostics).
    space_ : dmeta.space.Space
    seed_ : int
        The root seed used.
    """

    def __init__(self, kernel_fwhm: float | None = None, sample_size: int | None = None,
                 n_iters: int = 5000, seed: int | None = None, chunk_iters: int | None = None,
                 mask: MaskLike = None, chunk_voxels: int | None = None,
                 tie_handling: Literal["exact", "nimare"] = "exact"):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask
        self.chunk_voxels = chunk_voxels
        self.tie_handling = tie_handling

    def fit(self, cset1: CoordinateSet, cset2: CoordinateSet) -> MetaResult:
        """Fit both groups and test their difference; returns a :class:`~dmeta.MetaResult`.

        Maps: ``stat_desc-group1MinusGroup2`` (ALE difference), ``p_``, signed ``z_`` and
        ``logp_`` of the two-sided test, and each group's ``stat``/``p``/``z``/``logp`` as
        ``*_desc-group1`` and ``*_desc-group2``.
        """
        _check_groups(cset1, cset2)
        check_run_params(self.seed, n_iters=self.n_iters, chunk_iters=self.chunk_iters,
                         chunk_voxels=self.chunk_voxels)
        check_choice("tie_handling", self.tie_handling, TIE_HANDLING)
        groups = [ALE(self.kernel_fwhm, self.sample_size, mask=self.mask).fit(c)
                  for c in (cset1, cset2)]
        self.ma1_, self.ma2_ = (g.estimator.ma_ for g in groups)
        self.space_ = groups[0].space

        pooled = pooled_csr(self.ma1_, self.ma2_)
        blocks = log_complement_blocks(pooled, self.chunk_voxels or DEFAULT_CHUNK_VOXELS)
        n1, n_total = len(self.ma1_.ids), pooled.shape[0]  # the analyses each fit kept
        columns = np.zeros((n_total, 2))
        columns[:n1, 0] = 1.0  # the observed grouping
        columns[:, 1] = 1.0  # every analysis
        observed_sum, total = group_log_complement(blocks, columns).T
        diff = (groups[0].get_map("stat", "array").astype(np.float32)
                - groups[1].get_map("stat", "array").astype(np.float32))
        # "exact": the relabellings' own arithmetic, so the observed grouping ties with itself.
        observed = (nimare_difference(observed_sum, total) if self.tie_handling == "exact"
                    else diff)
        upper_thresh, lower_thresh = tail_thresholds(total, observed)
        upper, lower, self.seed_ = permutation_tail_counts(
            blocks, n1, upper_thresh, lower_thresh, self.n_iters, self.seed, self.chunk_iters
        )
        p, sign = two_sided_p(upper, lower, self.n_iters)
        maps = {
            f"stat_{DESC}": diff,
            f"p_{DESC}": p,
            f"z_{DESC}": (p_to_z(p, tail="two") * sign).astype(np.float32),
            f"logp_{DESC}": p_to_logp(p).astype(np.float32),
        }
        for label, group in zip(("group1", "group2"), groups):
            for name in ("stat", "p", "z", "logp"):
                maps[f"{name}_desc-{label}"] = group.get_map(name, "array")
        result = MetaResult(
            maps,
            space=self.space_,
            tables=_group_tables(groups),
            description=self.describe(),
            attrs={"estimator": "ALESubtraction",
                   "params": self.provenance(seed=self.seed_), "versions": versions()},
        )
        # A snapshot: refitting this estimator must not change what this result refers to.
        result.estimator = copy.copy(self)
        return result

    def describe(self) -> str:
        """Methods text for the report."""
        counts = [int(ma.foci.counts.sum()) for ma in (self.ma1_, self.ma2_)]
        return (
            "An ALE subtraction analysis (Laird et al., 2005; Eickhoff et al., 2012) was "
            f"performed with dmeta, comparing {counts[0]} foci from {len(self.ma1_.ids)} "
            f"experiments (group 1) with {counts[1]} foci from {len(self.ma2_.ids)} experiments "
            "(group 2). At every voxel in the mask, the ALE difference was compared with its "
            f"distribution over {self.n_iters} random reassignments of the pooled experiments "
            "to groups of the original sizes, in a two-sided test. "
            + _TIE_SENTENCES[self.tie_handling]
        )


_TIE_SENTENCES = {
    "exact": ("Reassignments whose difference equalled the observed one were counted as ties "
              "in both tails, the observed difference being computed with the same arithmetic "
              "as the permuted ones (between random halves of one group, a true null, this "
              "gave 1.1% of voxels p < 0.05 and 0.01% p < 0.001; NiMARE 0.22.1's one-tailed "
              "ties gave 13.1% and 11.8%)."),
    "nimare": ("As in NiMARE 0.22.1, the float32-rounded observed difference was compared "
               "with float64 permuted differences, so reassignments tying with the observed "
               "grouping were counted in one tail only (between random halves of one group, "
               "a true null, this gave 13.1% of voxels p < 0.05 and 11.8% p < 0.001)."),
}


def _group_tables(groups):
    """Each group's analyses table (and foci outside the mask), suffixed ``_desc-group1/2``."""
    return {f"{name}_desc-{label}": table
            for label, group in zip(("group1", "group2"), groups)
            for name, table in group.tables.items()}


def two_sided_p(upper, lower, n_iters):
    """NiMARE's two-sided permutation p (float32) and the sign of the difference's z.

    p = 2 min(upper, lower) / n, clipped to [1/n, 1 - 1/n]; the sign is positive where more
    relabellings fall below the observed difference than above it.
    """
    smallest = 1.0 / n_iters
    p = 2.0 * np.minimum(upper, lower) / n_iters
    p = np.clip(p, smallest, 1.0 - smallest).astype(np.float32)
    sign = np.sign(np.asarray(lower, np.int64) - np.asarray(upper, np.int64))
    return p, sign.astype(np.float32)


def _check_groups(cset1, cset2):
    for label, cset in (("group 1", cset1), ("group 2", cset2)):
        if not isinstance(cset, CoordinateSet):
            raise InputError(f"ALESubtraction.fit expects two dmeta.CoordinateSet; {label} is "
                             f"a {type(cset).__name__}")
        if len(cset) == 0:
            raise InputError(f"{label} ({cset.source or 'coordinate set'}) has no analyses")
    shared = sorted(set(cset1.ids) & set(cset2.ids))
    if shared:
        listing = ", ".join(shared[:5]) + (", ..." if len(shared) > 5 else "")
        raise InputError(
            f"{len(shared)} analysis id(s) are in both groups ({cset1.source or 'group 1'} and "
            f"{cset2.source or 'group 2'}): {listing}; a subtraction needs disjoint groups"
        )
