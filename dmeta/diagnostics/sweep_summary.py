"""What people read of a stability sweep: tables, the stability-vs-target_n figure, and the
sweep as a :class:`~dmeta.MetaResult` that ``dmeta report`` renders.

Tables (names in the result written to a sweep's store):

* ``sweep_tab-summary``: per configuration, the reference example's stable-voxel counts and
  mean stability, and the Monte Carlo iterations (min/median/max over replicates) and the
  precision reached (worst relative error of a cluster-size cut).
* ``sweep_tab-replicates``: per replicate, its support size (voxels), iterations and
  precision.
* ``sweep_tab-targetN``: ``subsample`` configurations by ``target_n``, with the spread of the
  replicates' support sizes (mean, sd, 5th and 95th percentiles).
* ``sweep_tab-clusters``: per cluster of the full data's thresholded support, per
  configuration, the fraction of replicates in which the cluster survives (the replicate's
  support overlaps at least one of its voxels) and its mean stability over its voxels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dmeta.clusters import cluster_peaks, supra_threshold_clusters
from dmeta.results.thresholds import STABILITY_SUFFIX

PREFIX = "sweep_tab-"
SUMMARY, REPLICATES, TARGET_N, CLUSTERS = (f"{PREFIX}{part}" for part in
                                           ("summary", "replicates", "targetN", "clusters"))
LEVELS = {"Stable voxels (>0)": 0.0, "Stable voxels (>=0.5)": 0.5, "Stable voxels (>=0.8)": 0.8}
DIMS = ("voxel", "replicate", "cluster")


def summary_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per configuration: every variable of the sweep over ``policy`` alone."""
    return ds.drop_dims([d for d in DIMS if d in ds.dims]).to_dataframe()


def replicate_table(ds: xr.Dataset) -> pd.DataFrame:
    """One row per replicate: policy, replicate, support size, iterations, precision."""
    frame = ds[["replicate_support", "replicate_iterations", "replicate_precision"]]
    frame = frame.to_dataframe().dropna(subset=["replicate_support"]).reset_index()
    frame = frame.rename(columns={"replicate_support": "support (voxels)",
                                  "replicate_iterations": "iterations",
                                  "replicate_precision": "precision"})
    frame["support (voxels)"] = frame["support (voxels)"].astype(int)
    return frame[["policy", "replicate", "support (voxels)", "iterations", "precision"]]


def target_n_table(summary: pd.DataFrame, replicates: pd.DataFrame) -> pd.DataFrame:
    """Stable voxels and mean stability against ``target_n`` (``subsample`` rows only).

    Parameters
    ----------
    summary : DataFrame
        :func:`summary_table`.
    replicates : DataFrame
        :func:`replicate_table`.

    Returns
    -------
    DataFrame
        Indexed by ``target_n``: the stable-voxel counts and mean stability, and the
        replicates' support sizes (mean, sd, 5th and 95th percentiles); empty without
        ``subsample`` configurations.
    """
    rows = summary[summary["resampling_policy"] == "subsample"]
    out = []
    for policy, row in rows.iterrows():
        sizes = replicates.loc[replicates["policy"] == policy, "support (voxels)"]
        sizes = sizes.to_numpy(dtype=np.float64)
        out.append({
            "target_n": int(row["analyses_kept"]), "N replicates": int(row["N replicates"]),
            **{column: int(row[column]) for column in LEVELS},
            "Mean stability (nonzero)": float(row["Mean stability (nonzero)"]),
            "Support mean": float(sizes.mean()),
            "Support sd": float(sizes.std(ddof=1)) if sizes.size > 1 else 0.0,
            "Support 5%": float(np.percentile(sizes, 5)),
            "Support 95%": float(np.percentile(sizes, 95)),
        })
    if not out:
        return pd.DataFrame()
    return pd.DataFrame(out).set_index("target_n").sort_index()


def target_n_figure(table: pd.DataFrame, full_support: int | None = None) -> Figure:
    """Stable voxels and mean stability against ``target_n``, with the replicates' spread.

    Left: voxels stable at > 0, >= 0.5 and >= 0.8, and the replicates' mean support size
    with a band from their 5th to 95th percentile (the full data's support as a dashed line
    when given). Right: mean non-zero stability.

    Parameters
    ----------
    table : DataFrame
        :func:`target_n_table`.
    full_support : int, optional
        Voxels in the full data's thresholded support.
    """
    fig = Figure(figsize=(10, 3.8))
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    n = table.index.to_numpy()
    left.fill_between(n, table["Support 5%"], table["Support 95%"], color="0.8",
                      label="replicate support, 5-95%")
    left.plot(n, table["Support mean"], color="0.3", marker="o", label="replicate support, mean")
    for (column, level), colour in zip(LEVELS.items(), ("tab:blue", "tab:orange", "tab:red")):
        left.plot(n, table[column], marker="o", color=colour,
                  label=f"stability {'>' if level == 0 else '>='} {level:g}")
    if full_support is not None:
        left.axhline(full_support, color="k", linestyle="--", linewidth=1,
                     label=f"full data ({full_support})")
    for ax in (left, right):
        ax.set_xticks(n)
    left.set(xlabel="target_n (analyses kept)", ylabel="Voxels",
             title="Stable voxels against target_n")
    left.legend(fontsize=7)
    right.plot(n, table["Mean stability (nonzero)"], marker="o", color="tab:purple")
    right.set(xlabel="target_n (analyses kept)", ylabel="Mean stability (nonzero)",
              ylim=(0, 1), title="Mean stability against target_n")
    fig.tight_layout()
    return fig


