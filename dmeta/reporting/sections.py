"""The report's sections: each reads one kind of content and returns HTML, or "" if absent.

Sections take the :class:`~dmeta.reporting.contents.Contents` of the result, so what is shown
follows from what the result holds, not from how it was made; the one exception is
:func:`balanced`, whose maps have no settled names yet.
"""

import numpy as np
import pandas as pd

from dmeta.clusters import supra_threshold_clusters
from dmeta.diagnostics.tables import cluster_table
from dmeta.montecarlo import adaptive
from dmeta.montecarlo.adaptive import threshold_record
from dmeta.reporting import figures
from dmeta.reporting.contents import FAILSAFE_SUFFIX, foci_sets, group_label
from dmeta.reporting.html import code, definitions, escape, paragraph, table
from dmeta.reporting.references import cited
from dmeta.reporting.sweep import sweep
from dmeta.results import MetaResult
from dmeta.results.thresholds import CORRECTED_ALPHA, ZMap, is_z_map

PREDICTIVE, MONTECARLO = "corr-FWE_method-predictive", "corr-FWE_method-montecarlo"
BALANCED = "BalancedALESubtraction"

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
    adaptive = adaptive_runs(result)
    if adaptive:
        parts.append("<h3>Monte Carlo precision</h3>" + definitions(adaptive))
    references = "".join(f"<li>{escape(ref)}</li>" for ref in cited(result.description))
    parts.append(f"<h3>References</h3><ol>{references}</ol>")
    groups = _parameter_groups(result)
    if groups:
        parts.append("<h3>Parameters</h3>" + "".join(
            f"<h4>{escape(title)}</h4>" + definitions(_flatten(items))
            for title, items in groups))
    return "".join(parts)


#: Records of adaptive runs kept in ``result.attrs`` beside the corrections, and their labels.
ADAPTIVE_RECORDS = {"voxelwise_null": "Voxelwise Monte Carlo null",
                    "permutations": "Permutations"}


def adaptive_runs(result):
    """``(label, sentence)`` for each run that stopped at a stated precision
    (``n_iters="auto"``): the iterations used and the precision reached."""
    attrs = result.attrs
    records = [(label, attrs.get(key)) for key, label in ADAPTIVE_RECORDS.items()]
    for suffix, record in attrs.get("corrections", {}).items():
        label = f"{record.get('name', 'Correction')} ({suffix})"
        records += [(label, record),
                    (f"{label}, cluster-forming threshold", threshold_record(record))]
    return [(label, line) for label, line in
            ((label, adaptive.summary(record)) for label, record in records) if line]


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
    for key, label in ADAPTIVE_RECORDS.items():
        if key in attrs:
            groups.append((label, attrs.pop(key)))
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
    return "".join(_zmap_figure(page, result, zmap) for zmap in contents.z_maps)


def _zmap_figure(page, result, zmap):
    level = "corrected" if zmap.corrected else "uncorrected"
    return _significant_figure(page, result, zmap.name, zmap.significant(result),
                               f"with {level} {zmap.criterion}")


def _significant_figure(page, result, name, significant, what):
    """Axial slices of map ``name`` where ``significant``, or a sentence if nowhere."""
    count = int(significant.sum())
    if not count:
        return f"<p>{code(name)}: no voxel {escape(what)}.</p>"
    shown = np.where(significant, result.get_map(name, return_type="array"), 0.0)
    shown = shown.astype(np.float32)
    threshold = 0.999 * float(np.abs(shown[significant]).min())
    fig = figures.stat_map(result.space.to_image(shown), name, threshold,
                           vmax=float(np.abs(shown).max()))
    symbol = "z" if is_z_map(name) else "value"
    caption = f"{name}: {count} voxels {what} (|{symbol}| > {threshold:.2f})."
    return page.figure(f"map_{name}", fig, caption)


def contrast(page, result, contents):
    """The group difference's corrected maps and the contrast workflow's thresholded maps,
    each with a table of its clusters."""
    parts = []
    for zmap in contents.contrast_maps:
        significant = zmap.significant(result)
        parts += [_zmap_figure(page, result, zmap),
                  _clusters_of(result, zmap.name, significant)]
    if contents.gated_maps:
        alphas = [result.tables[name]["alpha"].iloc[0] for name in contents.contrast_tables]
        at = f" at alpha = {alphas[0]:g}" if alphas else ""
        parts.append(paragraph(
            f"Each group's main effect was corrected and thresholded{at}; the contrast was "
            "tested only where a main effect survived (group 1 > group 2 within group 1's, "
            "group 2 > group 1 within group 2's) and thresholded at the same alpha; the "
            "conjunction is the voxelwise minimum of the two main effects. These maps are "
            "0 where a voxel did not survive, so every non-zero voxel is shown."))
        for name in contents.gated_maps:
            significant = result.get_map(name, return_type="array") != 0
            parts += [_significant_figure(page, result, name, significant, "surviving"),
                      _clusters_of(result, name, significant)]
    parts += [table(result.tables[name], name) for name in contents.contrast_tables]
    return "".join(parts)


def _clusters_of(result, name, significant):
    """Clusters of the voxels shown for ``name`` (peaks of a cluster-level map from its
    uncorrected map), unless a diagnostic's table of them is in the Clusters section."""
    if not significant.any() or f"{name}_tab-clust" in result.tables:
        return ""
    shown = np.where(significant, result.get_map(name, return_type="array"), 0.0)
    only_shown = result.maps.assign({name: ("voxel", shown.astype(np.float32))})
    frame, _ = cluster_table(MetaResult(only_shown, result.space), name)
    return table(frame, f"Clusters of {name}")


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


