"""ALE subtraction: group 1 minus group 2, tested against relabellings of the pooled analyses."""

from __future__ import annotations

import copy
import math
import os
from dataclasses import replace
from typing import Literal

import nibabel as nib
import numpy as np
import xarray as xr

from dmeta.ale import ALE
from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.montecarlo.adaptive import (
    MAX_ITERS,
    PRECISION,
    STEP,
    StoppingRule,
    describe,
    iteration_budget,
)
from dmeta.results import MetaResult
from dmeta.space import MaskLike
from dmeta.stats import p_to_logp, p_to_z
from dmeta.subtraction._kernel import observed_difference, tail_thresholds
from dmeta.subtraction.fwe import DESC, difference_nulls
from dmeta.subtraction.permutation import LogComplement, permutation_tail_counts, pooled_csr
from dmeta.validation import check_choice, check_p, check_run_params
from dmeta.versions import versions

TIE_HANDLING = ("exact", "nimare")


@fill_doc
class ALESubtraction(DmetaBase):
    """ALE subtraction analysis (Laird et al., 2005; Eickhoff et al., 2012).

    Every in-mask voxel is tested two-sided: the observed ALE difference against its
    difference under ``n_iters`` random relabellings of the pooled analyses (group sizes
    kept), with NiMARE's p = 2 min(upper, lower) / n, clipped to [1/n, 1 - 1/n], where
    upper and lower count the relabellings whose difference is >= and <= the observed one.
    Map names follow NiMARE 0.22.1's ``ALESubtraction``.

    Given directional inference maps (``fit(..., inference_map1=..., inference_map2=...)``,
    e.g. each group's thresholded main effect), the test is one-sided: group 1 > group 2
    only where ``inference_map1 > 0``, group 2 > group 1 only where ``inference_map2 > 0``;
    elsewhere p = 1 and z = 0.

    The fit also keeps the voxel-level FWE null (each relabelling's maximum absolute difference)
    in ``result.nulls``, and with ``vfwe_only=False`` the cluster size and mass nulls at
    ``voxel_thresh``: :class:`~dmeta.FWECorrector` uses them when its parameters match.

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
    voxel_thresh : float
        Cluster-forming threshold as an uncorrected p (the quantile 1 - ``voxel_thresh`` of
        absolute difference over relabellings and voxels), for the cluster nulls.
    vfwe_only : bool
        Keep only the voxel-level FWE null (default, as NiMARE); False also computes the
        cluster size and mass nulls during the fit.
    restrict_to_inference_mask : bool
        With inference maps, run the relabellings only on voxels where either is > 0
        (faster; the FWE nulls then come from those voxels only).
    %(store)s
    tie_handling : {"exact", "nimare"}
        "exact" (default): ties with the observed difference count in both tails. "nimare": the
        float32 observed difference NiMARE 0.22.1 compares with, ties on one side.
        ``stat_desc-group1MinusGroup2`` is NiMARE's float32 difference either way.
    %(precision_permutation)s
    %(max_iters)s

    Attributes
    ----------
    ma1_, ma2_ : dmeta.modeled_activation.ModeledActivation
        Each group's modeled activation (used by diagnostics).
    groups_ : tuple of dmeta.MetaResult
        Each group's ALE result (main effects, for FWE with ``target="main-effects"``).
    space_ : dmeta.space.Space
    seed_ : int
        The root seed used.
    n_iters_ : int
        The relabellings used (with ``n_iters="auto"``, where the run stopped).
    """

    def __init__(self, kernel_fwhm: float | None = None, sample_size: int | None = None,
                 n_iters: int | Literal["auto"] = 5000, seed: int | None = None,
                 chunk_iters: int | None = None,
                 mask: MaskLike = None, voxel_thresh: float = 0.001, vfwe_only: bool = True,
                 restrict_to_inference_mask: bool = False, store=None,
                 tie_handling: Literal["exact", "nimare"] = "exact",
                 precision: float = PRECISION, max_iters: int = MAX_ITERS):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.n_iters = n_iters
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask
        self.voxel_thresh = voxel_thresh
        self.vfwe_only = vfwe_only
        self.restrict_to_inference_mask = restrict_to_inference_mask
        self.store = store
        self.tie_handling = tie_handling
        self.precision = precision
        self.max_iters = max_iters

    def fit(self, cset1: CoordinateSet, cset2: CoordinateSet, inference_map1=None,
            inference_map2=None) -> MetaResult:
        """Fit both groups and test their difference; returns a :class:`~dmeta.MetaResult`.

        Maps: ``stat_desc-group1MinusGroup2`` (ALE difference), ``p_``, signed ``z_`` and
        ``logp_`` of the test, and each group's ``stat``/``p``/``z``/``logp`` as
        ``*_desc-group1`` and ``*_desc-group2``.

        Parameters
        ----------
        cset1, cset2 : CoordinateSet
        inference_map1, inference_map2 : array or image, optional
            Directional inference maps: an in-mask vector or a 3-D image on the mask's
            grid; group 1 > group 2 is tested where the first is > 0, group 2 > group 1
            where the second is.
        """
        check_groups(cset1, cset2, "ALESubtraction")
        budget = iteration_budget(self.n_iters, self.precision, self.max_iters)
        check_run_params(self.seed, chunk_iters=self.chunk_iters)
        check_choice("tie_handling", self.tie_handling, TIE_HANDLING)
        check_p("voxel_thresh", self.voxel_thresh)
        if isinstance(budget, StoppingRule):
            budget.check_block(self.chunk_iters or STEP, "the run")
            budget = replace(budget, min_iters=min_resolving_iters(self.voxel_thresh))
        groups = [ALE(self.kernel_fwhm, self.sample_size, mask=self.mask).fit(c)
                  for c in (cset1, cset2)]
        self.groups_ = tuple(groups)
        self.ma1_, self.ma2_ = (g.estimator.ma_ for g in groups)
        self.space_ = groups[0].space
        gates = [inference_mask(m, self.space_, f"inference_map{n}")
                 for n, m in ((1, inference_map1), (2, inference_map2))]
        tested = _tested_voxels(gates, self.restrict_to_inference_mask)

        lc = LogComplement(pooled_csr(self.ma1_, self.ma2_), tested)
        n1 = len(self.ma1_.ids)  # the analyses the fit kept
        observed_sum = lc.sums((np.arange(lc.n_analyses) < n1)[:, None].astype(float))[:, 0]
        diff = (groups[0].get_map("stat", "array").astype(np.float32)
                - groups[1].get_map("stat", "array").astype(np.float32))
        # "exact": the relabellings' own arithmetic, so the observed grouping ties with itself.
        observed = (observed_difference(observed_sum, lc.total)
                    if self.tie_handling == "exact" else diff[lc.voxels].astype(np.float64))
        upper_thresh, lower_thresh = tail_thresholds(lc.total, observed)
        upper, lower, max_abs, self.seed_ = permutation_tail_counts(
            lc, n1, upper_thresh, lower_thresh, budget, self.seed, self.chunk_iters
        )
        self.n_iters_ = int(max_abs.size)
        nulls = voxel_null(max_abs, self.seed_, budget)
        self.adaptive_ = nulls.attrs.get("adaptive")
        if not self.vfwe_only:
            nulls, thresh = difference_nulls(
                lc, n1, self.space_.flat_index[lc.voxels], self.space_.shape, budget,
                self.voxel_thresh, False, self.seed_, self.chunk_iters, self.store)
            nulls.attrs.update(cluster_forming_stat=thresh, voxel_thresh=self.voxel_thresh)
        maps = {f"stat_{DESC}": diff}
        maps.update(_test_maps(upper, lower, diff, gates, lc.voxels, self.n_iters_,
                               self.space_.n_voxels))
        for label, group in zip(("group1", "group2"), groups):
            for name in ("stat", "p", "z", "logp"):
                maps[f"{name}_desc-{label}"] = group.get_map(name, "array")
        result = MetaResult(
            maps,
            space=self.space_,
            tables=_group_tables(groups),
            description=self.describe() + _gate_sentence(gates, self.restrict_to_inference_mask),
            nulls=nulls.assign_attrs(vfwe_only=self.vfwe_only),
            attrs={"estimator": "ALESubtraction",
                   "params": self.provenance(seed=self.seed_), "versions": versions(),
                   **({"permutations": self.permutation_record()} if self.adaptive_ else {})},
        )
        self.tested_ = lc.voxels
        # A snapshot: refitting this estimator must not change what this result refers to.
        result.estimator = copy.copy(self)
        return result

    def log_complement(self) -> LogComplement:
        """The pooled log(1 - MA) on the voxels the fit tested (for its FWE nulls)."""
        self.check_fitted("ma1_", "ma2_", "tested_")
        every = self.tested_.size == self.space_.n_voxels
        return LogComplement(pooled_csr(self.ma1_, self.ma2_), None if every else self.tested_)

    def describe(self) -> str:
        """Methods text for the report."""
        counts = [int(ma.foci.counts.sum()) for ma in (self.ma1_, self.ma2_)]
        return (
            "An ALE subtraction analysis (Laird et al., 2005; Eickhoff et al., 2012) was "
            f"performed with dmeta, comparing {counts[0]} foci from {len(self.ma1_.ids)} "
            f"experiments (group 1) with {counts[1]} foci from {len(self.ma2_.ids)} experiments "
            "(group 2). At every voxel in the mask, the ALE difference was compared with its "
            f"distribution over {self.n_iters_} random reassignments of the pooled experiments "
            "to groups of the original sizes, in a two-sided test. "
            + _TIE_SENTENCES[self.tie_handling] + describe(
                self.adaptive_, self.n_iters_, "reassignments",
                "the voxel-level FWE critical value (the 95th percentile of the maximum "
                "absolute difference)")
        )

    def permutation_record(self) -> dict:
        """What an adaptive fit ran: the relabellings used and the precision reached
        (``result.attrs["permutations"]``; keys as a corrector's record)."""
        self.check_fitted("n_iters_", "adaptive_")
        info = self.adaptive_ or {}
        record = {"n_iters": self.n_iters_}
        if info:
            record.update(n_iters_requested="auto", precision=info["precision"],
                          max_iters=info["max_iters"],
                          achieved_precision=float(max(info["achieved"].values())),
                          converged=bool(info["converged"]))
        return record


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


