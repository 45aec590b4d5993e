"""Fail-safe N (Acar et al., 2018): how many noise analyses each cluster withstands.

Publication bias hides analyses that found nothing. A cluster that stays significant when
many analyses reporting only random foci are added to the data is robust to that bias. The
fail-safe N of a significant cluster of a cluster-level Monte Carlo FWE map is the largest
number m of noise analyses such that ALE refitted on the original analyses plus the first m
noise analyses, with a Monte Carlo null of its own, still has a significant cluster at the
original cluster's peak (its voxel of maximum ALE).

Noise analysis j (numbered from 1: ids ``failsafe-noise-0001``, ...) draws from a generator
seeded with ``(seed, 0, j)``: it takes the number of foci and the sample size of an original
analysis chosen at random, and puts its foci at uniformly random in-mask voxels, as the
Monte Carlo null does. It does not depend on how many are added: the noise sets of a search
are nested. The null refitted with m noise analyses has the root seed
:func:`null_seed` ``(seed, m)``; :func:`noise_analyses` and :func:`null_seed` let anyone
reproduce a tested size with :class:`~dmeta.ALE` and :class:`~dmeta.FWECorrector`.

The search assumes that a cluster which fails with m noise analyses fails with more. Every
cluster is tested at ``max_noise``; the others are bisected between 0 (where they are
significant) and ``max_noise``. A round refits the distinct sizes its clusters' midpoints
ask for and runs their nulls as one set of Dask tasks; a size tested once answers for every
cluster. Random foci landing next to a cluster can enlarge it again, so survival is not
always monotone: the answer is a size the cluster survives while one more noise analysis
makes it fail, not necessarily the first such size.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dmeta.ale import ALE
from dmeta.approximate_null import hist_to_threshold
from dmeta.base import DmetaBase
from dmeta.clusters import cluster_peaks, supra_threshold_clusters
from dmeta.coordinates import CoordinateSet
from dmeta.correct import _fwe_maps
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.fingerprinted_group import open_fingerprinted_group
from dmeta.montecarlo import NullPlan, iteration_budget, run_nulls
from dmeta.montecarlo.adaptive import MAX_ITERS, PRECISION
from dmeta.results import MetaResult
from dmeta.seeds import check_seed, derive_seed
from dmeta.subtraction import ALESubtraction
from dmeta.validation import check_choice, check_p, check_positive_int, check_run_params
from dmeta.versions import versions

FWE = "corr-FWE_method-montecarlo"
#: The maps a fail-safe N can be computed for: cluster-size and cluster-mass FWE.
TARGETS = tuple(f"z_desc-{level}_level-cluster_{FWE}" for level in ("size", "mass"))
#: The null column whose critical value decides significance on each target.
_NULL_COLUMN = dict(zip(TARGETS, ("max_cluster_size", "max_cluster_mass")))
NOISE_PREFIX = "failsafe-noise-"
#: A default ``max_noise`` of this many times the number of analyses.
NOISE_PER_ANALYSIS = 10
_NOISE_STREAM, _NULL_STREAM = 0, 1

COLUMNS = ["Cluster", "X", "Y", "Z", "Peak Stat", "Size (voxels)", "FWE p", "Fail-safe N",
           "Survives max_noise", "Sizes tested"]


def noise_id(j: int) -> str:
    """Id of noise analysis ``j`` (from 1): ``failsafe-noise-0001``."""
    return f"{NOISE_PREFIX}{j:04d}"


def null_seed(seed: int, n_noise: int) -> int:
    """Root seed of the Monte Carlo null refitted with ``n_noise`` noise analyses.

    ``derive_seed(seed, 1, n_noise)``: give it to :class:`~dmeta.FWECorrector` to reproduce
    the test of one size.
    """
    return derive_seed(check_seed(seed), _NULL_STREAM, n_noise)


def noise_analyses(result: MetaResult, n_noise: int, seed: int) -> CoordinateSet:
    """The first ``n_noise`` noise analyses of a fail-safe N search with root ``seed``.

    Parameters
    ----------
    result : MetaResult
        A result of :meth:`dmeta.ALE.fit` in this session: its analyses give the numbers of
        foci and sample sizes, its mask the voxels foci are drawn from.
    n_noise : int
    seed : int
        The root seed :class:`FailSafeN` records (``attrs["diagnostics"]``).

    Returns
    -------
    CoordinateSet
        Analyses ``failsafe-noise-0001`` ... in order; add them after the original
        analyses to refit what :class:`FailSafeN` tested.
    """
    check_positive_int("n_noise", n_noise)
    ale = fitted_ale(result)
    return Noise(ale.ma_, sample_sizes(result, ale), n_noise, check_seed(seed)).first(n_noise)


def fitted_ale(result):
    """The result's ALE estimator, or an InputError saying why there is none to refit."""
    estimator = result.estimator
    if isinstance(estimator, ALESubtraction):
        raise InputError("FailSafeN does not support subtraction results (ALESubtraction): "
                         "it refits a one-sample ALE; run it on ALE.fit results")
    if not isinstance(estimator, ALE):
        raise InputError("FailSafeN refits the meta-analysis, so it needs the result of "
                         "ALE.fit in this session (or one read from a store written with "
                         "modeled_activation=True)")
    estimator.check_fitted("ma_")
    return estimator


