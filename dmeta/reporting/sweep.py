"""The report's "Resampling sweep" section: the ``sweep_tab-*`` tables of a stability sweep
(:mod:`dmeta.diagnostics.sweep_summary`), the stability-vs-target_n figure, and the Monte
Carlo iterations and precision behind the replicates' thresholds."""

import numpy as np

from dmeta.diagnostics.sweep_summary import CLUSTERS, SUMMARY, TARGET_N, target_n_figure
from dmeta.reporting.html import paragraph, table


def sweep(page, result, contents):
    """Summary, stability against target_n (table and figure), per-cluster stability, and
    the iterations and precision the nulls reached."""
    tables = result.tables
    if SUMMARY not in tables:
        return ""
    summary = tables[SUMMARY].set_index("policy")
    record = result.attrs.get("diagnostics", {}).get("stability_sweep", {})
    parts = [paragraph(_iterations_text(summary, record)), table(summary, "Summary")]
    target_n = tables.get(TARGET_N)
    if target_n is not None and len(target_n):
        target_n = target_n.set_index("target_n")
        parts.append(table(target_n, "Stability against target_n (subsample)"))
        if len(target_n) > 1:
            full = record.get("full_support")
            fig = target_n_figure(target_n, full)
            parts.append(page.figure(
                "sweep_target-n", fig,
                "Voxels stable at > 0, >= 0.5 and >= 0.8 and replicates' support size (mean, "
                "5-95% band) against the analyses kept; right: mean non-zero stability."))
    clusters = tables.get(CLUSTERS)
    if clusters is not None:
        parts.append(paragraph(
            "Clusters of the full data, thresholded as each replicate is but with every "
            "analysis. A cluster survives in a replicate when the replicate's thresholded "
            "support overlaps at least one of its voxels; survival is the fraction of "
            "replicates in which it does, mean stability the stability map averaged over "
            "the cluster's voxels."))
        parts.append(table(clusters.set_index("cluster"), "Per-cluster stability")
                     if len(clusters) else paragraph("The full data has no significant "
                                                     "cluster.", "note"))
    return "".join(parts)


def _iterations_text(summary, record):
    """One sentence on the Monte Carlo iterations and precision reached."""
    iterations = summary[["Iterations (min)", "Iterations (max)"]].to_numpy(dtype=float)
    if not np.isfinite(iterations).any():
        return "The replicates were thresholded at a fixed cluster size, without Monte Carlo."
    low, high = np.nanmin(iterations), np.nanmax(iterations)
    worst = float(np.nanmax(summary["Precision reached"].to_numpy(dtype=float)))
    text = (f"Monte Carlo nulls of {low:.0f} to {high:.0f} iterations set the cluster-size "
            f"cuts; the worst relative half-width of a cut's 95% interval was {worst:.3f}")
    if record.get("n_iters") == "auto":
        met = "met" if worst <= record["precision"] else "not met everywhere"
        text += (f" (n_iters='auto': precision {record['precision']:g} asked for, {met}; "
                 f"limit {record['max_iters']} iterations)")
    return text + "."
