"""Resampling stability as Dask work: Monte Carlo nulls, then replicate supports, for any
number of resampling configurations at once, kept in Zarr so an interrupted sweep resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from dmeta.approximate_null import approximate_null, histogram_bins
from dmeta.compute import run_blocks
from dmeta.coordinates import CoordinateSet
from dmeta.diagnostics.null import ResamplingNullPlan, sample_space, stat_cut, z_cut
from dmeta.diagnostics.replicates import log_complement, replicate_supports
from dmeta.diagnostics.resampling import Policy, subset_schedule, subset_size
from dmeta.diagnostics.store import SupportStore
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.messages import warn
from dmeta.montecarlo import StoppingRule, iteration_budget, run_nulls
from dmeta.montecarlo.adaptive import MAX_ITERS, PRECISION, STEP, relative_error
from dmeta.seeds import derive_seed
from dmeta.validation import check_choice, check_run_params

REFITS = ("approximate", "full")

#: Replicates per task of the support stage.
CHUNK_REPLICATES = 16

#: Name of the one-replicate configuration holding the full data's thresholded support.
FULL_DATA = "full-data"

#: ``refit="approximate"`` warns when a replicate keeps fewer than this fraction of the
#: analyses: every replicate is then thresholded with the approximate null of all of them.
BIASED_FRACTION = 0.8

#: The bias measured, quoted by the warning. Pain (21 analyses), 20 replicates of 10, 1000
#: iterations per null, one worker, 18 s and 40 s:
#: ``dmeta stability dmeta/datasets/data/nidm_pain_studyset.json --policy subsample
#: --target-n 10 --n-resamples 20 --n-iters 1000 --seed 0 --refit approximate`` (then
#: ``--refit full``) gave stable voxels >0 / >=0.5 / >=0.8 of 1878 / 128 / 1 against
#: 3425 / 485 / 93. The 496-analysis figure is the one reported in issue 14 (a NeuroStore
#: export, target_n=100).
MEASURED_BIAS = (
    "on the bundled pain set (21 analyses) at target_n=10 the shared null gave 128 voxels "
    "with stability >= 0.5 where per-replicate nulls gave 485 (1,878 vs 3,425 with "
    "stability > 0); on a 496-analysis export at target_n=100 it marked 793 voxels stable "
    "where per-replicate nulls gave 12,170"
)


@dataclass
class Config:
    """One resampling configuration: a policy and the subsets it keeps."""

    policy: str
    k: int | None
    kept: int
    subsets: np.ndarray
    refit: str = "approximate"

    @classmethod
    def build(cls, policy, n, k=None, target_n=None, n_resamples=None, random_state=None,
              refit="approximate"):
        check_choice("refit", refit, REFITS)
        kept = subset_size(policy, n, k, target_n)
        config = cls(policy, k, kept, subset_schedule(n, kept, n_resamples, random_state), refit)
        if refit == "approximate" and kept < BIASED_FRACTION * n:
            warn(f"{config.label}: refit='approximate' thresholds replicates of {kept} of {n} "
                 f"analyses with the approximate null of all {n} (NiMARE's semantics), which "
                 f"undercounts stable voxels below {BIASED_FRACTION:.0%} of the analyses: "
                 f"{MEASURED_BIAS}. Use refit='full' for a null per replicate.")
        return config

    @classmethod
    def full_data(cls, n):
        """The one replicate keeping every analysis: the full data's thresholded support."""
        return cls("subsample", None, n, np.arange(n)[None, :])

    @property
    def label(self):
        part = {"leave_1_out": "", "leave_k_out": f"_k-{self.k}",
                "subsample": f"_n-{self.kept}"}[self.policy]
        return self.policy + part + ("_refit-full" if self.refit == "full" else "")