def _gate_sentence(gates, restricted):
    """Methods text for directional inference maps (empty without them)."""
    if gates[0] is None and gates[1] is None:
        return ""
    sides = [f"group {n} > group {3 - n} only where inference map {n} was positive"
             for n, gate in ((1, gates[0]), (2, gates[1])) if gate is not None]
    return (" With directional inference maps, the test was one-sided: "
            + " and ".join(sides) + "; elsewhere p = 1."
            + (" Reassignments were evaluated on those voxels only." if restricted else ""))


def _group_tables(groups):
    """Each group's analyses table (and foci outside the mask), suffixed ``_desc-group1/2``."""
    return {f"{name}_desc-{label}": table
            for label, group in zip(("group1", "group2"), groups)
            for name, table in group.tables.items()}


def min_resolving_iters(voxel_thresh):
    """Fewest relabellings of an adaptive fit: the smallest p-value, 1 / n, must be half of
    ``voxel_thresh`` or less, so that a voxel can pass the usual uncorrected threshold (2,000
    relabellings at 0.001)."""
    return math.ceil(2.0 / voxel_thresh)


def voxel_null(max_abs, seed, rule=None):
    """The voxel-level FWE null of a fit: each relabelling's maximum absolute difference.

    With the :class:`~dmeta.montecarlo.adaptive.StoppingRule` that stopped the fit, the null's
    ``attrs["adaptive"]`` records it and the precision reached, as the Monte Carlo engine's.
    """
    zeros = np.zeros_like(max_abs)
    attrs = {"seed": int(seed), "n_iters": int(max_abs.size)}
    if isinstance(rule, StoppingRule):
        attrs["adaptive"] = rule.info({"max_stat": max_abs}, max_abs.size)
    return xr.Dataset(
        {"max_stat": ("iteration", max_abs), "max_cluster_size": ("iteration", zeros),
         "max_cluster_mass": ("iteration", zeros)},
        coords={"iteration": np.arange(max_abs.size)},
        attrs=attrs,
    )


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


