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
from dmeta.montecarlo import run_nulls
from dmeta.seeds import derive_seed
from dmeta.validation import check_choice, check_positive_int, check_run_params

REFITS = ("approximate", "full")

#: Replicates per task of the support stage.
CHUNK_REPLICATES = 16


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
        return cls(policy, k, kept, subset_schedule(n, kept, n_resamples, random_state), refit)

    @property
    def label(self):
        part = {"leave_1_out": "", "leave_k_out": f"_k-{self.k}",
                "subsample": f"_n-{self.kept}"}[self.policy]
        return self.policy + part + ("_refit-full" if self.refit == "full" else "")


@dataclass
class Thresholds:
    """What every replicate is thresholded with (see :class:`ResampledStability`)."""

    voxel_thresh: float = 0.001
    alpha: float = 0.05
    n_iters: int = 5000
    cluster_threshold: int | None = None
    mask_coverage: str = "gm"

    def check(self):
        z_cut(self.voxel_thresh)
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha must be in (0, 1), got {self.alpha!r}")
        check_positive_int("n_iters", self.n_iters)


def _fingerprint(ma, config, th):
    identity = {
        "space": ma.space.fingerprint(), "ids": list(ma.ids),
        "foci": ma.foci.counts.tolist(), "fwhm": ma.kernels.fwhms.tolist(),
        "policy": config.policy, "k": config.k, "kept": config.kept, "refit": config.refit,
        "subsets": hashlib.sha256(np.ascontiguousarray(config.subsets).tobytes()).hexdigest(),
        "thresholds": th.__dict__,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def _approximate(summary, n_voxels, analyses=None):
    """The approximate null (weights, bins) of the analyses at ``analyses`` (default all)."""
    maxima, histograms = summary.maxima, summary.histograms
    if analyses is not None:
        maxima, histograms = maxima[analyses], histograms.subset(analyses)
    bins = histogram_bins(maxima)
    return approximate_null(histograms, n_voxels, bins), bins


def run_stability(ma, configs, th, seed=None, store=None, chunk_iters=None,
                  chunk_replicates=CHUNK_REPLICATES):
    """Stability map (fraction of replicates supporting each voxel) per configuration.

    Every pending Monte Carlo block of every configuration (one null per configuration, or
    one per replicate with ``refit="full"``) is submitted as one set of tasks; then every
    pending block of replicates. Finished replicates are written to ``store`` as they
    arrive, and a rerun computes only the missing ones.
    """
    th.check()
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
    nulls = run_nulls(plans, th.n_iters, seeds, chunk_iters, store) if plans else {}

    def size_cut(key):
        if th.cluster_threshold is not None:
            return th.cluster_threshold
        sizes = nulls[key][0]["max_cluster_size"].values
        return float(np.percentile(sizes, 100.0 * (1.0 - th.alpha)))

    log_ma = log_complement(ma.matrix) if any(replicate_nulls.values()) else None
    blocks = {}
    for name, config in configs.items():
        pending = sorted(replicate_nulls[name])
        for a in range(0, len(pending), chunk_replicates):
            block = pending[a:a + chunk_replicates]
            cuts = [
                (*replicate_nulls[name][r],
                 size_cut(f"stability-{name}" if config.refit == "approximate"
                          else f"stability-{name}-r{r:05d}"))
                for r in block
            ]
            blocks[name, tuple(block)] = (log_ma, config.subsets[block], cuts, th.voxel_thresh,
                                          space)

    def write(key, supports):
        name, block = key
        stores[name].write(block, supports)

    run_blocks(replicate_supports, blocks, write, shared=(log_ma, space),
               desc="Stability replicates")
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


@fill_doc
def stability_sweep(cset: CoordinateSet, policies: Sequence[Policy] = ("leave_1_out",),
                    k: int | Sequence[int] | None = None,
                    target_n: int | Sequence[int] | None = None, n_resamples: int | None = None,
                    random_state: int | None = None, voxel_thresh: float = 0.001,
                    alpha: float = 0.05, n_iters: int = 5000,
                    refit: Literal["approximate", "full"] = "approximate",
                    cluster_threshold: int | None = None,
                    mask_coverage: Literal["gm", "brain"] = "gm",
                    store: str | os.PathLike | None = None, chunk_iters: int | None = None,
                    kernel_fwhm: float | None = None,
                    sample_size: int | None = None) -> xr.Dataset:
    """Resampled stability of an ALE under a grid of policies, as one resumable run.

    Each configuration is thresholded as by :class:`~dmeta.ResampledStability`; all of
    their Monte Carlo nulls, then all of their replicates, run as one set of Dask tasks.

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
    %(n_iters)s
    %(refit)s
    %(cluster_threshold_stability)s
    %(mask_coverage)s
    %(store_stability)s
    %(chunk_iters)s
    %(kernel_fwhm)s
    %(sample_size)s

    Returns
    -------
    xarray.Dataset
        ``stability`` over (``policy``, ``voxel``) and, over ``policy``, the summary columns
        of the reference example (``N replicates``, ``Stable voxels (>0)``, ``(>=0.5)``,
        ``(>=0.8)``, ``Mean stability (nonzero)``); ``ds.drop_vars("stability")
        .to_dataframe()`` is the summary table.
    """
    from dmeta.ale import ALE

    check_run_params(random_state, "random_state", n_iters=n_iters, chunk_iters=chunk_iters,
                     n_resamples=n_resamples)
    ma = ALE(kernel_fwhm=kernel_fwhm, sample_size=sample_size).fit(cset).estimator.ma_
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
    th = Thresholds(voxel_thresh, alpha, n_iters, cluster_threshold, mask_coverage)
    maps = run_stability(ma, configs, th, random_state, store, chunk_iters)
    labels = list(configs)
    rows = pd.DataFrame([summary_row(maps[name], len(configs[name].subsets)) for name in labels],
                        index=pd.Index(labels, name="policy"))
    ds = xr.Dataset(
        {"stability": (("policy", "voxel"), np.stack([maps[name] for name in labels]))},
        coords={"policy": labels},
    )
    return ds.merge(xr.Dataset.from_dataframe(rows))


def _as_list(value):
    if value is None:
        return [None]
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
