"""Balanced ALE subtraction (JALE's matched-size contrast, NiMARE 0.22.1's
``BalancedALESubtraction``): groups of unequal size compared through subsamples of equal size.

Three kinds of work, all independent, run as blocks of one Dask graph:

* per group, a random-foci null of the largest cluster (``cluster1``/``cluster2``) and the
  thresholded ALE of each scheduled subsample (``support1``/``support2``); a subsample's
  block returns its supra-threshold voxels with their cluster sizes, so the cluster-size
  cut, known only once the null is, is applied after the graph and the two need no order;
* the observed balanced difference (``observed``), by runs of voxels;
* the null of the balanced difference's extremes (``null``).

Every random draw comes from a generator seeded with ``(seed, stream, index)``, so results
do not depend on block sizes or workers. Finished blocks go to a Zarr group as they arrive
(:class:`BalancedStore`), from which an interrupted run resumes and a longer one extends.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
from typing import Literal

import numpy as np
from scipy import sparse

from dmeta._ma_kernel import count_rows, kernel_levels, ma_pass, output, row_spans, summary_arrays
from dmeta.approximate_null import NullFold, approximate_null, histogram_bins, shift_segments
from dmeta.base import DmetaBase
from dmeta.compute import run_blocks
from dmeta.coordinates import CoordinateSet
from dmeta.diagnostics.null import COVERAGES, passes, sample_space, z_cut
from dmeta.diagnostics.resampling import subset_schedule
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.fingerprinted_group import open_fingerprinted_group
from dmeta.kernels import KernelBank
from dmeta.ma_blocks import block_summary
from dmeta.ma_summary import value_tables
from dmeta.messages import warn
from dmeta.modeled_activation import OUTSIDE_TABLE, ModeledActivation
from dmeta.montecarlo.engine import default_chunk_iters
from dmeta.results import MetaResult
from dmeta.seeds import check_seed
from dmeta.space import MaskLike, Space
from dmeta.stats import p_to_logp, p_to_z
from dmeta.subtraction._balanced_kernel import cluster_sizes, mean_differences, row_sums
from dmeta.subtraction.estimator import check_groups
from dmeta.validation import check_choice, check_int_range, check_run_params
from dmeta.versions import versions

DESC = "desc-balancedGroup1MinusGroup2"
NULL_METHODS = ("random-foci", "label-permutation")
MIN_NULL = "values_desc-balancedMinNull_corr-none"
MAX_NULL = "values_desc-balancedMaxNull_corr-none"

#: Random streams: a draw for item ``i`` of a stream comes from ``(seed, stream, i)``.
CLUSTER_STREAMS = (1, 2)
SCHEDULE_STREAM = 3
OBSERVED_STREAM = 4
NULL_STREAM = 5

#: Voxels per block of the observed difference: a few blocks, so it spreads over workers.
OBSERVED_VOXELS = 32768


@fill_doc
class BalancedALESubtraction(DmetaBase):
    """ALE subtraction with matched-size subsampling (Frahm et al., JALE; NiMARE 0.22.1).

    A plain subtraction favours the larger group, whose ALE is higher wherever both groups
    converge. Here every comparison is between ``target_n`` analyses of each group: the
    balanced difference is the mean of ALE1 - ALE2 over ``difference_iterations`` random
    pairs of subsamples, computed on the voxels of ``mask_coverage``, and tested against
    the null distribution of its smallest and largest values over those voxels (``n_iters``
    datasets), which controls the family-wise error over voxels. Each group also gets a
    probability map: the fraction of ``n_subsamples`` subsamples in which the voxel lies in
    a significant cluster (clusters formed at ``voxel_thresh``, kept if larger than the
    (1 - ``alpha``) quantile of the largest cluster in ``n_iters`` random-foci datasets of
    ``target_n`` analyses); their minimum is a conjunction map. Maps, nulls and every
    formula follow NiMARE 0.22.1's ``BalancedALESubtraction``; the random draws differ.

    Parameters
    ----------
    %(kernel_fwhm)s
    %(sample_size)s
    target_n : int, optional
        Analyses per subsample, from 1 to the smaller group's size (the default).
    n_subsamples : int
        Subsamples per group for the probability maps; all of them when there are no
        more than that (and the n leave-one-out subsets when ``target_n`` is n - 1).
    difference_iterations : int
        Pairs of subsamples averaged into a balanced difference, observed or null.
    n_iters : int
        Null datasets, both of the balanced difference's extremes and of the largest
        cluster (``"auto"`` is not supported here).
    voxel_thresh : float
        Cluster-forming uncorrected p of the probability maps (approximate null).
    null_method : {"random-foci", "label-permutation"}
        Null datasets of the balanced difference: every analysis's foci at random voxels of
        ``mask_coverage``, or the pooled analyses randomly reassigned to groups of the
        original sizes. Subsampling breaks the exchangeability a relabelling test assumes,
        so the random-foci null is the coherent one; relabelling keeps the real maps.
    mask_coverage : {"gm", "brain"}
        Voxels of the balanced difference and of random foci: the mask's voxels of
        grey-matter probability above 0.1 (nilearn's MNI152 template), or the whole mask.
    alpha : float
        Family-wise error rate of the cluster-size cut and of the extremes' thresholds.
    random_state : int, optional
        NiMARE's name for ``seed``; give one or the other.
    seed : int, optional
        Root seed: null dataset ``i`` (its foci or relabelling and its pairs of subsamples),
        the observed pairs and each group's subsamples draw from generators seeded with
        ``(seed, stream, i)``. None draws a seed (or takes the one in ``store``), which the
        result records.
    chunk_iters : int, optional
        Null datasets or subsamples per Dask task; results do not depend on it.
    %(mask)s
    store : str or os.PathLike, optional
        Zarr store keeping every finished block, so that an interrupted fit resumes and one
        with more ``n_iters`` extends it. It keeps its seed and block sizes, and refuses
        other inputs or parameters.

    Attributes
    ----------
    ma1_, ma2_ : dmeta.modeled_activation.ModeledActivation
    space_ : dmeta.space.Space
    target_n_ : int
        The subsample size used.
    cluster_thresholds_ : tuple of float
        Each group's cluster-size cut (voxels).
    seed_ : int
        The root seed used.
    """

    def __init__(self, kernel_fwhm: float | None = None, sample_size: int | None = None,
                 target_n: int | None = None, n_subsamples: int = 2500,
                 difference_iterations: int = 1000, n_iters: int = 1000,
                 voxel_thresh: float = 0.001,
                 null_method: Literal["random-foci", "label-permutation"] = "random-foci",
                 mask_coverage: Literal["gm", "brain"] = "gm", alpha: float = 0.05,
                 random_state: int | None = None, seed: int | None = None,
                 chunk_iters: int | None = None, mask: MaskLike = None,
                 store: str | os.PathLike | None = None):
        self.kernel_fwhm = kernel_fwhm
        self.sample_size = sample_size
        self.target_n = target_n
        self.n_subsamples = n_subsamples
        self.difference_iterations = difference_iterations
        self.n_iters = n_iters
        self.voxel_thresh = voxel_thresh
        self.null_method = null_method
        self.mask_coverage = mask_coverage
        self.alpha = alpha
        self.random_state = random_state
        self.seed = seed
        self.chunk_iters = chunk_iters
        self.mask = mask
        self.store = store

    def _root_seed(self):
        """``seed`` or ``random_state`` (checked), refusing two different ones."""
        given = {name: check_seed(value, name) for name, value in
                 (("seed", self.seed), ("random_state", self.random_state)) if value is not None}
        if len(set(given.values())) > 1:
            raise InputError(f"seed={self.seed} and random_state={self.random_state} differ; "
                             "give one of them (random_state is NiMARE's name for seed)")
        return next(iter(given.values()), None)

    def _check_params(self):
        if isinstance(self.n_iters, str) and self.n_iters == "auto":
            raise InputError(
                "BalancedALESubtraction does not support n_iters='auto': its null datasets "
                "feed several thresholds (extreme balanced differences and each group's "
                "cluster cut) with no single stopping rule; give a number of iterations "
                "(default 1000)")
        check_run_params(None, n_iters=self.n_iters, chunk_iters=self.chunk_iters,
                         n_subsamples=self.n_subsamples,
                         difference_iterations=self.difference_iterations)
        check_choice("null_method", self.null_method, NULL_METHODS)
        check_choice("mask_coverage", self.mask_coverage, COVERAGES)
        z_cut(self.voxel_thresh)
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        return self._root_seed()

    def _resolve_target_n(self, group1, group2):
        """``target_n``, or the smaller group's size, checked against that size."""
        smaller = min(len(group1.ids), len(group2.ids))
        target_n = smaller if self.target_n is None else self.target_n
        check_int_range("target_n", target_n, 1, smaller,
                        " (the smaller group's number of analyses)")
        return target_n

    def fit(self, cset1: CoordinateSet, cset2: CoordinateSet) -> MetaResult:
        """Compare group 1 with group 2; returns a :class:`~dmeta.MetaResult`.

        Maps (float32): ``stat_desc-balancedGroup1MinusGroup2`` (mean balanced difference,
        0 outside ``mask_coverage``), its ``p_``, signed ``z_`` and ``logp_`` (p = 1, z = 0
        where the difference is within the null extremes' thresholds), ``prob_desc-group1``,
        ``prob_desc-group2`` and ``stat_desc-conjunction`` (their minimum). Nulls:
        ``values_desc-balancedMinNull_corr-none`` and ``...MaxNull...`` over ``iteration``.
        Tables: each group's ``analyses`` (and ``outside_mask``), suffixed ``_desc-group1/2``.
        """
        check_groups(cset1, cset2, "BalancedALESubtraction")
        seed = self._check_params()
        self._resolve_target_n(cset1, cset2)  # before the MA maps: fail fast
        self.space_ = Space.from_mask(self.mask)
        self.ma1_, self.ma2_ = (ModeledActivation(c, self.space_, self.kernel_fwhm,
                                                  self.sample_size) for c in (cset1, cset2))
        self.target_n_ = self._resolve_target_n(self.ma1_, self.ma2_)  # analyses kept
        plan = BalancedPlan(self.ma1_, self.ma2_, self.target_n_, self.n_subsamples,
                            self.difference_iterations, self.voxel_thresh, self.null_method,
                            self.mask_coverage, fixed_kernel=self.kernel_fwhm is not None)
        store = BalancedStore.open(self.store, self.null_method, plan.fingerprint(), seed,
                                   plan.block_sizes(self.n_iters, self.chunk_iters),
                                   self.chunk_iters)
        self.seed_ = store.seed
        plan.schedule(self.seed_)
        run_balanced(plan, store, self.n_iters)
        maps, nulls = self._maps(plan, store)
        result = MetaResult(
            maps, space=self.space_, tables=_group_tables((cset1, cset2), (self.ma1_, self.ma2_)),
            description=self.describe(plan), nulls=nulls,
            attrs={"estimator": "BalancedALESubtraction",
                   "params": self.provenance(seed=self.seed_, target_n=self.target_n_),
                   "versions": versions()},
        )
        # A snapshot: refitting this estimator must not change what this result refers to.
        result.estimator = copy.copy(self)
        return result

    def _maps(self, plan, store):
        """NiMARE's maps from the finished blocks, and the extremes' nulls."""
        n = self.n_iters
        self.cluster_thresholds_ = tuple(
            float(np.percentile(store.read(f"cluster{g + 1}", n)[:, 0], 100.0 * (1 - self.alpha)))
            for g in (0, 1)
        )
        probs = [plan.probability(g, store.blocks(f"support{g + 1}", plan.n_samples(g)),
                                  self.cluster_thresholds_[g]) for g in (0, 1)]
        observed = np.zeros(plan.n_voxels, np.float32)
        observed[plan.prior_columns] = store.read("observed", plan.n_prior)[:, 0]
        extremes = store.read("null", n).astype(np.float32)
        p, z = fwe_extremes_p(observed, extremes[:, 0], extremes[:, 1], self.alpha)
        maps = {
            f"stat_{DESC}": observed,
            f"p_{DESC}": p,
            f"z_{DESC}": z,
            f"logp_{DESC}": p_to_logp(p).astype(np.float32),
            "stat_desc-conjunction": np.minimum(*probs),
            "prob_desc-group1": probs[0],
            "prob_desc-group2": probs[1],
        }
        nulls = {MIN_NULL: extremes[:, 0], MAX_NULL: extremes[:, 1]}
        return maps, nulls

    def describe(self, plan) -> str:
        """Methods text for the report."""
        sizes = [len(ma.ids) for ma in (self.ma1_, self.ma2_)]
        coverage = {"gm": "the grey-matter voxels of the mask",
                    "brain": "all voxels of the mask"}[self.mask_coverage]
        null = {"random-foci": "random-foci datasets (every experiment's foci placed at random "
                               f"among {coverage})",
                "label-permutation": "random reassignments of the pooled experiments to "
                                     "groups of the original sizes"}[self.null_method]
        return (
            "A balanced ALE subtraction (Frahm et al.; as in NiMARE 0.22.1) was performed "
            f"with dmeta, comparing {sizes[0]} experiments (group 1) with {sizes[1]} "
            f"(group 2) through subsamples of {self.target_n_} experiments each. The balanced "
            f"difference, the mean of ALE1 - ALE2 over {self.difference_iterations} random "
            f"pairs of subsamples on {coverage}, was compared with the "
            f"smallest and largest balanced differences of {self.n_iters} null {null}, with "
            f"thresholds at their {100 * self.alpha / 2:g}% and {100 - 100 * self.alpha / 2:g}% "
            "quantiles. The probability maps of groups 1 and 2 are the fractions of their "
            f"{plan.n_samples(0)} and {plan.n_samples(1)} subsamples in which a voxel lay in "
            f"a cluster (uncorrected p < {self.voxel_thresh:g}) larger than the "
            f"{100 - 100 * self.alpha:g}th percentile of the largest cluster in "
            f"{self.n_iters} random-foci datasets of {self.target_n_} experiments "
            f"({self.cluster_thresholds_[0]:g} and {self.cluster_thresholds_[1]:g} voxels)."
        )


def fwe_extremes_p(observed, min_null, max_null, alpha):
    """NiMARE's p and signed z of balanced differences against the null of their extremes.

    Only differences beyond the (alpha / 2) quantile of the null minima, or the
    (1 - alpha / 2) quantile of the maxima, are tested: p is the fraction of null extremes
    at least as far out (at least 1 / n), one-tailed; elsewhere p = 1 and z = 0.

    Parameters
    ----------
    observed : (n_voxels,) float32
    min_null, max_null : (n_iters,) float32

    Returns
    -------
    p, z : (n_voxels,) float32
    """
    n = min_null.size
    low = np.percentile(min_null, 100.0 * alpha / 2)
    high = np.percentile(max_null, 100.0 * (1.0 - alpha / 2))
    p = np.ones(observed.shape, np.float32)
    z = np.zeros(observed.shape, np.float32)
    above = observed > high
    beyond = n - np.searchsorted(np.sort(max_null), observed[above], side="left")
    p_above = np.maximum(1.0 / n, beyond / n).astype(np.float32)
    p[above], z[above] = p_above, p_to_z(p_above, tail="one")
    below = observed < low
    beyond = np.searchsorted(np.sort(min_null), observed[below], side="right")
    p_below = np.maximum(1.0 / n, beyond / n).astype(np.float32)
    p[below], z[below] = np.minimum(p[below], p_below), -p_to_z(p_below, tail="one")
    return p, z


def _lookup(flat, shape):
    """Column of each flat voxel index of a volume: position in ``flat``, -1 elsewhere."""
    out = np.full(int(np.prod(shape)), -1, dtype=np.int32)
    out[flat] = np.arange(flat.size, dtype=np.int32)
    return out


def _subsamples(rng, pool, size, draws):
    """(draws, size) members of ``pool``: each row a uniform random ``size``-subset."""
    return pool[np.argsort(rng.random((draws, pool.size)), axis=1)[:, :size]]


@functools.lru_cache(maxsize=4)
def _fold_segments(kmax):
    """The approximate null's shift segments on the grid up to ALE = 1, MA bins up to ``kmax``.

    They depend on nothing else, so each worker builds them once (from a tenth of a second
    to seconds of numba, growing as kmax squared) for every null dataset and subsample of
    every fit, whose own grids differ only in length (see :class:`NullFold`).
    """
    fold = NullFold(1)
    return shift_segments(fold.bins, fold.inv_step, kmax)


def _digest(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


class GroupRows:
    """One group's log(1 - MA) rows and MA histograms: what a subsample's ALE is made of."""

    def __init__(self, ma):
        matrix = ma.matrix
        self.indptr, self.indices = matrix.indptr, matrix.indices
        # float32 log1p, summed in float64 as ALE sums them (and NiMARE's bincount).
        self.logs = np.log1p(-matrix.data)
        self.histograms = ma.summary.histograms
        self.maxima = ma.summary.maxima


class BalancedPlan:
    """Constants of a balanced subtraction, built once and sent to every worker once.

    Parameters
    ----------
    ma1, ma2 : dmeta.modeled_activation.ModeledActivation
        The groups, in one space.
    target_n, n_subsamples, difference_iterations, voxel_thresh, null_method, mask_coverage
        As :class:`BalancedALESubtraction` has them (``target_n`` resolved).
    fixed_kernel : bool
        Whether the kernels' width was given rather than derived from sample sizes.

    Attributes
    ----------
    prior_columns : (n_prior,) int64
        In-mask columns of the ``mask_coverage`` voxels, where balanced differences are
        computed and random foci drawn.
    """

    def __init__(self, ma1, ma2, target_n, n_subsamples, difference_iterations, voxel_thresh,
                 null_method, mask_coverage, fixed_kernel=False):
        space = ma1.space
        self.shape = np.array(space.shape, dtype=np.int64)
        self.flat_index = space.flat_index
        self.n_voxels = space.n_voxels
        self.sample_ijk = sample_space(space, mask_coverage)
        prior_flat = np.ravel_multi_index(tuple(self.sample_ijk.T), space.shape)
        self.prior_columns = np.searchsorted(space.flat_index, prior_flat)
        self.n_prior = prior_flat.size
        self.mask_lookup = _lookup(space.flat_index, space.shape)
        self.prior_lookup = _lookup(prior_flat, space.shape)

        # One bank of both groups' kernels, so random analyses of either share its tables.
        bank = KernelBank(np.concatenate([ma1.kernels.fwhms, ma2.kernels.fwhms]), space.zooms,
                          fixed=fixed_kernel)
        stack = bank.stack().astype(np.float32)
        levels, values = kernel_levels(stack)
        logs, bins = value_tables(values)
        self.kernels = (levels, row_spans(stack))
        self.values = (values, logs, bins)
        self.n_bins = int(bins.max()) + 1
        self.kmax = int(bins.max())  # the highest MA bin any analysis can fill
        self.sizes = (len(ma1.ids), len(ma2.ids))
        counts = np.concatenate([ma1.foci.counts, ma2.foci.counts]).astype(np.int64)
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.kernel_index = bank.index.astype(np.int64)
        self.group = np.repeat(np.array([0, 1], np.int8), self.sizes)
        self.rows = (GroupRows(ma1), GroupRows(ma2))
        pooled = sparse.vstack([ma1.matrix, ma2.matrix], format="csc")[:, self.prior_columns]
        pooled.sort_indices()
        self.pooled = (pooled.indptr, pooled.indices, np.float32(1.0) - pooled.data)

        self.target_n = target_n
        self.n_subsamples = n_subsamples
        self.difference_iterations = difference_iterations
        self.voxel_thresh = voxel_thresh
        self.null_method = null_method
        self.schedules = None
        self._identity = {
            "space": space.fingerprint(),
            "groups": [{"ids": list(ma.ids), "foci": _digest(ma.foci.ijk),
                        "per_analysis": ma.foci.counts.tolist(),
                        "kernel_fwhm": ma.kernels.fwhms.tolist()} for ma in (ma1, ma2)],
            "target_n": target_n, "n_subsamples": n_subsamples,
            "difference_iterations": difference_iterations, "voxel_thresh": voxel_thresh,
            "null_method": null_method, "mask_coverage": mask_coverage,
        }

    def fingerprint(self):
        """Hash of everything the stored blocks depend on besides the seed and ``n_iters``."""
        text = json.dumps(self._identity, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def n_samples(self, g):
        """Subsamples of group ``g`` for its probability map (as :func:`subset_schedule`)."""
        n, m = self.sizes[g], self.target_n
        return n if m == n - 1 else min(self.n_subsamples, math.comb(n, m))

    def schedule(self, seed):
        """Draw each group's subsamples (analysis indices, one row each) from ``seed``."""
        self.schedules = [
            subset_schedule(n, self.target_n, self.n_subsamples, [seed, SCHEDULE_STREAM, g])
            for g, n in enumerate(self.sizes)
        ]

    def items(self, n_iters):
        """Items of each part, longest tasks first: they should start first."""
        return {"null": n_iters, "cluster1": n_iters, "cluster2": n_iters,
                "support1": self.n_samples(0), "support2": self.n_samples(1),
                "observed": self.n_prior}

    def block_sizes(self, n_iters, chunk_iters=None):
        """Items per block of each part: ``chunk_iters`` (or a default), and voxel runs."""
        return {part: OBSERVED_VOXELS if part == "observed"
                else chunk_iters or default_chunk_iters(n)
                for part, n in self.items(n_iters).items()}

    def run(self, seed, part, start, stop):
        """Items ``start:stop`` of ``part`` (see :class:`BalancedStore` for what each holds)."""
        if part == "null":
            return self._extremes(seed, start, stop)
        if part == "observed":
            return self._observed(seed, start, stop)
        g = int(part[-1]) - 1
        if part.startswith("cluster"):
            return self._largest_clusters(g, seed, start, stop)
        return self._supports(g, seed, start, stop)

    # -- the probability maps ------------------------------------------------------------

    def _null(self, histograms, maxima):
        """Approximate null (weights, bins) of analyses, bit for bit NiMARE's."""
        bins = histogram_bins(maxima)
        fold = NullFold(self.n_voxels)
        fold.kmax, fold.segments = self.kmax, _fold_segments(self.kmax)
        fold.add(histograms)
        weights = fold.weights(bins)
        if weights is None:  # the fold reached past this set's grid: fold on the grid
            weights = approximate_null(histograms, self.n_voxels, bins)
        return weights, bins

    def _cluster_sizes(self, stat, weights, bins, scratch):
        """Supra-threshold in-mask columns and the size of the cluster of each."""
        supra = np.flatnonzero(passes(stat, weights, bins, self.voxel_thresh))
        return supra, cluster_sizes(self.flat_index[supra], self.shape, scratch)

    def _largest_clusters(self, g, seed, start, stop):
        """(n, 1) largest cluster of random-foci datasets of ``target_n`` of group g's
        analyses, each thresholded with its own approximate null."""
        first = self.sizes[0] * g
        scratch = np.zeros(int(np.prod(self.shape)), np.int64)
        out = np.zeros((stop - start, 1))
        for row, it in enumerate(range(start, stop)):
            rng = np.random.default_rng([seed, CLUSTER_STREAMS[g], it])
            chosen = np.arange(self.sizes[g])
            if self.target_n < chosen.size:
                chosen = np.sort(rng.permutation(chosen.size)[:self.target_n])
            chosen += first
            counts = self.counts[chosen]
            starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            ijk = self.sample_ijk[rng.integers(len(self.sample_ijk), size=starts[-1])]
            summary = block_summary(ijk, starts, self.kernel_index[chosen], *self.kernels,
                                    self.shape, self.mask_lookup, *self.values, self.n_voxels,
                                    self.n_bins)
            weights, bins = self._null(summary.histograms, summary.maxima)
            sizes = self._cluster_sizes(summary.statistic(), weights, bins, scratch)[1]
            out[row] = sizes.max() if sizes.size else 0
        return out

    def _supports(self, g, seed, start, stop):
        """(2, k) int32: the supra-threshold columns of subsamples ``start:stop`` of group
        g (concatenated) and their cluster sizes."""
        rows = self.rows[g]
        scratch = np.zeros(int(np.prod(self.shape)), np.int64)
        log_sum = np.empty(self.n_voxels)
        found = []
        for chosen in self.schedules[g][start:stop]:
            row_sums(rows.indptr, rows.indices, rows.logs, chosen, log_sum)
            stat = (1.0 - np.exp(log_sum)).astype(np.float32)
            weights, bins = self._null(rows.histograms.subset(chosen), rows.maxima[chosen])
            found.append(np.stack(self._cluster_sizes(stat, weights, bins, scratch)))
        return np.concatenate(found, axis=1).astype(np.int32)

    def probability(self, g, blocks, cluster_threshold):
        """Fraction of group g's subsamples in which each voxel is in a cluster larger than
        ``cluster_threshold``, from the blocks of :meth:`_supports`."""
        counts = np.zeros(self.n_voxels, np.int64)
        for columns, sizes in blocks:
            counts += np.bincount(columns[sizes > cluster_threshold], minlength=self.n_voxels)
        return (counts / self.n_samples(g)).astype(np.float32)

    # -- balanced differences ------------------------------------------------------------

    def _members(self, rng, group):
        """Subsample membership (analysis x pair, float32 0/1) and the always-in analyses."""
        draws = self.difference_iterations
        members = np.zeros((group.size, draws), np.float32)
        always = np.zeros(group.size, np.bool_)
        for g in (0, 1):
            pool = np.flatnonzero(group == g)
            if pool.size == self.target_n:
                always[pool] = True
            else:
                members[_subsamples(rng, pool, self.target_n, draws),
                        np.arange(draws)[:, None]] = 1.0
        return members, always

    def _observed(self, seed, start, stop):
        """(n, 1) float32 balanced differences at prior voxels ``start:stop``."""
        members, always = self._members(np.random.default_rng([seed, OBSERVED_STREAM, 0]),
                                        self.group)
        indptr, rows, factors = self.pooled
        lo, hi = indptr[start], indptr[stop]
        out = np.empty(stop - start)
        mean_differences(indptr[start:stop + 1] - lo, rows[lo:hi], factors[lo:hi], self.group,
                         always, members, out)
        return out.astype(np.float32)[:, None]

    def _random_prior_ma(self, rng):
        """CSC (over prior voxels) of 1 - MA of every analysis, its foci at random voxels."""
        ijk = self.sample_ijk[rng.integers(len(self.sample_ijk), size=self.starts[-1])]
        block = (ijk, self.starts, self.kernel_index, *self.kernels, self.shape,
                 self.prior_lookup, *self.values)
        counts = np.zeros(self.counts.size, np.int64)
        count_rows(block, counts)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices, data = output(indptr[-1])
        ma_pass(*block, counts, indices, data, *summary_arrays(0, 0, 0), True, False)
        csc = sparse.csr_matrix((data, indices, indptr),
                                shape=(self.counts.size, self.n_prior)).tocsc()
        return csc.indptr, csc.indices, np.float32(1.0) - csc.data

    def _extremes(self, seed, start, stop):
        """(n, 2) smallest and largest balanced difference of null datasets ``start:stop``."""
        out = np.empty((stop - start, 2))
        diff = np.empty(self.n_prior)
        for row, it in enumerate(range(start, stop)):
            rng = np.random.default_rng([seed, NULL_STREAM, it])
            if self.null_method == "random-foci":
                csc, group = self._random_prior_ma(rng), self.group
            else:
                csc, group = self.pooled, np.ones(self.group.size, np.int8)
                group[rng.permutation(group.size)[:self.sizes[0]]] = 0
            members, always = self._members(rng, group)
            mean_differences(*csc, group, always, members, diff)
            values = diff.astype(np.float32)
            out[row] = values.min(), values.max()
        return out


class BalancedStore:
    """Finished blocks of a balanced subtraction in a Zarr group (in memory if ``path`` is None).

    Group ``balanced/<null_method>`` holds, per part (see :meth:`BalancedPlan.items`), one
    array per finished block, ``<part>/<start>``, and ``<part>_done`` (block: items
    written). A block's array is written before its ``done`` entry, so a run killed at any
    point leaves a store whose ``done`` entries describe exactly what is there. Rows are
    items for ``null`` (smallest and largest difference), ``cluster1``/``cluster2`` (largest
    cluster) and ``observed`` (difference per prior voxel); a ``support`` block is the
    (2, k) output of :meth:`BalancedPlan._supports`. The attributes record the fingerprint,
    the seed and the block sizes; a group written for other inputs is refused.
    """

    def __init__(self, group):
        self.group = group
        self.seed = int(group.attrs["seed"])
        self.sizes = dict(group.attrs["block_sizes"])

    @classmethod
    def open(cls, path, name, fingerprint, seed, sizes, chunk_iters=None):
        """Open (or create with block ``sizes``) group ``name``; refuse a mismatched one.

        An existing group keeps its block sizes, with a warning if ``chunk_iters`` asked
        for others.
        """
        def build(group):
            for part in sizes:
                group.create_group(part)
                group.create_array(f"{part}_done", shape=(0,), chunks=(1,), dtype="i8",
                                   fill_value=0)
            return {"block_sizes": sizes}

        store = cls(open_fingerprinted_group(path, "balanced", name, fingerprint, seed, build,
                                             "a balanced subtraction"))
        kept = {store.sizes[part] for part in sizes if part != "observed"}
        if chunk_iters is not None and kept != {chunk_iters}:
            warn(f"{path}: the balanced subtraction keeps its block sizes ({sorted(kept)}); "
                 f"chunk_iters={chunk_iters} ignored (use another store to change them)")
        return store

    def _blocks(self, part, n_items):
        size = self.sizes[part]
        return [(b, b * size, min((b + 1) * size, n_items)) for b in range(-(-n_items // size))]

    def pending(self, part, n_items):
        """(start, stop) of the blocks of ``part`` still to compute for its first ``n_items``."""
        blocks = self._blocks(part, n_items)
        done = self.group[f"{part}_done"]
        if done.shape[0] < len(blocks):
            done.resize((len(blocks),))
        written = done[:]
        return [(a, b) for n, a, b in blocks if written[n] < b - a]

    def write(self, part, start, stop, values):
        """Store one finished block; its ``done`` entry goes last."""
        self.group[part].create_array(str(start), data=values, overwrite=True)
        self.group[f"{part}_done"][start // self.sizes[part]] = stop - start

    def blocks(self, part, n_items):
        """The stored blocks holding the first ``n_items`` of ``part``, in order."""
        for _, start, _ in self._blocks(part, n_items):
            yield self.group[part][str(start)][...]

    def read(self, part, n_items):
        """The first ``n_items`` rows of ``part``."""
        return np.concatenate(list(self.blocks(part, n_items)))[:n_items]


def _run_block(plan, seed, part, start, stop):
    return plan.run(seed, part, start, stop)


def run_balanced(plan, store, n_iters):
    """Compute every block ``store`` lacks for ``n_iters`` null datasets, as one Dask graph."""
    blocks = {(part, a, b): (plan, store.seed, part, a, b)
              for part, n in plan.items(n_iters).items() for a, b in store.pending(part, n)}

    def write(key, values):
        store.write(*key, values)

    run_blocks(_run_block, blocks, write, shared=(plan,), desc="Balanced subtraction")


def _group_tables(csets, mas):
    """Each group's analyses table (and foci outside the mask), suffixed ``_desc-group1/2``."""
    tables = {}
    for label, cset, ma in zip(("group1", "group2"), csets, mas):
        table = cset.analyses.loc[ma.ids, ["sample_size"]]
        table["kernel_fwhm"] = ma.kernels.fwhms
        table["n_foci"] = ma.foci.counts
        tables[f"analyses_desc-{label}"] = table
        if not ma.outside_mask.empty:
            tables[f"{OUTSIDE_TABLE}_desc-{label}"] = ma.outside_mask
    return tables