def directional_p(upper, lower, diff, gates, n_iters):
    """One-sided p where a gate allows the observed direction; p = 1 and sign 0 elsewhere.

    Group 1 > group 2 (p = upper / n, at least 1/n) where ``gates[0]`` is set and the
    difference is positive; group 2 > group 1 (lower / n) where ``gates[1]`` is and it is
    negative.
    """
    p = np.ones(diff.shape, dtype=np.float32)
    sign = np.zeros(diff.shape, dtype=np.float32)
    for gate, counts, side, value in ((gates[0], upper, diff > 0, 1.0),
                                      (gates[1], lower, diff < 0, -1.0)):
        if gate is not None:
            pick = gate & side
            p[pick] = np.maximum(1.0 / n_iters, counts[pick] / n_iters)
            sign[pick] = value
    return p, sign


def _test_maps(upper, lower, diff, gates, tested, n_iters, n_voxels):
    """p, signed z and logp of the difference on the tested voxels (p = 1, z = 0 elsewhere)."""
    diff = diff[tested]
    if gates[0] is None and gates[1] is None:
        p, sign = two_sided_p(upper, lower, n_iters)
        tail = "two"
    else:
        p, sign = directional_p(upper, lower, diff,
                                [None if g is None else g[tested] for g in gates], n_iters)
        tail = "one"
    full = {"p": np.ones(n_voxels, np.float32), "z": np.zeros(n_voxels, np.float32),
            "logp": np.zeros(n_voxels, np.float32)}
    full["p"][tested] = p
    full["z"][tested] = p_to_z(p, tail=tail) * sign
    full["logp"][tested] = p_to_logp(p)
    return {f"{name}_{DESC}": values for name, values in full.items()}