def full_data_clusters(space, full_support, stat):
    """Clusters of the full data's support, largest first, with their ALE peaks.

    Returns
    -------
    labels : (n_voxels,) int
        0 outside the support, 1..n_clusters inside (1 the largest).
    frame : DataFrame
        Per cluster: ``cluster``, peak ``x``, ``y``, ``z`` (mm), ``peak ALE``, ``size
        (voxels)``.
    """
    volume_labels, sizes, _ = supra_threshold_clusters(space.to_volume(full_support * 1.0), 0.5)
    labels = space.from_volume(volume_labels).astype(np.int64)
    order = np.argsort(-sizes[1:], kind="stable") + 1  # old label of each new one
    relabel = np.zeros(sizes.size, dtype=np.int64)
    relabel[order] = np.arange(1, order.size + 1)
    labels = relabel[labels]
    clusters = np.arange(1, order.size + 1)
    peaks = cluster_peaks(stat, labels, clusters)
    xyz = space.ijk_to_mm(space.ijk[peaks]).reshape(-1, 3)
    return labels, pd.DataFrame({
        "cluster": clusters, "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
        "peak ALE": stat[peaks].astype(float),
        "size (voxels)": sizes[order].astype(int)})


def replicate_overlaps(labels, supports, n_clusters):
    """Support size of each replicate and the fraction of replicates overlapping each
    cluster (at least one of its voxels in the replicate's support).

    Parameters
    ----------
    labels : (n_voxels,) int
        Cluster labels (:func:`full_data_clusters`).
    supports : iterable of (n_voxels,) bool
    n_clusters : int

    Returns
    -------
    sizes : (n_replicates,) int
    survival : (n_clusters,) float
    """
    sizes, hits = [], np.zeros(n_clusters)
    for support in supports:
        sizes.append(int(support.sum()))
        hits += np.bincount(labels[support], minlength=n_clusters + 1)[1:] > 0
    return np.array(sizes, dtype=np.int64), hits / max(len(sizes), 1)


def cluster_mean_stability(labels, stability, n_clusters):
    """Mean of a stability map over each cluster's voxels."""
    total = np.bincount(labels, weights=stability, minlength=n_clusters + 1)[1:]
    count = np.bincount(labels, minlength=n_clusters + 1)[1:]
    return total / np.maximum(count, 1)


def cluster_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per cluster of the full data's support: peak, size and, per configuration,
    ``<policy> survival`` and ``<policy> mean stability``."""
    base = ds[["cluster_x", "cluster_y", "cluster_z", "cluster_peak", "cluster_size"]]
    frame = base.to_dataframe().rename(columns={
        "cluster_x": "x", "cluster_y": "y", "cluster_z": "z", "cluster_peak": "peak ALE",
        "cluster_size": "size (voxels)"})
    for policy in ds.policy.values:
        frame[f"{policy} survival"] = ds["cluster_survival"].sel(policy=policy).values
        frame[f"{policy} mean stability"] = ds["cluster_mean_stability"].sel(
            policy=policy).values
    return frame


def sweep_tables(ds: xr.Dataset) -> dict[str, pd.DataFrame]:
    """The four ``sweep_tab-*`` tables of a sweep."""
    summary = summary_table(ds)
    replicates = replicate_table(ds)
    return {SUMMARY: summary.reset_index(), REPLICATES: replicates,
            TARGET_N: target_n_table(summary, replicates).reset_index(),
            CLUSTERS: cluster_table(ds).reset_index()}


def sweep_result(ds: xr.Dataset, result):
    """The sweep as a result: ``result``'s maps and tables (the full data's ALE), each
    configuration's map ``<policy>_diag-ResampledStability``, the ``sweep_tab-*`` tables,
    and the sweep's parameters in ``attrs["diagnostics"]["stability_sweep"]``."""
    out = result.copy()
    out.add_maps({f"{policy}{STABILITY_SUFFIX}": ds["stability"].sel(policy=policy).values
                  .astype("float32") for policy in ds.policy.values})
    out.add_tables(sweep_tables(ds))
    out.attrs.setdefault("diagnostics", {})["stability_sweep"] = dict(ds.attrs)
    out.description = (out.description + " " + describe(ds)).strip()
    return out


def describe(ds: xr.Dataset) -> str:
    """Methods text of a sweep: configurations, thresholds, and the Monte Carlo nulls."""
    attrs = ds.attrs
    text = (f"Resampled stability was computed for {ds.sizes['policy']} configuration(s) "
            f"({', '.join(map(str, ds.policy.values))}): each replicate's ALE was thresholded "
            f"at cluster-forming p < {attrs['voxel_thresh']:g} and ")
    if attrs.get("cluster_threshold") is not None:
        return text + f"a cluster size above {attrs['cluster_threshold']} voxels."
    text += (f"cluster-size FWE alpha = {attrs['alpha']:g} ({attrs['refit']} refit), the "
             "stability of a voxel being the fraction of replicates in which it survives. ")
    summary = summary_table(ds)
    low, high = summary["Iterations (min)"].min(), summary["Iterations (max)"].max()
    span = f"{low:.0f}" if low == high else f"{low:.0f} to {high:.0f}"
    text += f"Monte Carlo nulls used {span} iterations"
    worst = summary["Precision reached"].max()
    if attrs.get("n_iters") == "auto":
        text += (f", each stopping at the first multiple of 100 iterations at which its "
                 f"cluster-size cut's 95% interval had a relative half-width of at most "
                 f"{attrs['precision']:g} (limit {attrs['max_iters']} iterations; worst "
                 f"reached {worst:.3f}).")
    else:
        text += f" (worst relative half-width of a cluster-size cut's 95% interval {worst:.3f})."
    return text