def failsafe(page, result, contents):
    """How many noise analyses each cluster withstands (fail-safe N), with what was run."""
    parts = []
    for name in contents.failsafe_tables:
        frame = result.tables[name]
        record = result.attrs.get("diagnostics", {}).get(name, {})
        ran = "; ".join(text for key, text in (
            ("max_noise", f"up to {record.get('max_noise')}"),
            ("n_iters", f"{record.get('n_iters')} Monte Carlo iterations per refitted null"),
            ("seed", f"seed {record.get('seed')}")) if key in record)
        alpha = record.get("alpha", CORRECTED_ALPHA)
        flagged = int(frame["Survives max_noise"].sum()) if "Survives max_noise" in frame else 0
        parts.append(paragraph(
            f"Fail-safe N of the clusters of {name.removesuffix(FAILSAFE_SUFFIX)} "
            "(Acar et al., 2018): noise analyses, with random in-mask foci and numbers of foci "
            "and sample sizes resampled from the data, were added to the meta-analysis"
            + (f" ({ran})" if ran else "") + "; ALE and its Monte Carlo null were refitted at "
            "each number tested. A cluster's fail-safe N is the largest number of noise "
            f"analyses at which the refit still has a cluster with FWE p < {alpha:g} at its "
            "peak, found by bisection, which assumes that more noise never rescues a cluster."
            + (f" {flagged} cluster(s) withstood the most noise analyses tested: their "
               "fail-safe N is at least that." if flagged else "")))
        parts.append(table(frame, name))
    return "".join(parts)


def nulls(page, result, contents):
    """Histograms of the Monte Carlo null with the FWE critical and observed values."""
    parts = []
    for name in contents.null_names:
        values = result.nulls[name].values
        title, xlabel = NULL_LABELS.get(name, (name, name))
        # Exceeding the (1 - alpha) quantile of the maxima is significant at FWE alpha.
        critical = _critical(values)
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


def _critical(values):
    """FWE critical value of a null of maxima: exceeding its (1 - alpha) quantile is
    significant at FWE alpha."""
    return float(np.quantile(values, 1 - CORRECTED_ALPHA))


def predictive(page, result, contents):
    """The FWE cutoffs predicted instead of a Monte Carlo null, what passes them, and the
    Monte Carlo critical values when the result has a null as well."""
    corrections = result.attrs.get("corrections", {})
    record, montecarlo = corrections.get(PREDICTIVE), corrections.get(MONTECARLO)
    if record is None:
        return ""
    levels = {"Voxel level (ALE)": ("level-voxel", record["voxel_cutoff"], "max_stat"),
              "Cluster size (voxels)": ("desc-size_level-cluster",
                                        record["cluster_size_cutoff"], "max_cluster_size")}
    null = result.nulls if montecarlo else None
    same_clusters = montecarlo and not montecarlo["vfwe_only"] and (
        montecarlo["voxel_thresh"] == record["voxel_thresh"])
    rows = []
    for label, (level, cutoff, null_name) in levels.items():
        passing = ZMap.of(f"z_{level}_{PREDICTIVE}", result.maps).significant(result)
        row = {"level": label, "predicted cutoff": cutoff, "voxels passing": int(passing.sum())}
        if null is not None:
            comparable = null_name == "max_stat" or same_clusters
            row[f"Monte Carlo critical value ({null.sizes['iteration']} iterations)"] = (
                _critical(null[null_name].values) if comparable else None)
        rows.append(row)
    text = paragraph(
        "Family-wise error cutoffs predicted from the numbers of experiments, subjects and "
        "foci by the XGBoost models of Frahm et al. (2025), trained on datasets of 10 to 150 "
        "experiments, instead of a Monte Carlo null. Clusters are formed at uncorrected "
        f"p < {record['voxel_thresh']:g} (ALE > {record['cluster_forming_stat']:.4g}). A "
        "cutoff gives no corrected p-value: the predictive maps keep the uncorrected values "
        "where a voxel passes, and 0 (p = 1) elsewhere.")
    return text + table(pd.DataFrame(rows).set_index("level"))


def balanced(page, result, contents):
    """Every map of a balanced subtraction with its range; its ``desc-balanced`` maps drawn.

    Read from the estimator's name, unlike other sections: the balanced subtraction's map
    names are not settled yet, so its maps are listed whatever they are called.
    """
    if result.attrs.get("estimator") != BALANCED:
        return ""
    names = sorted(result.maps.data_vars, key=lambda n: "desc-balanced" not in n)
    rows = []
    for name in names:
        values = result.get_map(name, return_type="array")
        finite = values[np.isfinite(values)]
        rows.append({"map": name, "min": finite.min() if finite.size else None,
                     "max": finite.max() if finite.size else None,
                     "non-zero voxels": int((finite != 0).sum())})
    parts = [paragraph(
        "A balanced subtraction compares the groups through random subsamples of equal size, "
        "so that the larger group does not win wherever both converge. The result's maps, "
        "with their ranges over the mask (desc-balanced maps first and drawn below):"),
        table(pd.DataFrame(rows).set_index("map"))]
    for name in names:
        significant = np.nan_to_num(result.get_map(name, return_type="array")) != 0
        if "desc-balanced" in name and significant.any():
            parts.append(_significant_figure(page, result, name, significant, "non-zero"))
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
    ("Group contrast", contrast),
    ("Balanced subtraction", balanced),
    ("Clusters", clusters),
    ("Diagnostics", diagnostics),
    ("Fail-safe N", failsafe),
    ("Predictive FWE cutoffs", predictive),
    ("Monte Carlo null", nulls),
    ("Stability", stability),
    ("Resampling sweep", sweep),
    ("Other tables", other_tables),
]