def inference_mask(values, space, name):
    """Where a directional inference map is > 0 (None stays None), checked against ``space``.

    Accepts an in-mask vector or a 3-D image (path or nibabel) on the mask's grid.
    """
    if values is None:
        return None
    if isinstance(values, (str, os.PathLike, nib.spatialimages.SpatialImage)):
        try:
            values = space.from_image(values)
        except InputError as err:
            raise InputError(f"{name}: {err}") from None
    values = np.asarray(values)
    if values.shape != (space.n_voxels,):
        raise InputError(f"{name} must be a vector of the mask's {space.n_voxels} in-mask "
                         f"voxels or an image on its grid; got shape {values.shape}")
    return np.nan_to_num(values.astype(np.float64)) > 0


def _tested_voxels(gates, restrict):
    """The voxels the relabellings run on: every one, or the gates' union."""
    if gates[0] is None and gates[1] is None:
        return None
    union = np.logical_or.reduce([g for g in gates if g is not None])
    if not union.any():
        raise InputError("inference_map1 and inference_map2 have no voxel > 0: the gated "
                         "contrast would test nothing (no main effect survived?)")
    return np.flatnonzero(union) if restrict else None


def check_groups(cset1, cset2, estimator):
    """InputError unless the two groups are non-empty, disjoint coordinate sets."""
    for label, cset in (("group 1", cset1), ("group 2", cset2)):
        if not isinstance(cset, CoordinateSet):
            raise InputError(f"{estimator}.fit expects two dmeta.CoordinateSet; {label} is "
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
