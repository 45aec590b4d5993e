"""Resampling stability as Dask work: Monte Carlo nulls, then replicate supports, for any
number of resampling configurations at once, kept in Zarr so an interrupted sweep resumes.
"""

import hashlib
import json
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from distributed import as_completed

from dmeta.approximate_null import approximate_null, histogram_bins
from dmeta.compute import session
from dmeta.diagnostics.null import ResamplingNullPlan, sample_space, stat_cut, z_cut
from dmeta.diagnostics.replicates import log_complement, replicate_supports
from dmeta.diagnostics.resampling import subset_schedule, subset_size
from dmeta.diagnostics.store import SupportStore
from dmeta.errors import InputError
from dmeta.montecarlo import run_nulls
from dmeta.seeds import derive_seed
from dmeta.validation import check_choice, check_positive_int

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


def _approximate(matrix, n_voxels):
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    return approximate_null(matrix, n_voxels, bins), bins


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
    full_null = _approximate(ma.matrix, space.n_voxels)
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
                r: _approximate(ma.matrix[config.subsets[r]], space.n_voxels) for r in pending
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

    jobs = []
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
            jobs.append((name, block, config.subsets[block], cuts))
    if jobs:
        with session() as client:
            [log_ma] = client.scatter([log_complement(ma.matrix)], broadcast=True, hash=False)
            [space_f] = client.scatter([space], broadcast=True, hash=False)
            futures = {
                client.submit(replicate_supports, log_ma, subsets, cuts, th.voxel_thresh,
                              space_f, pure=False): (name, block)
                for name, block, subsets, cuts in jobs
            }
            try:
                for future in as_completed(list(futures)):
                    name, block = futures[future]
                    stores[name].write(block, future.result())
                    future.release()
            finally:
                client.cancel(list(futures))
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


def stability_sweep(cset, policies=("leave_1_out",), k=None, target_n=None, n_resamples=None,
                    random_state=None, voxel_thresh=0.001, alpha=0.05, n_iters=5000,
                    refit="approximate", cluster_threshold=None, mask_coverage="gm",
                    store=None, chunk_iters=None, kernel_fwhm=None, sample_size=None):
    """Resampled stability of an ALE under a grid of policies, as one resumable run.

    Parameters
    ----------
    cset : CoordinateSet
    policies : sequence of {"leave_1_out", "leave_k_out", "subsample"}
    k : int or sequence of int, optional
        Analyses left out, one configuration per value (``leave_k_out``).
    target_n : int or sequence of int, optional
        Analyses kept, one configuration per value (``subsample``).
    n_resamples, random_state, voxel_thresh, alpha, n_iters, refit, cluster_threshold, \
mask_coverage
        As for :class:`ResampledStability`; ``random_state`` also seeds the Monte Carlo.
    store : str or Path, optional
        Zarr store keeping nulls and finished replicates; rerunning resumes.
    chunk_iters : int, optional
        Monte Carlo iterations per task.
    kernel_fwhm, sample_size
        As for :class:`dmeta.ALE`.

    Returns
    -------
    xarray.Dataset
        ``stability`` over (``policy``, ``voxel``) and, over ``policy``, the summary columns
        of the reference example (``N replicates``, ``Stable voxels (>0)``, ``(>=0.5)``,
        ``(>=0.8)``, ``Mean stability (nonzero)``); ``ds.drop_vars("stability")
        .to_dataframe()`` is the summary table.
    """
    from dmeta.ale import ALE

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
