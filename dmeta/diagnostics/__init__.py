"""Diagnostics of a fitted meta-analysis: which analyses drive each cluster (FocusCounter,
Jackknife), how reproducibly each voxel survives resampling (ResampledStability,
stability_sweep) and how many noise analyses each cluster withstands (FailSafeN)."""

from dmeta.diagnostics.failsafe import FailSafeN
from dmeta.diagnostics.focus_counter import FocusCounter
from dmeta.diagnostics.jackknife import Jackknife
from dmeta.diagnostics.stability import ResampledStability
from dmeta.diagnostics.sweep import stability_sweep

__all__ = ["FailSafeN", "FocusCounter", "Jackknife", "ResampledStability", "stability_sweep"]
