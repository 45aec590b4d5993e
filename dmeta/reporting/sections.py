"""The report's sections: each reads one kind of content and returns HTML, or "" if absent.

Sections take the :class:`~dmeta.reporting.contents.Contents` of the result, so what is shown
follows from what the result holds, never from how it was made.
"""

import numpy as np
import pandas as pd

from dmeta.clusters import supra_threshold_clusters
from dmeta.reporting import figures
from dmeta.reporting.contents import foci_sets, group_label
from dmeta.reporting.html import code, definitions, escape, paragraph, table
from dmeta.reporting.references import cited
from dmeta.results.thresholds import CORRECTED_ALPHA

NULL_LABELS = {
    "max_stat": ("Maximum ALE per iteration", "ALE"),
    "max_cluster_size": ("Largest cluster per iteration", "Cluster size (voxels)"),
    "max_cluster_mass": ("Heaviest cluster per iteration", "Cluster mass (ALE above threshold)"),
}
COLORBAR_LABELS = {
    "Jackknife": "Proportional contribution",
    "FocusCounter": "Foci in the cluster",
}


def inputs(page, result, contents):
    """Analyses, foci and sample sizes; a glass brain of the foci when the result has them."""
    parts = []
    for name in contents.analyses:
        frame = result.tables[name]
        label = group_label(name)
        items = [("Analyses", len(frame))]
        if "n_foci" in frame:
            items.append(("Foci", int(frame["n_foci"].sum())))
        if "sample_size" in frame:
            sizes = frame["sample_size"].dropna()
            if len(sizes):
                summary = (f"{sizes.min():g}-{sizes.max():g} "
                           f"(median {sizes.median():g}, total {sizes.sum():g})")
                items.append(("Sample sizes", summary))
        heading = f"<h3>{label}</h3>" if label else ""
        parts.append(heading + definitions(items) + table(frame))
    for name in contents.outside_mask:
        frame = result.tables[name]
        label = " ".join(filter(None, ["Foci outside the mask", group_label(name)]))
        parts.append(f"<h3>{escape(label)}</h3>" + paragraph(
            f"{len(frame)} foci have their centre outside the analysis mask "
            f"({int((~frame['in_volume']).sum())} of them beyond the edge of the volume). "
            "As in NiMARE, they are kept: each kernel counts at the in-mask voxels it "
            "reaches. dmeta.FocusFilter drops them on request.") + table(frame))
    foci = foci_sets(result, contents)
    if foci:
        parts.insert(0, page.figure("foci_glass-brain", figures.foci_glass_brain(foci),
                                    "Every focus in the analysis mask, on a glass brain."))
    elif parts:
        parts.append(paragraph("The result does not keep the foci, so no foci figure is "
                               "drawn.", "note"))
    return "".join(parts)


def methods(page, result, contents):
    """The methods text, its references and the recorded parameters, as run."""
    parts = [paragraph(result.description)] if result.description else []
    references = "".join(f"<li>{escape(ref)}</li>" for ref in cited(result.description))
    parts.append(f"<h3>References</h3><ol>{references}</ol>")
    groups = _parameter_groups(result)
    if groups:
        parts.append("<h3>Parameters</h3>" + "".join(
            f"<h4>{escape(title)}</h4>" + definitions(_flatten(items))
            for title, items in groups))
    return "".join(parts)


def _parameter_groups(result):
    """``(heading, parameters)`` for the estimator, each correction, the Monte Carlo null,
    anything else recorded, and the software versions.

    Apart, because the estimator's ``n_iters`` or ``seed`` and a corrector's are different
    settings: one flat list would let a reader take one for the other.
    """
    attrs = dict(result.attrs)
    name, params = attrs.pop("estimator", None), attrs.pop("params", None)
    groups = []
    if name or params:
        groups.append((f"Estimator: {name}" if name else "Estimator", params or {}))
    for suffix, record in attrs.pop("corrections", {}).items():
        record = dict(record)
        groups.append((f"Correction: {record.pop('name', 'corrector')} ({suffix})", record))
    if result.nulls is not None:
        # The iterations the stored null holds, whatever its attributes say.
        held = result.nulls.sizes.get("iteration", 0)
        groups.append(("Monte Carlo null", {**result.nulls.attrs, "n_iters": held}))
    versions = attrs.pop("versions", None)
    if attrs:
        groups.append(("Other", attrs))
    if versions:
        groups.append(("Software versions", versions))
    return groups