@dataclass
class Thresholds:
    """What every replicate is thresholded with (see :class:`ResampledStability`).

    ``n_iters="auto"`` runs each Monte Carlo null until the (1 - ``alpha``) quantile of its
    largest cluster sizes, the only value a replicate uses, is known to ``precision``, or
    to ``max_iters`` iterations.
    """

    voxel_thresh: float = 0.001
    alpha: float = 0.05
    n_iters: int | str = 5000
    cluster_threshold: int | None = None
    mask_coverage: str = "gm"
    precision: float = PRECISION
    max_iters: int = MAX_ITERS

    @property
    def adaptive(self):
        return isinstance(self.n_iters, str) and self.n_iters == "auto"

    def budget(self):
        """Iterations per null, or the :class:`~dmeta.montecarlo.StoppingRule` watching the
        cluster-size cut."""
        return iteration_budget(self.n_iters, self.precision, self.max_iters,
                                columns=("max_cluster_size",), q=1.0 - self.alpha)

    def check(self, chunk_iters=None):
        z_cut(self.voxel_thresh)
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        budget = self.budget()
        if isinstance(budget, StoppingRule):
            budget.check_block(chunk_iters or STEP, "the run")

    def identity(self):
        """What the supports depend on (precision and max_iters only with "auto")."""
        identity = dict(self.__dict__)
        if not self.adaptive:
            del identity["precision"], identity["max_iters"]
        return identity