def sample_sizes(result, ale):
    """Sample size of each analysis of the fit (NaN where unknown), in fit order."""
    table = result.tables.get("analyses")
    if table is None or "sample_size" not in table:
        return np.full(len(ale.ma_.ids), np.nan)
    return table["sample_size"].reindex(ale.ma_.ids).to_numpy(dtype=float)


class Noise:
    """The fitted analyses and a nested sequence of ``n`` noise analyses, as tables.

    ``first(m)`` is the coordinate set with the first ``m`` noise analyses only;
    ``augmented(m)`` the fitted analyses followed by them.
    """

    def __init__(self, ma, sizes, n, seed):
        space, counts = ma.space, ma.foci.counts
        rows, xyz = [], []
        for j in range(1, n + 1):
            rng = np.random.default_rng([seed, _NOISE_STREAM, j])
            row = int(rng.integers(len(counts)))
            rows.append(row)
            xyz.append(space.ijk_to_mm(space.ijk[rng.integers(space.n_voxels,
                                                              size=counts[row])]))
        ids = [noise_id(j) for j in range(1, n + 1)]
        self.noise = _tables(ids, sizes[rows], counts[rows], xyz)
        self.original = _tables(ma.ids, sizes, ma.foci.counts,
                                [space.ijk_to_mm(ma.foci.ijk)])
        self.starts = np.concatenate([[0], np.cumsum(counts[rows])]).astype(int)

    def _noise(self, m):
        analyses, foci = self.noise
        return analyses.iloc[:m], foci.iloc[:self.starts[m]]

    def first(self, m):
        return CoordinateSet(*self._noise(m), source="fail-safe N noise")

    def augmented(self, m):
        analyses, foci = self._noise(m)
        return CoordinateSet(pd.concat([self.original[0], analyses]),
                             pd.concat([self.original[1], foci]), source="fail-safe N refit")


def _tables(ids, sizes, counts, xyz):
    """Analyses and foci tables of a CoordinateSet (each id is its own study)."""
    analyses = pd.DataFrame({"id": list(ids), "study_id": list(ids), "analysis_id": "1",
                             "sample_size": sizes})
    xyz = np.concatenate([np.empty((0, 3)), *xyz])
    foci = pd.DataFrame({"id": np.repeat(list(ids), counts).astype(object), "x": xyz[:, 0],
                         "y": xyz[:, 1], "z": xyz[:, 2]})
    return analyses, foci


