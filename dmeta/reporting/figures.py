"""The report's figures, drawn on Agg canvases so that no pyplot state or GUI is touched.

Every function returns a :class:`matplotlib.figure.Figure`; :func:`png` renders it. Figures
are built without pyplot so a report written from a notebook neither changes the notebook's
backend nor leaves figures open in it.
"""

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from nilearn import plotting

GROUP_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:purple")
N_CUTS = 6


def _figure(width, height):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def png(fig, dpi=96):
    """PNG bytes of a figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def foci_glass_brain(foci):
    """Every focus as a dot on a glass brain, one colour per group.

    Parameters
    ----------
    foci : dict of str to ndarray, shape (n, 3)
        MNI mm coordinates per group label (``""`` for a single coordinate set).
    """
    fig = _figure(10, 3.6)
    display = plotting.plot_glass_brain(None, display_mode="lyrz", figure=fig,
                                        title="Foci (MNI)")
    handles = []
    for (label, xyz), colour in zip(foci.items(), GROUP_COLOURS):
        display.add_markers(xyz, marker_color=colour, marker_size=8, alpha=0.7)
        handles.append(Line2D([], [], marker="o", linestyle="", color=colour,
                              label=f"{label or 'foci'} ({len(xyz)})"))
    fig.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    return fig


def stat_map(img, title, threshold, symmetric=True, vmin=None, vmax=None, cmap="RdBu_r"):
    """Axial slices through a map, values at or below ``threshold`` left transparent."""
    fig = _figure(12, 3.2)
    plotting.plot_stat_map(img, display_mode="z", cut_coords=N_CUTS, threshold=threshold,
                           title=title, cmap=cmap, symmetric_cbar=symmetric, vmin=vmin,
                           vmax=vmax, figure=fig, draw_cross=False)
    return fig


def null_histogram(values, title, xlabel, lines):
    """Histogram of a Monte Carlo null with vertical lines at named values.

    Parameters
    ----------
    values : array_like
        One value per iteration (e.g. the maximum ALE of each random-foci dataset).
    lines : list of (float, str, str)
        ``(value, label, colour)``: the critical value, the observed value...
    """
    fig = _figure(6, 3.6)
    ax = fig.add_subplot()
    ax.hist(values, bins=min(50, max(10, len(values) // 10)), color="0.65", edgecolor="white")
    for value, label, colour in lines:
        ax.axvline(value, color=colour, linestyle="--", linewidth=1.5,
                   label=f"{label} = {value:.4g}")
    ax.set(title=title, xlabel=xlabel, ylabel="Iterations")
    if lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def heatmap(table, title, colorbar_label, vmax):
    """An analysis x cluster table as a colour grid (darker = larger part in the cluster)."""
    values = table.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig = _figure(max(6, 1.0 + n_cols * 0.6), max(4, 1.5 + n_rows * 0.28))
    ax = fig.add_subplot()
    image = ax.imshow(values, aspect="auto", cmap="YlOrRd", vmin=0, vmax=vmax,
                      interpolation="nearest")
    ax.set_xticks(range(n_cols), table.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), table.index, fontsize=7)
    ax.set(title=title, xlabel="Cluster", ylabel="Analysis")
    fig.colorbar(image, ax=ax, label=colorbar_label)
    fig.tight_layout()
    return fig


def stability_histogram(values, title):
    """Distribution of the non-zero voxelwise stabilities, with their mean marked."""
    nonzero = values[values > 0]
    fig = _figure(6, 3.6)
    ax = fig.add_subplot()
    ax.hist(nonzero, bins=20, range=(0, 1), color="steelblue", edgecolor="white")
    if nonzero.size:
        mean = float(nonzero.mean())
        ax.axvline(mean, color="red", linestyle="--", label=f"mean = {mean:.2f}")
        ax.legend(fontsize=8)
    ax.set(title=title, xlabel="Stability (fraction of replicates)", ylabel="Voxels",
           xlim=(0, 1))
    fig.tight_layout()
    return fig

