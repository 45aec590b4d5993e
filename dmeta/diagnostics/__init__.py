"""Diagnostics of a fitted meta-analysis: which analyses drive each cluster (FocusCounter,
Jackknife) and how reproducibly each voxel survives resampling (ResampledStability,
stability_sweep)."""

from dmeta.diagnostics.focus_counter import FocusCounter
from dmeta.diagnostics.jackknife import Jackknife
from dmeta.diagnostics.stability import ResampledStability
from dmeta.diagnostics.sweep import stability_sweep

__all__ = ["FocusCounter", "Jackknife", "ResampledStability", "stability_sweep"]
