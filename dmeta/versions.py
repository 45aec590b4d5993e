"""The software versions a result was computed with, for its provenance record.

A Monte Carlo null or a p-value can change when numpy's random streams, scipy's special
functions or numba's compiled arithmetic change, so a result records the versions of Python,
dmeta and the libraries its numbers and files come from, next to its parameters.
"""

import functools
import platform
from importlib import metadata

#: Distributions whose versions can change a result's numbers or how it is stored.
DEPENDENCIES = ("numpy", "scipy", "pandas", "dask", "distributed", "xarray", "zarr", "numba",
                "nibabel", "nilearn")


def package_version(name):
    """The installed version of distribution ``name``, or ``"unknown"`` if it is not installed
    (e.g. dmeta run from a source tree without being installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def _versions():
    # Cached: the installed versions do not change within a process, and reading package
    # metadata takes milliseconds per distribution.
    return (("dmeta", package_version("dmeta")), ("python", platform.python_version()),
            *((name, package_version(name)) for name in DEPENDENCIES))


def versions():
    """``{"dmeta": ..., "python": ..., "numpy": ..., ...}``: a new JSON-safe dict each call."""
    return dict(_versions())
