"""What a result holds, sorted into the report's sections by NiMARE-style names alone.

The report never asks which estimator, corrector or diagnostic made a result: it reads the
map and table names (BIDS-like entities such as ``corr-FWE`` or ``diag-Jackknife``), so a
plain ALE, a corrected map set, a subtraction, diagnostics and stability maps all report
through the same code, and a result read back from Zarr reports like the one in memory.
"""

from dataclasses import dataclass, field

import numpy as np

from dmeta.modeled_activation import OUTSIDE_TABLE
from dmeta.results.thresholds import STABILITY_SUFFIX, ZMap, is_z_map  # shared with Jupyter

#: Corrected maps of a subtraction's group difference start with this (e.g. its ``...Size``
#: and ``...Mass`` cluster-level FWE maps).
DIFFERENCE_Z = "z_desc-group1MinusGroup2"
#: ContrastWorkflow's maps: thresholded at its alpha already (0 where a voxel did not
#: survive), so they are shown where non-zero rather than at a level of their own.
GATED_MAPS = ("z_desc-contrast", "z_desc-group1MainEffect", "z_desc-group2MainEffect",
              "z_desc-conjunction")
CONTRAST_TABLE = "contrast_tab-metadata"
#: ``<target><FAILSAFE_SUFFIX>``: one row per cluster (:class:`~dmeta.FailSafeN`).
FAILSAFE_SUFFIX = "_diag-FailSafeN"


@dataclass
class DiagnosticTable:
    """One ``<target>_diag-<Name>_tab-counts_tail-<tail>`` table (analysis x cluster)."""

    name: str
    target: str
    diagnostic: str
    tail: str


@dataclass
class Contents:
    """The result's maps, tables and nulls, by report section."""

    analyses: list = field(default_factory=list)
    foci: list = field(default_factory=list)
    outside_mask: list = field(default_factory=list)
    z_maps: list = field(default_factory=list)
    contrast_maps: list = field(default_factory=list)
    gated_maps: list = field(default_factory=list)
    contrast_tables: list = field(default_factory=list)
    cluster_tables: list = field(default_factory=list)
    diagnostic_tables: list = field(default_factory=list)
    stability_maps: list = field(default_factory=list)
    stability_tables: list = field(default_factory=list)
    failsafe_tables: list = field(default_factory=list)
    sweep_tables: list = field(default_factory=list)
    other_tables: list = field(default_factory=list)
    null_names: list = field(default_factory=list)


def _diagnostic_table(name):
    target, rest = name.split("_diag-", 1)
    diagnostic, _, tail = rest.partition("_tab-counts")
    return DiagnosticTable(name, target, diagnostic, tail.removeprefix("_tail-") or "positive")


def survey(result):
    """Sort a :class:`~dmeta.MetaResult`'s contents into report sections.

    Parameters
    ----------
    result : MetaResult

    Returns
    -------
    Contents
    """
    maps = list(result.maps.data_vars)
    contents = Contents()
    contents.gated_maps = [name for name in GATED_MAPS if name in maps]
    for name in maps:
        if name.endswith(STABILITY_SUFFIX):
            contents.stability_maps.append(name)
        elif is_z_map(name) and name not in GATED_MAPS:
            zmap = ZMap.of(name, maps)
            difference = zmap.corrected and name.startswith(DIFFERENCE_Z)
            (contents.contrast_maps if difference else contents.z_maps).append(zmap)
    # Corrected maps first: they are the results; uncorrected ones are context.
    contents.z_maps.sort(key=lambda z: not z.corrected)
    for name, table in result.tables.items():
        if name == "analyses" or name.startswith("analyses_"):
            contents.analyses.append(name)
        elif name == OUTSIDE_TABLE or name.startswith(f"{OUTSIDE_TABLE}_"):
            contents.outside_mask.append(name)
        elif name.startswith("foci") and {"x", "y", "z"} <= set(table.columns):
            contents.foci.append(name)
        elif name == CONTRAST_TABLE:
            contents.contrast_tables.append(name)
        elif name.endswith("_tab-clust"):
            contents.cluster_tables.append(name)
        elif "_diag-" in name and "_tab-counts" in name:
            contents.diagnostic_tables.append(_diagnostic_table(name))
        elif name.endswith(f"{STABILITY_SUFFIX}_tab-summary"):
            contents.stability_tables.append(name)
        elif name.endswith(FAILSAFE_SUFFIX):
            contents.failsafe_tables.append(name)
        elif name.startswith("sweep_tab-"):  # dmeta.diagnostics.sweep_summary
            contents.sweep_tables.append(name)
        else:
            contents.other_tables.append(name)
    if result.nulls is not None:
        contents.null_names = [
            name for name, var in result.nulls.data_vars.items()
            if var.ndim == 1 and np.issubdtype(var.dtype, np.number)
        ]
    return contents


def foci_sets(result, contents):
    """Foci in mm per group, from ``foci*`` tables or else the estimator still in memory.

    An estimator is only trusted for the analyses its result lists: an ALE object refitted
    to other data since (``ale.fit(a); ale.fit(b)``) would otherwise lend ``b``'s foci to
    ``a``'s report.

    Returns
    -------
    dict of str to ndarray, shape (n_foci, 3)
        Keyed by group label (``""`` for a single coordinate set, ``"group1"``/``"group2"``
        for a subtraction); empty when the result keeps no foci (e.g. read from Zarr).
    """
    tables = {group_label(name): result.tables[name] for name in contents.foci}
    if tables:
        return {label: t[["x", "y", "z"]].to_numpy(dtype=float) for label, t in tables.items()}
    estimator = result.estimator
    layouts = {"": getattr(estimator, "ma_", None), "group1": getattr(estimator, "ma1_", None),
               "group2": getattr(estimator, "ma2_", None)}
    analyses = {group_label(name): list(result.tables[name].index) for name in contents.analyses}
    return {label: ma.space.ijk_to_mm(ma.foci.ijk) for label, ma in layouts.items()
            if ma is not None and analyses.get(label) == list(ma.ids)}


def group_label(name):
    """``analyses_desc-group1`` -> ``group1``; ``analyses`` -> ``""``."""
    return name.partition("_desc-")[2]
