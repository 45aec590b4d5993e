"""The :class:`MetaResult` class: maps, tables and nulls from one meta-analysis.

A :class:`MetaResult` mirrors NiMARE's (``get_map``, ``maps``, ``tables``,
``description``) so NiMARE scripts port by changing imports, but its maps are an
``xarray.Dataset`` over the in-mask voxels and it saves to one Zarr v3 store (layout in
:mod:`dmeta.results.store`).
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import ArrayLike

from dmeta.errors import InputError
from dmeta.results.display import result_html
from dmeta.results.store import read_result_store, read_stored_estimator, write_result_store
from dmeta.space import Space

__all__ = ["MetaResult", "open_result"]

VOXEL_DIM = "voxel"
ITERATION_DIM = "iteration"


def _check_name(name, kind: str) -> str:
    """Refuse names that cannot be a Zarr node name (or would clash with a dimension)."""
    if (
        not isinstance(name, str)
        or not name
        or "/" in name
        or name.startswith("__")
        or name in {".", "..", VOXEL_DIM}
    ):
        raise InputError(
            f"invalid {kind} name {name!r}: must be a non-empty string without '/', "
            f"not starting with '__', and not '.', '..' or {VOXEL_DIM!r}"
        )
    return name


# -- validating the in-memory parts -----------------------------------------------------


def _map_vector(name: str, value, space: Space) -> xr.Variable:
    """Turn one map (vector, DataArray or image) into a ``voxel`` variable."""
    if isinstance(value, nib.spatialimages.SpatialImage):
        value = space.from_image(value)
    if isinstance(value, (xr.DataArray, xr.Variable)):
        if value.dims != (VOXEL_DIM,):
            raise InputError(f"map {name!r} must have the one dim {VOXEL_DIM!r}, not {value.dims}")
        variable = value.variable if isinstance(value, xr.DataArray) else value
    else:
        variable = xr.Variable(VOXEL_DIM, np.asarray(value))
    if variable.shape != (space.n_voxels,):
        raise InputError(
            f"map {name!r} must be a vector of {space.n_voxels} in-mask values, "
            f"got shape {variable.shape}"
        )
    return variable


def _as_maps(maps, space: Space) -> xr.Dataset:
    """Validate maps into a Dataset of 1-D ``voxel`` variables."""
    if isinstance(maps, xr.Dataset):
        for name, var in maps.data_vars.items():
            _check_name(name, "map")
            _map_vector(name, var, space)
        return maps.copy(deep=False)
    if not isinstance(maps, Mapping):
        raise InputError(f"maps must be a dict or an xarray.Dataset, not {type(maps).__name__}")
    return xr.Dataset(
        {_check_name(name, "map"): _map_vector(name, value, space) for name, value in maps.items()}
    )


def _as_tables(tables) -> dict[str, pd.DataFrame]:
    if not isinstance(tables, Mapping):
        raise InputError(f"tables must be a dict, not {type(tables).__name__}")
    for name, table in tables.items():
        _check_name(name, "table")
        if not isinstance(table, pd.DataFrame):
            kind = type(table).__name__
            raise InputError(f"table {name!r} must be a pandas DataFrame, not {kind}")
    return dict(tables)


def _as_nulls(nulls) -> xr.Dataset | None:
    """Validate nulls into a Dataset whose variables all run over ``iteration``."""
    if nulls is None:
        return None
    if isinstance(nulls, Mapping) and not isinstance(nulls, xr.Dataset):
        nulls = xr.Dataset({name: (ITERATION_DIM, np.asarray(v)) for name, v in nulls.items()})
    if not isinstance(nulls, xr.Dataset):
        raise InputError(f"nulls must be an xarray.Dataset or a dict, not {type(nulls).__name__}")
    for name, var in nulls.data_vars.items():
        _check_name(name, "null")
        if ITERATION_DIM not in var.dims:
            raise InputError(f"null {name!r} must run over dim {ITERATION_DIM!r}, got {var.dims}")
    return nulls


class MetaResult:
    """Maps, tables and nulls from one meta-analysis, in one analysis space.

    Parameters
    ----------
    maps : dict of str to array_like, or xarray.Dataset
        Each map is a vector over the in-mask voxels of ``space`` (C order); a dict may
        also hold DataArrays over ``voxel`` or NIfTI images in the space.
    space : Space
        The mask the maps are defined on.
    tables : dict of str to pandas.DataFrame, optional
    description : str, optional
        Methods text describing how the result was made.
    nulls : xarray.Dataset or dict of str to array_like, optional
        Null-distribution summaries over dim ``iteration`` (e.g. max statistic per
        Monte Carlo iteration).
    attrs : dict, optional
        JSON-serialisable provenance (estimator parameters, seed, versions).

    Attributes
    ----------
    maps : xarray.Dataset
        ``"z" in result.maps`` and ``list(result.maps)`` work as with NiMARE's dict;
        ``result.maps["z"]`` is a DataArray (use :meth:`get_map` for a numpy vector).
    """

    def __init__(
        self,
        maps: Mapping[str, ArrayLike | xr.DataArray | nib.Nifti1Image] | xr.Dataset,
        space: Space,
        tables: Mapping[str, pd.DataFrame] | None = None,
        description: str = "",
        nulls: xr.Dataset | Mapping[str, ArrayLike] | None = None,
        attrs: dict | None = None,
    ):
        if not isinstance(space, Space):
            raise InputError(f"space must be a dmeta Space, not {type(space).__name__}")
        self.space = space
        self.maps = _as_maps(maps, space)
        self.tables = _as_tables(tables or {})
        self.description = str(description)
        self.nulls = _as_nulls(nulls)
        self.attrs = dict(attrs or {})
        #: The fitted estimator (a snapshot) that correctors and diagnostics build on; set by
        #: ``fit``, kept by :meth:`copy`, None for a result read from a store.
        self.estimator = None

    def __repr__(self) -> str:
        nulls = "none" if self.nulls is None else dict(self.nulls.sizes)
        return (
            f"MetaResult(maps={list(self.maps)}, tables={list(self.tables)}, "
            f"nulls={nulls}, space={self.space!r})"
        )

    def _repr_html_(self) -> str:
        """The summary Jupyter shows when a cell ends with a result.

        See :mod:`dmeta.results.display`: estimator and parameters, corrections, maps with
        their suprathreshold voxel counts, tables, nulls and a thumbnail of the main z map.
        """
        return result_html(self)

    def get_map(
        self, name: str, return_type: Literal["image", "array"] = "image"
    ) -> nib.Nifti1Image | np.ndarray:
        """Return one map as a NIfTI image or as its in-mask vector.

        Parameters
        ----------
        name : str
            Map name, e.g. ``"z"``.
        return_type : {"image", "array"}
            ``"image"``: float32 ``Nifti1Image`` in the space (0 outside the mask).
            ``"array"``: the stored 1-D in-mask vector, as nilearn's masker would give.

        Raises
        ------
        KeyError
            If there is no such map; the message lists close matches and all names.
        ValueError
            If ``return_type`` is neither ``"image"`` nor ``"array"``.
        """
        if return_type not in ("image", "array"):
            raise ValueError(f"return_type must be 'image' or 'array', not {return_type!r}")
        if name not in self.maps.data_vars:
            raise KeyError(self._missing_map_message(name))
        values = self.maps[name].values
        return values if return_type == "array" else self.space.to_image(values)

    def _missing_map_message(self, name) -> str:
        names = list(self.maps.data_vars)
        close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        return f"No map named {name!r}.{hint} Available maps: {', '.join(names) or 'none'}"

    def copy(self) -> MetaResult:
        """Return an independent copy, so correctors can add maps without touching ``self``.

        The fitted estimator is shared, not copied: it is a read-only snapshot of the fit.
        """
        out = MetaResult(
            self.maps.copy(deep=True),
            self.space,
            tables={name: table.copy(deep=True) for name, table in self.tables.items()},
            description=self.description,
            nulls=None if self.nulls is None else self.nulls.copy(deep=True),
            attrs=copy.deepcopy(self.attrs),
        )
        out.estimator = self.estimator
        return out

    def add_maps(self, maps: Mapping) -> None:
        """Add (or replace) maps in place; values as for the ``maps`` parameter."""
        self.maps.update(_as_maps(dict(maps), self.space))

    def add_tables(self, tables: Mapping) -> None:
        """Add (or replace) tables in place."""
        self.tables.update(_as_tables(tables))

    # -- files ----------------------------------------------------------------------

    def save_nifti(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write every map as ``<name>.nii.gz`` and every table as ``<name>.tsv``.

        Tables keep their index as the first column unless it is a plain unnamed
        0..n-1 range (NiMARE writes its tables without one).
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in self.maps.data_vars:
            path = out_dir / f"{name}.nii.gz"
            self.get_map(name).to_filename(path)
            written.append(path)
        for name, table in self.tables.items():
            path = out_dir / f"{name}.tsv"
            table.to_csv(path, sep="\t", index=not _is_default_index(table.index))
            written.append(path)
        return written

    def to_zarr(self, path: str | os.PathLike, modeled_activation: bool = False) -> Path:
        """Write the result to one Zarr v3 store at ``path``, atomically.

        The store is built in a hidden sibling directory and renamed into place, so
        ``path`` never holds a half-written store. An existing dmeta store (or empty
        directory) at ``path`` is replaced; its ``montecarlo`` group, if any, is copied
        into the new store first. Anything else at ``path`` is refused. If the process
        is killed mid-write, a hidden ``.NAME.tmp-*`` sibling may be left behind.

        With ``modeled_activation=True`` the store also keeps the fit's modeled activation
        (the MA rows, foci and kernels, about 350 kB per analysis) and its approximate
        null, so that :func:`open_result` gives back a result that Monte Carlo correction
        and the diagnostics can run on.

        Raises
        ------
        InputError
            If ``path`` exists and is not a dmeta store or an empty directory, or
            ``modeled_activation`` is asked of a result that is not an ALE fit.
        """
        return write_result_store(self, path, modeled_activation)


def open_result(path: str | os.PathLike) -> MetaResult:
    """Load a result written by :meth:`MetaResult.to_zarr` (maps and nulls into memory).

    Parameters
    ----------
    path : str or os.PathLike
        The store.

    Returns
    -------
    MetaResult
        With its fitted ALE estimator if the store keeps the modeled activation
        (``to_zarr(path, modeled_activation=True)``), so that correctors and diagnostics
        run on it as on the fit's own result; otherwise ``result.estimator`` is None.

    Raises
    ------
    InputError
        If ``path`` is not a dmeta result store, or was written by a newer format.
    """
    result = MetaResult(**read_result_store(path))
    result.estimator = read_stored_estimator(path, result.space, result.tables)
    return result


def _is_default_index(index: pd.Index) -> bool:
    return (
        isinstance(index, pd.RangeIndex)
        and index.name is None
        and index.start == 0
        and index.step == 1
    )
