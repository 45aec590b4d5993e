"""dmeta: coordinate-based meta-analysis (ALE) as Dask task graphs, with results in Zarr.

Public names are imported on first use (PEP 562): every Dask worker imports ``dmeta`` to
unpickle its tasks, and should not pay for plotting and reporting libraries it never uses.
"""

import importlib

# Imported now, not on first use: the function shares its module's name, and importing the
# module later (``from dmeta.conjunction import ...``) would otherwise rebind
# ``dmeta.conjunction`` to the module. It needs only nibabel and numpy.
from dmeta.conjunction import conjunction  # noqa: F401  (public, listed in __all__)

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "ALE": "dmeta.ale",
    "ALESubtraction": "dmeta.subtraction",
    "BalancedALESubtraction": "dmeta.subtraction.balanced",
    "CBMAWorkflow": "dmeta.workflows",
    "ContrastWorkflow": "dmeta.workflows",
    "CoordinateSet": "dmeta.coordinates",
    "FDRCorrector": "dmeta.correct",
    "FWECorrector": "dmeta.correct",
    "FailSafeN": "dmeta.diagnostics",
    "FocusFilter": "dmeta.focus_filter",
    "FocusCounter": "dmeta.diagnostics",
    "InputError": "dmeta.errors",
    "Jackknife": "dmeta.diagnostics",
    "MetaResult": "dmeta.results",
    "PairwiseCBMAWorkflow": "dmeta.workflows",
    "ResampledStability": "dmeta.diagnostics",
    "SCALE": "dmeta.scale",
    "open_result": "dmeta.results",
    "report": "dmeta.reporting",
    "scale_base_rate": "dmeta.scale",
    "stability_sweep": "dmeta.diagnostics",
}
_SUBMODULES = ("datasets", "io")

__all__ = sorted([*_EXPORTS, *_SUBMODULES, "conjunction"])


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"dmeta.{name}")
    else:
        raise AttributeError(f"module 'dmeta' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *__all__])