def _flatten(attrs, prefix=""):
    items = []
    for key, value in attrs.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def maps(page, result, contents):
    """Each z map on axial slices, showing only the voxels significant at its level
    (:class:`~dmeta.results.thresholds.ZMap`, as in the Jupyter summary)."""
    parts = []
    for zmap in contents.z_maps:
        z = result.get_map(zmap.name, return_type="array")
        significant = zmap.significant(result)
        level = "corrected" if zmap.corrected else "uncorrected"
        count = int(significant.sum())
        if not count:
            parts.append(f"<p>{code(zmap.name)}: no voxel with {level} "
                         f"{escape(zmap.criterion)}.</p>")
            continue
        shown = np.where(significant, z, 0.0).astype(np.float32)
        threshold = 0.999 * float(np.abs(shown[significant]).min())
        fig = figures.stat_map(result.space.to_image(shown), zmap.name, threshold,
                               vmax=float(np.abs(shown).max()))
        caption = (f"{zmap.name}: {count} voxels with {level} {zmap.criterion} "
                   f"(|z| > {threshold:.2f}).")
        parts.append(page.figure(f"map_{zmap.name}", fig, caption))
    return "".join(parts)


def clusters(page, result, contents):
    """Cluster tables: peaks, subpeaks and sizes of each diagnosed map."""
    return "".join(table(result.tables[name], name) for name in contents.cluster_tables)


def diagnostics(page, result, contents):
    """Each analysis's part in each cluster, as a heatmap and as the table."""
    parts = []
    for diag in contents.diagnostic_tables:
        frame = result.tables[diag.name]
        values = frame.set_index("id") if "id" in frame else frame
        values = values.apply(pd.to_numeric, errors="coerce").fillna(0.0)
        if values.size:
            top = float(values.to_numpy().max())
            label = COLORBAR_LABELS.get(diag.diagnostic, "Value")
            fig = figures.heatmap(values, f"{diag.diagnostic}, {diag.tail} tail", label,
                                  vmax=1.0 if top <= 1 else top)
            parts.append(page.figure(f"diag_{diag.name}", fig,
                                     f"{diag.diagnostic} of {diag.target} ({diag.tail} "
                                     "tail): analyses by cluster."))
        parts.append(table(frame, diag.name))
    return "".join(parts)


def nulls(page, result, contents):
    """Histograms of the Monte Carlo null with the FWE critical and observed values."""
    parts = []
    for name in contents.null_names:
        values = result.nulls[name].values
        title, xlabel = NULL_LABELS.get(name, (name, name))
        # Exceeding the (1 - alpha) quantile of the maxima is significant at FWE alpha.
        critical = float(np.quantile(values, 1 - CORRECTED_ALPHA))
        lines = [(critical, f"FWE p < {CORRECTED_ALPHA:g} critical value", "tab:red")]
        observed = _observed(result, name)
        if observed is not None:
            lines.append((observed, "observed", "tab:blue"))
        if name == "max_stat" and "cluster_forming_stat" in result.nulls.attrs:
            lines.append((float(result.nulls.attrs["cluster_forming_stat"]),
                          "cluster-forming threshold", "tab:green"))
        fig = figures.null_histogram(values, title, xlabel, lines)
        parts.append(page.figure(f"null_{name}", fig,
                                 f"{title} over {len(values)} Monte Carlo iterations."))
    return "".join(parts)


def _observed(result, name):
    """The observed counterpart of a null summary, where the maps allow computing it."""
    if "stat" not in result.maps:
        return None
    stat = result.get_map("stat", return_type="array")
    if name == "max_stat":
        return float(stat.max())
    thresh = result.nulls.attrs.get("cluster_forming_stat")
    if thresh is None or name not in ("max_cluster_size", "max_cluster_mass"):
        return None
    _, sizes, masses = supra_threshold_clusters(result.space.to_volume(stat), float(thresh))
    return float((sizes if name == "max_cluster_size" else masses).max())


def stability(page, result, contents):
    """Stability maps, their distribution and the resampling summary."""
    parts = [table(result.tables[name], name) for name in contents.stability_tables]
    for name in contents.stability_maps:
        values = result.get_map(name, return_type="array")
        if not (values > 0).any():
            parts.append(f"<p>{code(name)}: no voxel was significant in any replicate.</p>")
            continue
        fig = figures.stat_map(result.get_map(name), name, threshold=0.0, symmetric=False,
                               vmin=0.0, vmax=1.0, cmap="hot")
        parts.append(page.figure(f"map_{name}", fig, f"{name}: fraction of replicates in "
                                 "which each voxel is significant."))
        fig = figures.stability_histogram(values, "Non-zero stability values")
        parts.append(page.figure(f"hist_{name}", fig, f"Distribution of {name}."))
    return "".join(parts)


def other_tables(page, result, contents):
    """Any table no other section shows."""
    return "".join(table(result.tables[name], name) for name in contents.other_tables)


#: Report order: what went in, how, what came out, how sure we are.
SECTIONS = [
    ("Inputs", inputs),
    ("Methods", methods),
    ("Maps", maps),
    ("Clusters", clusters),
    ("Diagnostics", diagnostics),
    ("Monte Carlo null", nulls),
    ("Stability", stability),
    ("Other tables", other_tables),
]