@dataclass
class TargetClusters:
    """The significant clusters of the target map, in order of decreasing peak ALE."""

    peaks: np.ndarray  # in-mask index of each cluster's voxel of maximum ALE
    sizes: np.ndarray
    p: np.ndarray

    @classmethod
    def of(cls, result, target, thresh, alpha):
        stat = result.get_map("stat", return_type="array")
        space = result.space
        labels, sizes, _ = supra_threshold_clusters(space.to_volume(stat), thresh)
        labels = space.from_volume(labels).astype(np.int64)
        logp = result.get_map("logp" + target[1:], return_type="array")
        significant = np.unique(labels[(labels > 0) & (logp > -np.log10(alpha))])
        peaks = cluster_peaks(stat, labels, significant)
        order = np.argsort(-stat[peaks], kind="stable")
        peaks = peaks[order]
        return cls(peaks, sizes[significant[order]].astype(int), 10.0 ** -logp[peaks])


@dataclass
class Refit:
    """ALE refitted with some noise analyses: its statistic and cluster-forming threshold."""

    stat: MetaResult
    thresh: float
    plan: NullPlan

    def survives(self, nulls, target, peaks, alpha):
        """Whether each peak is in a cluster significant at ``alpha`` (FWE) in this refit."""
        logp = _fwe_maps(self.stat, self.thresh, nulls)["logp" + target[1:]]
        stat = self.stat.get_map("stat", return_type="array")
        return (stat[peaks] > self.thresh) & (logp[peaks] > -np.log10(alpha))


@dataclass
class Search:
    """Bisection state of one cluster: it survives ``low`` noise analyses and fails at
    ``high`` (None until ``max_noise`` is tested)."""

    max_noise: int
    low: int = 0
    high: int | None = None
    done: bool = False
    flagged: bool = False
    tested: list = field(default_factory=list)

    def next_size(self):
        return self.max_noise if self.high is None else (self.low + self.high) // 2

    def record(self, size, survived):
        self.tested.append(size)
        if survived:
            self.low = size
            self.flagged = size == self.max_noise
        else:
            self.high = size
        self.done = self.flagged or self.high - self.low <= 1


def bisect(searches, test):
    """Run every cluster's search to its end, a round at a time.

    ``test(sizes)`` returns, for each number of noise analyses in ``sizes``, whether each
    cluster survives it; it is called once per round, with the sizes not tested before.
    Returns the survival by size (in the order tested) and the number of calls.
    """
    survival, rounds = {}, 0
    while not all(s.done for s in searches):
        wanted = sorted({s.next_size() for s in searches if not s.done} - set(survival))
        if wanted:
            survival.update(test(wanted))
            rounds += 1
        for n, search in enumerate(searches):
            if not search.done:
                size = search.next_size()
                search.record(size, bool(survival[size][n]))
    return survival, rounds