def _fingerprint(ma, config, th):
    identity = {
        "space": ma.space.fingerprint(), "ids": list(ma.ids),
        "foci": ma.foci.counts.tolist(), "fwhm": ma.kernels.fwhms.tolist(),
        "policy": config.policy, "k": config.k, "kept": config.kept, "refit": config.refit,
        "subsets": hashlib.sha256(np.ascontiguousarray(config.subsets).tobytes()).hexdigest(),
        "thresholds": th.identity(),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _approximate(summary, n_voxels, analyses=None):
    """The approximate null (weights, bins) of the analyses at ``analyses`` (default all)."""
    maxima, histograms = summary.maxima, summary.histograms
    if analyses is not None:
        maxima, histograms = maxima[analyses], histograms.subset(analyses)
    bins = histogram_bins(maxima)
    return approximate_null(histograms, n_voxels, bins), bins


def run_supports(ma, configs, th, seed=None, store=None, chunk_iters=None,
                 chunk_replicates=CHUNK_REPLICATES):
    """Every replicate's thresholded support, per configuration, kept in ``store``.

    Every pending Monte Carlo block of every configuration (one null per configuration, or
    one per replicate with ``refit="full"``) is submitted as one set of tasks; then every
    pending block of replicates. Finished replicates are written to ``store`` as they
    arrive, with the iterations and precision of the null that thresholded them, and a
    rerun computes only the missing ones. With ``th.n_iters="auto"`` each null stops on its
    own (:func:`dmeta.montecarlo.run_nulls`), so a replicate's threshold depends on its seed
    alone, not on the workers, the chunking or an interruption.

    Returns
    -------
    dict of str to SupportStore
    """
    th.check(chunk_iters)
    budget = th.budget()
    space = ma.space
    full_null = _approximate(ma.summary, space.n_voxels)
    sample = None if th.cluster_threshold is not None else sample_space(space, th.mask_coverage)
    stores, plans, seeds, replicate_nulls = {}, {}, {}, {}
    for name, config in configs.items():
        st = stores[name] = SupportStore.open(store, name, _fingerprint(ma, config, th), seed,
                                              len(config.subsets), space.n_voxels)
        pending = st.pending()
        if config.refit == "approximate":
            replicate_nulls[name] = dict.fromkeys(pending, full_null)
        else:
            replicate_nulls[name] = {
                r: _approximate(ma.summary, space.n_voxels, config.subsets[r]) for r in pending
            }
        if sample is None or not len(pending):
            continue
        if config.refit == "approximate":
            key = f"stability-{name}"
            plans[key] = ResamplingNullPlan(ma, stat_cut(*full_null, th.voxel_thresh), sample,
                                            config.kept)
            seeds[key] = derive_seed(st.seed, zlib.crc32(name.encode()))
        for r in pending if config.refit == "full" else ():
            key = f"stability-{name}-r{r:05d}"
            weights, bins = replicate_nulls[name][r]
            plans[key] = ResamplingNullPlan(ma.subset(config.subsets[r]),
                                            stat_cut(weights, bins, th.voxel_thresh), sample)
            seeds[key] = derive_seed(st.seed, zlib.crc32(name.encode()), int(r))
    nulls = run_nulls(plans, budget, seeds, chunk_iters, store) if plans else {}

    def cut(key):
        """(cluster-size cut, iterations, relative error of the cut) of null ``key``."""
        if th.cluster_threshold is not None:
            return th.cluster_threshold, 0, np.nan
        null = nulls[key][0]
        sizes = null["max_cluster_size"].values
        q = 1.0 - th.alpha
        return (float(np.percentile(sizes, 100.0 * q)), int(null.sizes["iteration"]),
                relative_error(sizes, q))

    log_ma = log_complement(ma.matrix) if any(replicate_nulls.values()) else None
    blocks, records = {}, {}
    for name, config in configs.items():
        pending = sorted(replicate_nulls[name])
        for a in range(0, len(pending), chunk_replicates):
            block = tuple(pending[a:a + chunk_replicates])
            found = [cut(f"stability-{name}" if config.refit == "approximate"
                         else f"stability-{name}-r{r:05d}") for r in block]
            cuts = [(*replicate_nulls[name][r], size_cut)
                    for r, (size_cut, _, _) in zip(block, found)]
            records[name, block] = ([f[1] for f in found], [f[2] for f in found])
            blocks[name, block] = (log_ma, config.subsets[list(block)], cuts, th.voxel_thresh,
                                   space)

    def write(key, supports):
        name, block = key
        stores[name].write(block, supports, *records[key])

    run_blocks(replicate_supports, blocks, write, shared=(log_ma, space),
               desc="Stability replicates")
    return stores


def run_stability(ma, configs, th, seed=None, store=None, chunk_iters=None,
                  chunk_replicates=CHUNK_REPLICATES):
    """Stability map (fraction of replicates supporting each voxel) per configuration
    (:func:`run_supports`)."""
    stores = run_supports(ma, configs, th, seed, store, chunk_iters, chunk_replicates)
    return {name: st.stability() for name, st in stores.items()}


def summary_row(stability, n_replicates):
    """The reference example's per-policy summary: stable voxel counts and mean stability."""
    nonzero = stability[stability > 0]
    return {
        "N replicates": int(n_replicates),
        "Stable voxels (>0)": int(nonzero.size),
        "Stable voxels (>=0.5)": int((stability >= 0.5).sum()),
        "Stable voxels (>=0.8)": int((stability >= 0.8).sum()),
        "Mean stability (nonzero)": float(nonzero.mean()) if nonzero.size else 0.0,
    }


def iteration_row(store):
    """Monte Carlo iterations behind a configuration's replicates (min, median, max; NaN
    without a null) and the worst relative error of their cluster-size cuts."""
    iterations, precision = store.iterations(), store.precision()
    row = {}
    for label, reduce in (("min", np.nanmin), ("median", np.nanmedian), ("max", np.nanmax)):
        row[f"Iterations ({label})"] = (float(reduce(iterations))
                                        if np.isfinite(iterations).any() else np.nan)
    row["Precision reached"] = (float(np.nanmax(precision)) if np.isfinite(precision).any()
                                else np.nan)
    return row


def as_attrs(row):
    """``row`` with None for NaN, as attributes are kept (JSON has no NaN)."""
    return {key: None if value != value else value for key, value in row.items()}


@fill_doc
def stability_sweep(cset: CoordinateSet, policies: Sequence[Policy] = ("leave_1_out",),
                    k: int | Sequence[int] | None = None,
                    target_n: int | Sequence[int] | None = None, n_resamples: int | None = None,
                    random_state: int | None = None, voxel_thresh: float = 0.001,
                    alpha: float = 0.05, n_iters: int | Literal["auto"] = 5000,
                    refit: Literal["approximate", "full"] = "approximate",
                    cluster_threshold: int | None = None,
                    mask_coverage: Literal["gm", "brain"] = "gm",
                    store: str | os.PathLike | None = None, chunk_iters: int | None = None,
                    kernel_fwhm: float | None = None,
                    sample_size: int | None = None, precision: float = PRECISION,
                    max_iters: int = MAX_ITERS) -> xr.Dataset:
    """Resampled stability of an ALE under a grid of policies, as one resumable run.

    Each configuration is thresholded as by :class:`~dmeta.ResampledStability`; all of
    their Monte Carlo nulls, then all of their replicates, run as one set of Dask tasks.
    The full data is thresholded the same way (one more replicate, keeping every analysis,
    with a null of its own) and each cluster of its support is followed through the
    replicates (:mod:`dmeta.diagnostics.sweep_summary`).

    Parameters
    ----------
    cset : CoordinateSet
    policies : sequence of {"leave_1_out", "leave_k_out", "subsample"}
        One configuration per policy (and per value of ``k`` or ``target_n``).
    k : int or sequence of int, optional
        Analyses left out, one configuration per value (``leave_k_out``).
    target_n : int or sequence of int, optional
        Analyses kept, one configuration per value (``subsample``).
    %(n_resamples)s
    %(random_state)s
    %(voxel_thresh)s
    %(alpha_stability)s
    %(n_iters_auto)s
        Here the one critical value is the cluster-size cut, the (1 - ``alpha``) quantile
        of the largest null cluster; each null (per configuration, or per replicate with
        ``refit="full"``) stops on its own.
    %(refit)s
    %(cluster_threshold_stability)s
    %(mask_coverage)s
    %(store_stability)s
        The sweep is also written there as a result (:func:`dmeta.open_result`, ``dmeta
        report``), unless the store holds another result.
    %(chunk_iters)s
    %(kernel_fwhm)s
    %(sample_size)s
    %(precision)s
    %(max_iters)s

    Returns
    -------
    xarray.Dataset
        ``stability`` over (``policy``, ``voxel``); over ``policy``, the summary columns of
        the reference example (``N replicates``, ``Stable voxels (>0)``, ``(>=0.5)``,
        ``(>=0.8)``, ``Mean stability (nonzero)``), ``Iterations (min)``, ``(median)``,
        ``(max)`` and ``Precision reached`` (worst relative error of a cluster-size cut),
        with coordinates ``resampling_policy`` and ``analyses_kept``; over (``policy``,
        ``replicate``, NaN past a configuration's replicates) ``replicate_support``
        (voxels), ``replicate_iterations``, ``replicate_precision``; ``full_support`` and
        ``cluster_label`` over ``voxel``; over ``cluster`` its peak and size, and over
        (``policy``, ``cluster``) ``cluster_survival`` (fraction of replicates whose
        support overlaps the cluster) and ``cluster_mean_stability``.
        :func:`~dmeta.diagnostics.sweep_summary.summary_table` gives the summary table.
    """
    from dmeta.ale import ALE

    check_run_params(random_state, "random_state", chunk_iters=chunk_iters,
                     n_resamples=n_resamples)
    th = Thresholds(voxel_thresh, alpha, n_iters, cluster_threshold, mask_coverage, precision,
                    max_iters)
    th.check(chunk_iters)
    result = ALE(kernel_fwhm=kernel_fwhm, sample_size=sample_size).fit(cset)
    ma = result.estimator.ma_
    n = len(ma.ids)
    configs = {}
    for policy in policies:
        values = {"leave_k_out": _as_list(k), "subsample": _as_list(target_n)}.get(policy, [None])
        for value in values:
            config = Config.build(policy, n, k=value if policy == "leave_k_out" else None,
                                  target_n=value if policy == "subsample" else None,
                                  n_resamples=n_resamples, random_state=random_state,
                                  refit=refit)
            configs[config.label] = config
    stores = run_supports(ma, {**configs, FULL_DATA: Config.full_data(n)}, th, random_state,
                          store, chunk_iters)
    ds = _sweep_dataset(ma, configs, stores, result.get_map("stat", "array"))
    ds.attrs.update({**th.identity(), "refit": refit, "n_analyses": n,
                     "random_state": random_state,
                     "full_support": int(ds["full_support"].sum()),
                     "full_data": as_attrs(iteration_row(stores[FULL_DATA]))})
    if store is not None:
        _write_result(ds, result, store)
    return ds


def _sweep_dataset(ma, configs, stores, stat):
    """The sweep's Dataset (see :func:`stability_sweep`) from its finished stores."""
    from dmeta.diagnostics import sweep_summary

    labels = list(configs)
    maps = {name: stores[name].stability() for name in labels}
    rows = pd.DataFrame([{**summary_row(maps[name], len(configs[name].subsets)),
                          **iteration_row(stores[name])} for name in labels],
                        index=pd.Index(labels, name="policy"))
    width = max(len(configs[name].subsets) for name in labels)

    def padded(values):
        out = np.full(width, np.nan)
        out[:len(values)] = values
        return out

    full = stores[FULL_DATA].support(0)
    cluster_label, clusters = sweep_summary.full_data_clusters(ma.space, full, stat)
    n_clusters = len(clusters)
    survival, mean_stability, support, iterations, precision = [], [], [], [], []
    for name in labels:
        st = stores[name]
        sizes, hits = sweep_summary.replicate_overlaps(cluster_label, st.supports(), n_clusters)
        support.append(padded(sizes))
        iterations.append(padded(st.iterations()))
        precision.append(padded(st.precision()))
        survival.append(hits)
        mean_stability.append(sweep_summary.cluster_mean_stability(cluster_label, maps[name],
                                                                   n_clusters))
    pr, prc = ("policy", "replicate"), ("policy", "cluster")
    ds = xr.Dataset(
        {"stability": (("policy", "voxel"), np.stack([maps[name] for name in labels])),
         "replicate_support": (pr, np.stack(support)),
         "replicate_iterations": (pr, np.stack(iterations)),
         "replicate_precision": (pr, np.stack(precision)),
         "full_support": ("voxel", full), "cluster_label": ("voxel", cluster_label),
         "cluster_x": ("cluster", clusters["x"].to_numpy()),
         "cluster_y": ("cluster", clusters["y"].to_numpy()),
         "cluster_z": ("cluster", clusters["z"].to_numpy()),
         "cluster_peak": ("cluster", clusters["peak ALE"].to_numpy()),
         "cluster_size": ("cluster", clusters["size (voxels)"].to_numpy()),
         "cluster_survival": (prc, np.stack(survival).reshape(len(labels), n_clusters)),
         "cluster_mean_stability": (prc, np.stack(mean_stability).reshape(len(labels),
                                                                         n_clusters))},
        coords={"policy": labels, "replicate": np.arange(width),
                "cluster": clusters["cluster"].to_numpy(dtype=np.int64),
                "resampling_policy": ("policy", [configs[name].policy for name in labels]),
                "analyses_kept": ("policy", [configs[name].kept for name in labels])},
    )
    return ds.merge(xr.Dataset.from_dataframe(rows))


def _write_result(ds, result, store):
    """Write the sweep as a result into ``store``, unless it holds another kind of result."""
    import zarr

    from dmeta.diagnostics.sweep_summary import sweep_result

    attrs = zarr.open_group(str(store), mode="r").attrs.asdict()
    held = attrs.get("attrs", {}).get("diagnostics", {})
    if "dmeta" in attrs and "stability_sweep" not in held:
        warn(f"{store}: holds a result other than a stability sweep; the sweep's result was "
             "not written there (dmeta.diagnostics.sweep_summary.sweep_result builds it)")
        return
    sweep_result(ds, result).to_zarr(store)


def _as_list(value):
    if value is None:
        return [None]
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
