"""dmeta: coordinate-based meta-analysis (ALE) as Dask task graphs, with results in Zarr."""

from dmeta import datasets, io
from dmeta.ale import ALE
from dmeta.coordinates import CoordinateSet
from dmeta.correct import FWECorrector
from dmeta.errors import InputError
from dmeta.results import MetaResult, open_result

__version__ = "0.1.0"

__all__ = [
    "ALE",
    "CoordinateSet",
    "FWECorrector",
    "InputError",
    "MetaResult",
    "datasets",
    "io",
    "open_result",
]