@fill_doc
class FailSafeN(DmetaBase):
    """Fail-safe N of each significant cluster (Acar et al., 2018).

    How many noise analyses (random foci in the mask, with numbers of foci and sample sizes
    resampled from the data's analyses) can be added to the meta-analysis before a cluster
    is no longer significant: ALE is refitted with the original analyses plus the first m
    noise analyses, corrected with a Monte Carlo null of its own at the result's
    ``voxel_thresh``, and the cluster survives m if the refit has a cluster significant at
    ``alpha`` (cluster-level FWE, the target's level) at its peak. A robust cluster
    withstands many; one that fails after a few rests on a handful of analyses that
    unpublished null results could outweigh. See :mod:`dmeta.diagnostics.failsafe` for the
    search (one bisection per cluster, assuming that a cluster failing with m noise
    analyses fails with more) and its seeds.

    Parameters
    ----------
    target_image : str
        The cluster-size or cluster-mass Monte Carlo FWE map of a result corrected with
        :class:`~dmeta.FWECorrector`; its clusters significant at ``alpha`` are tested.
    max_noise : int, optional
        Most noise analyses tested; a cluster surviving them gets fail-safe N
        ``max_noise`` with ``Survives max_noise`` set (it is at least that). None: ten
        times the number of analyses.
    n_iters : int or "auto"
        Monte Carlo iterations of the null refitted at each number of noise analyses tested;
        ``"auto"`` runs each until the (1 - ``alpha``) quantile of its largest clusters (size
        or mass, as the target) is known to ``precision``.
    seed : int, optional
        Root seed of the noise analyses and of the refitted nulls. None draws one (or
        reuses the one ``store`` holds), which the result records.
    alpha : float
        Cluster-level FWE p below which a cluster is significant.
    %(chunk_iters)s
    store : str or os.PathLike, optional
        Zarr store keeping the root seed and the refitted nulls block by block, so that an
        interrupted run resumes.
    %(precision)s
    %(max_iters)s
    """

    def __init__(self, target_image: str = TARGETS[0], max_noise: int | None = None,
                 n_iters: int | str = 5000, seed: int | None = None, alpha: float = 0.05,
                 chunk_iters: int | None = None, store: str | os.PathLike | None = None,
                 precision: float = PRECISION, max_iters: int = MAX_ITERS):
        self.target_image = target_image
        self.max_noise = max_noise
        self.n_iters = n_iters
        self.seed = seed
        self.alpha = alpha
        self.chunk_iters = chunk_iters
        self.store = store
        self.precision = precision
        self.max_iters = max_iters

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the table ``<target_image>_diag-FailSafeN``.

        One row per significant cluster of the target, by decreasing peak ALE: its peak
        (mm) and ALE, size, FWE p, fail-safe N, whether it survived ``max_noise``, and the
        numbers of noise analyses tested for it, in order. The copy's
        ``attrs["diagnostics"]["<target_image>_diag-FailSafeN"]`` records the root seed,
        ``max_noise``, ``n_iters``, ``alpha`` and every number tested.
        """
        check_choice("target_image", self.target_image, TARGETS)
        check_p("alpha", self.alpha)
        check_run_params(self.seed, chunk_iters=self.chunk_iters)
        budget = iteration_budget(self.n_iters, self.precision, self.max_iters,
                                  (_NULL_COLUMN[self.target_image],), 1.0 - self.alpha)
        if self.max_noise is not None:
            check_positive_int("max_noise", self.max_noise)
        ale = fitted_ale(result)
        record = _fwe_record(result, self.target_image)
        voxel_thresh = record["voxel_thresh"]
        clusters = TargetClusters.of(result, self.target_image,
                                     record["cluster_forming_stat"], self.alpha)
        if not clusters.peaks.size:
            raise InputError(f"{self.target_image!r} has no cluster with FWE p < "
                             f"{self.alpha:g}: there is no fail-safe N to find")
        sizes = sample_sizes(result, ale)
        max_noise = self.max_noise or NOISE_PER_ANALYSIS * len(ale.ma_.ids)
        seed = self._root_seed(ale.ma_, sizes)
        noise = Noise(ale.ma_, sizes, max_noise, seed)
        searches = [Search(max_noise) for _ in clusters.peaks]
        iterations = {}
        survival, rounds = bisect(searches, lambda sizes: self._test(
            ale, noise, sizes, voxel_thresh, seed, clusters, budget, iterations))
        out = result.copy()
        name = f"{self.target_image}_diag-FailSafeN"
        out.add_tables({name: _table(result, clusters, searches)})
        out.attrs.setdefault("diagnostics", {})[name] = {
            "name": type(self).__name__, "seed": seed, "max_noise": int(max_noise),
            "n_iters": self.n_iters if budget == self.n_iters else "auto",
            "alpha": float(self.alpha),
            "voxel_thresh": float(voxel_thresh), "sizes_tested": [int(m) for m in survival],
            "iterations": {str(m): n for m, n in sorted(iterations.items())},
            "rounds": rounds,
        }
        out.attrs["versions"] = versions()
        out.description += (
            f" The robustness of the clusters of {self.target_image} to unpublished null "
            "results was assessed with the fail-safe N (Acar et al., 2018): noise "
            "experiments (random in-mask foci, with numbers of foci and sample sizes "
            f"resampled from the data) were added, up to {max_noise}, ALE refitted and "
            f"cluster-level FWE recomputed with {_iterations_text(iterations)} Monte Carlo "
            "iterations at each number tested, searching by bisection for the most noise "
            "experiments each cluster withstands."
        )
        return out

    def _root_seed(self, ma, sizes):
        """The seed given, or the one ``store`` holds for these analyses, or a fresh one."""
        identity = json.dumps({"space": ma.space.fingerprint(), "ids": list(ma.ids),
                               "foci": hashlib.sha256(ma.foci.ijk.tobytes()).hexdigest(),
                               "sample_sizes": [None if np.isnan(s) else s for s in sizes]})
        group = open_fingerprinted_group(
            self.store, "failsafe", "noise", hashlib.sha256(identity.encode()).hexdigest(),
            self.seed, lambda g: {}, "fail-safe N noise analyses")
        return int(group.attrs["seed"])

    def _test(self, ale, noise, wanted, voxel_thresh, seed, clusters, budget, iterations):
        """Survival of every cluster at each size in ``wanted``: the refits' nulls as one
        set of Dask tasks (their lengths go to ``iterations``)."""
        refits = {m: _refit(ale, noise.augmented(m), voxel_thresh) for m in wanted}
        names = {m: f"failsafe-{m}" for m in wanted}
        nulls = run_nulls({names[m]: refit.plan for m, refit in refits.items()}, budget,
                          {names[m]: null_seed(seed, m) for m in wanted}, self.chunk_iters,
                          self.store)
        iterations.update({m: int(nulls[names[m]][0].sizes["iteration"]) for m in wanted})
        return {m: refit.survives(nulls[names[m]][0], self.target_image, clusters.peaks,
                                  self.alpha)
                for m, refit in refits.items()}


def _iterations_text(iterations):
    """"5000", or "1200 to 3400" when adaptive nulls stopped at different lengths."""
    low, high = min(iterations.values()), max(iterations.values())
    return f"{low}" if low == high else f"{low} to {high}"


def _fwe_record(result, target):
    """The Monte Carlo FWE correction's record; an InputError if the target is missing."""
    record = result.attrs.get("corrections", {}).get(FWE)
    if record is None or record.get("cluster_forming_stat") is None:
        raise InputError("FailSafeN needs a result corrected with cluster-level Monte Carlo "
                         "FWE: run dmeta.FWECorrector(method='montecarlo').transform(result) "
                         "first")
    missing = [name for name in (target, "logp" + target[1:], "stat") if name not in result.maps]
    if missing:
        raise InputError(f"FailSafeN needs the map(s) {', '.join(map(repr, missing))}, which "
                         "the result does not have")
    return record


