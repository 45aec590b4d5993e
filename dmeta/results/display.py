"""A compact HTML summary of a :class:`~dmeta.results.result.MetaResult`, for Jupyter.

An analyst who ends a notebook cell with a result should see what it holds without
knowing the map naming scheme: which estimator made it and with which parameters, which
corrections were applied, how many voxels each z map shows as significant (at the levels
of :mod:`dmeta.results.thresholds`, as in the HTML report), how many voxels each stability
map shows as stable, which tables and nulls it carries, and thumbnails of the main z map
and of each stability map. Everything here reads the result's own attributes, so a result
read back with :func:`dmeta.open_result` (which has no fitted estimator) is summarised the
same way as a fresh one.

Every piece of text taken from the result is escaped: map, table and parameter names come
from users and files, and a stray ``<`` must not break (or script) the notebook page.
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np

from dmeta.results.thresholds import STABILITY_SUFFIX, ZMap

__all__ = ["result_html"]

#: The map kinds an estimator writes, in the order they are shown within a group.
MAP_KINDS = ("stat", "p", "z", "logp")
N_TABLE_ROWS = 5
NULL_PERCENTILE = 95

_STYLE = """<style>
.dmeta-result {font-size: 0.9em; line-height: 1.35; max-width: 60em}
.dmeta-result h4 {margin: 0.6em 0 0.2em}
.dmeta-result table {border-collapse: collapse; margin: 0.2em 0}
.dmeta-result td, .dmeta-result th {padding: 0.1em 0.6em; text-align: left}
.dmeta-result .dmeta-group td {font-style: italic; border-top: 1px solid #ccc}
.dmeta-result .dmeta-num {text-align: right}
.dmeta-result img {max-width: 100%}
</style>"""


def result_html(result) -> str:
    """Render a result as a self-contained HTML fragment (styles and figure inline).

    Parameters
    ----------
    result : MetaResult

    Returns
    -------
    str
        A ``<div class="dmeta-result">`` with the sections described in the module
        docstring; sections with nothing to say (no corrections, no nulls) are left out.
    """
    parts = [
        _header(result),
        _corrections(result.attrs.get("corrections") or {}),
        _maps(result),
        _tables(result.tables),
        _nulls(result.nulls),
        _figure(result),
        _description(result.description),
    ]
    return f'{_STYLE}<div class="dmeta-result">{"".join(parts)}</div>'


def _text(value) -> str:
    """Escape any value for HTML, floats shortened so a parameter line stays readable."""
    if isinstance(value, float):
        value = f"{value:.4g}"
    return escape(str(value))


def _key_values(mapping) -> str:
    """``key=value`` pairs in ``<code>``, joined by commas (an empty mapping gives "")."""
    return ", ".join(f"<code>{_text(k)}={_text(v)}</code>" for k, v in mapping.items())


def _header(result) -> str:
    attrs = result.attrs
    params = _key_values(attrs.get("params") or {}) or "no parameters recorded"
    space = result.space
    shape = "&times;".join(str(n) for n in space.shape)
    return (
        f"<h4>MetaResult: {_text(attrs.get('estimator', 'unknown estimator'))}</h4>"
        f"<div>{params}</div>"
        f"<div>space <code>{_text(space.name)}</code>: {shape} grid, "
        f"{space.n_voxels:,} in-mask voxels</div>"
    )


def _corrections(corrections: dict) -> str:
    if not corrections:
        return ""
    rows = "".join(
        f"<li><code>{_text(key)}</code>: {_key_values(params)}</li>"
        for key, params in corrections.items()
    )
    return f"<h4>Corrections</h4><ul>{rows}</ul>"


def _split_map_name(name: str) -> tuple[str, str]:
    """``(kind, suffix)`` of a map name, e.g. ``("z", "level-voxel_corr-FWE_…")``.

    Maps made by diagnostics (``…_diag-…``) and maps of an unknown kind get kind ``""``:
    their values are not z scores even when the name starts with ``z_``.
    """
    kind, _, suffix = name.partition("_")
    if kind not in MAP_KINDS or "_diag-" in name:
        return "", name
    return kind, suffix


def _phrase(text: str) -> str:
    """Escaped, on one line: ``p < 0.05`` -> ``p&nbsp;&lt;&nbsp;0.05``."""
    return _text(text).replace(" ", "&nbsp;")


def _z_count(result, name: str) -> str:
    """Significant voxels; split by sign only when some are negative (subtractions)."""
    zmap = ZMap.of(name, result.maps)
    significant = zmap.significant(result)
    text = f"{int(significant.sum()):,} voxels {_phrase(zmap.criterion)}"
    z = result.get_map(name, "array")[significant]
    below = int((z < 0).sum())
    return text + (f" ({int((z > 0).sum()):,} {_phrase('z > 0')}, {below:,} "
                   f"{_phrase('z < 0')})" if below else "")


def _stable_count(values: np.ndarray) -> str:
    """Stable voxels at the levels of :func:`dmeta.stability_sweep`'s summary table."""
    from dmeta.diagnostics.sweep import summary_row

    row = summary_row(values, n_replicates=0)  # only its stable-voxel columns are shown
    counts = ", ".join(f"{count:,} {_phrase(key.removeprefix('Stable voxels '))}"
                       for key, count in row.items() if key.startswith("Stable voxels"))
    return f"stable voxels: {counts}; mean non-zero {row['Mean stability (nonzero)']:.2f}"


def _maps(result) -> str:
    """Maps grouped by what follows their kind (uncorrected, each correction, each group)."""
    groups: dict[str, list[str]] = {}
    for name in result.maps.data_vars:
        kind, suffix = _split_map_name(name)
        groups.setdefault("other maps" if not kind else suffix or "uncorrected", []).append(name)
    rows = []
    for label, names in groups.items():
        rows.append(f'<tr class="dmeta-group"><td colspan="2">{_text(label)}</td></tr>')
        for name in names:
            count = ""
            if _split_map_name(name)[0] == "z":
                count = _z_count(result, name)
            elif name.endswith(STABILITY_SUFFIX):
                count = _stable_count(result.get_map(name, "array"))
            rows.append(f"<tr><td><code>{_text(name)}</code></td><td>{count}</td></tr>")
    return f"<h4>Maps ({len(result.maps.data_vars)})</h4><table>{''.join(rows)}</table>"


def _tables(tables: dict) -> str:
    if not tables:
        return ""
    rows = []
    for name, table in tables.items():
        n_rows, n_cols = table.shape
        rows.append(f"<tr><td><code>{_text(name)}</code></td>"
                    f'<td class="dmeta-num">{n_rows:,} rows &times; {n_cols} columns</td></tr>')
    previews = "".join(
        f"<div><code>{_text(name)}</code>, first rows:</div>"
        + table.head(N_TABLE_ROWS).to_html(escape=True, border=0, float_format="{:.4g}".format)
        for name, table in tables.items()
        if ("tab-clust" in name or name.endswith(f"{STABILITY_SUFFIX}_tab-summary"))
        and not table.empty
    )
    return f"<h4>Tables ({len(tables)})</h4><table>{''.join(rows)}</table>{previews}"


def _nulls(nulls) -> str:
    if nulls is None:
        return ""
    n_iters = nulls.sizes.get("iteration", 0)
    rows = "".join(
        f"<tr><td><code>{_text(name)}</code></td><td class='dmeta-num'>"
        f"{_text(float(np.nanpercentile(np.asarray(var.values), NULL_PERCENTILE)))}</td></tr>"
        for name, var in nulls.data_vars.items()
        if var.size
    )
    return (f"<h4>Null distribution: {n_iters:,} iterations</h4>"
            f"<table><tr><th>variable</th><th>{NULL_PERCENTILE}th percentile</th></tr>"
            f"{rows}</table>")


def _description(description: str) -> str:
    if not description:
        return ""
    return f"<details><summary>Methods text</summary><p>{_text(description)}</p></details>"


# -- the thumbnails ---------------------------------------------------------------------


def _main_z_map(result) -> str | None:
    """The z map a reader would look at first: cluster-level corrected, then any corrected
    one, then the first z map (``z`` or the subtraction's group difference); among these,
    the first with significant voxels, so the thumbnail is not blank needlessly."""
    z_maps = [name for name in result.maps.data_vars if _split_map_name(name)[0] == "z"]
    ranked = sorted(z_maps, key=lambda name: ("level-cluster" not in name, "corr-" not in name))
    for name in ranked:
        if ZMap.of(name, result.maps).significant(result).any():
            return name
    return ranked[0] if ranked else None


def _projections(volume: np.ndarray, affine: np.ndarray) -> list[np.ndarray]:
    """Signed maximum-intensity projections (sagittal, coronal, axial), superior up.

    Each axis is flipped where the affine runs against the world axis, so left is on the
    left (neurological view) whatever the storage order; the value of larger magnitude
    wins, so the negative tail of a subtraction shows too.
    """
    for axis in range(3):
        if affine[axis, axis] < 0:
            volume = np.flip(volume, axis)
    out = []
    for axis in range(3):
        high, low = volume.max(axis=axis), volume.min(axis=axis)
        out.append(np.where(high >= -low, high, low).T)
    return out


def _figure(result) -> str:
    """The main z map's significant voxels, and each stability map with the histogram of
    its non-zero values (the fraction of replicates in which each voxel is significant)."""
    parts = []
    name = _main_z_map(result)
    if name is not None:
        zmap = ZMap.of(name, result.maps)
        z = np.where(zmap.significant(result), result.get_map(name, "array"), 0.0)
        vmax = max(float(np.nanmax(np.abs(z))), 1.0)
        parts.append(_thumbnail(result.space, name, z, f"{name}, {zmap.criterion}",
                                cmap="RdBu_r", vmin=-vmax, vmax=vmax))
    for name in result.maps.data_vars:
        if name.endswith(STABILITY_SUFFIX):
            parts.append(_thumbnail(result.space, name, result.get_map(name, "array"),
                                    f"{name}, fraction of replicates", histogram=True,
                                    cmap="plasma", vmin=0.0, vmax=1.0))
    return "".join(parts)


def _thumbnail(space, name, values, title, histogram=False, **style) -> str:
    """An inline PNG of the projections of ``values`` (zeros left out) on the mask's
    silhouette; a few tens of milliseconds at this size.

    Built on a bare Agg canvas, not pyplot, so showing a result neither changes the
    notebook's backend nor adds an ``image/png`` output of its own.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    volume = space.to_volume(np.asarray(values, dtype=float))
    silhouettes = _projections(space.mask.astype(float), space.affine)
    fig = Figure(figsize=(8 if histogram else 6, 2.1))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 + histogram, gridspec_kw={"wspace": 0.25 if histogram else 0.02})
    for ax, image, silhouette in zip(axes, _projections(volume, space.affine), silhouettes):
        ax.imshow(silhouette, origin="lower", cmap="Greys", vmin=0, vmax=4)
        ax.imshow(np.ma.masked_equal(image, 0), origin="lower", **style)
        ax.set_axis_off()
    if histogram:  # bars coloured as the projections: the histogram is their colour bar
        _, edges, bars = axes[3].hist(values[values > 0], bins=20, range=(0, 1))
        cmap = matplotlib.colormaps[style["cmap"]]
        for bar, left, right in zip(bars, edges, edges[1:]):
            bar.set_facecolor(cmap((left + right) / 2))
        axes[3].set_xlabel("non-zero values", fontsize=7)
        axes[3].tick_params(labelsize=6)
    fig.suptitle(f"{title} (max projection)", fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, facecolor="white", bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<div><img alt="{_text(name)}" src="data:image/png;base64,{data}"></div>'