def _refit(ale, cset, voxel_thresh):
    """ALE of ``cset`` with the fit's kernel rules and mask, as FWECorrector thresholds it."""
    estimator = ALE(kernel_fwhm=ale.kernel_fwhm, sample_size=ale.sample_size,
                    mask=ale.ma_.space)
    with warnings.catch_warnings():
        # The original fit already warned about its foci outside the mask.
        warnings.simplefilter("ignore", UserWarning)
        fitted = estimator.fit(cset)
    refitted = fitted.estimator
    thresh = float(hist_to_threshold(refitted.null_weights_, refitted.bins_, voxel_thresh))
    stat = MetaResult({"stat": fitted.get_map("stat", return_type="array")}, fitted.space)
    return Refit(stat, thresh, NullPlan(refitted.ma_, thresh))


def _table(result, clusters, searches):
    """One row per cluster: where it is, how significant, and what the search found."""
    space = result.space
    xyz = space.ijk_to_mm(space.ijk[clusters.peaks])
    stat = result.get_map("stat", return_type="array")[clusters.peaks]
    return pd.DataFrame({
        "Cluster": np.arange(1, clusters.peaks.size + 1),
        "X": xyz[:, 0], "Y": xyz[:, 1], "Z": xyz[:, 2],
        "Peak Stat": stat.astype(float),
        "Size (voxels)": clusters.sizes,
        "FWE p": clusters.p.astype(float),
        "Fail-safe N": [s.low for s in searches],
        "Survives max_noise": [s.flagged for s in searches],
        "Sizes tested": [", ".join(map(str, s.tested)) for s in searches],
    }, columns=COLUMNS)
