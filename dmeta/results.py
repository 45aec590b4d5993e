"""Meta-analysis results: maps over the in-mask voxels, tables and nulls, kept in Zarr.

A :class:`MetaResult` mirrors NiMARE's (``get_map``, ``maps``, ``tables``,
``description``) so NiMARE scripts port by changing imports, but its maps are an
``xarray.Dataset`` over the in-mask voxels and it saves to one Zarr v3 store.

Zarr layout written by :meth:`MetaResult.to_zarr`::

    RUN.zarr/                 root group; attrs: "dmeta" (store marker, see below),
                              "description", "attrs", "map_names", "table_names"
      space/mask              uint8 (i, j, k) mask; group attrs "affine" (4x4), "fingerprint"
      maps/                   xarray Dataset, one 1-D variable per map over dim "voxel"
      tables/<name>           uint8 1-D array holding the table as an Arrow IPC file
      nulls/                  xarray Dataset over dim "iteration" (only if the result has nulls)
      montecarlo/             owned by the Monte Carlo engine; kept when a store is replaced

The root attribute ``"dmeta"`` marks a store dmeta wrote: a dict with ``"kind"``
(``"result"`` here), ``"format_version"``, ``"dmeta_version"`` and ``"space_fingerprint"``.
Other dmeta writers to the same store should set ``"dmeta"`` too (with their own ``kind``)
and keep their own metadata inside their group.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pyarrow as pa
import xarray as xr
import zarr

from dmeta.errors import InputError
from dmeta.space import Space
from dmeta.versions import package_version

__all__ = ["MetaResult", "open_result"]

STORE_MARKER = "dmeta"
RESULT_KIND = "result"
FORMAT_VERSION = 1
MONTECARLO_GROUP = "montecarlo"
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
        maps,
        space: Space,
        tables: dict[str, pd.DataFrame] | None = None,
        description: str = "",
        nulls=None,
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

    def get_map(self, name: str, return_type: str = "image"):
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

    def save_nifti(self, out_dir) -> list[Path]:
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

    def to_zarr(self, path) -> Path:
        """Write the result to one Zarr v3 store at ``path``, atomically.

        The store is built in a hidden sibling directory and renamed into place, so
        ``path`` never holds a half-written store. An existing dmeta store (or empty
        directory) at ``path`` is replaced; its ``montecarlo`` group, if any, is copied
        into the new store first. Anything else at ``path`` is refused. If the process
        is killed mid-write, a hidden ``.NAME.tmp-*`` sibling may be left behind.

        Raises
        ------
        InputError
            If ``path`` exists and is not a dmeta store or an empty directory.
        """
        path = Path(os.path.abspath(path))
        _check_replaceable(path)
        staging = _sibling(path, "tmp")
        try:
            self._write_store(staging)
            _carry_over_montecarlo(path, staging)
            _swap_into_place(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return path

    def _write_store(self, target: Path) -> None:
        """Write every part; the root marker goes last, once the store is complete."""
        root = zarr.open_group(target, mode="w-", zarr_format=3)
        _write_space(root, self.space)
        _write_dataset(self.maps, target, "maps")
        _write_tables(root, self.tables)
        if self.nulls is not None:
            _write_dataset(self.nulls, target, "nulls")
        root.attrs.update(
            {
                "description": self.description,
                "attrs": _jsonable(self.attrs),
                "map_names": list(self.maps.data_vars),
                "table_names": list(self.tables),
                STORE_MARKER: {
                    "kind": RESULT_KIND,
                    "format_version": FORMAT_VERSION,
                    "dmeta_version": package_version("dmeta"),
                    "space_fingerprint": self.space.fingerprint(),
                },
            }
        )


def _is_default_index(index: pd.Index) -> bool:
    return (
        isinstance(index, pd.RangeIndex)
        and index.name is None
        and index.start == 0
        and index.step == 1
    )


def _jsonable(attrs: dict) -> dict:
    """Convert numpy scalars/arrays to JSON types; anything else unknown is refused."""

    def convert(obj):
        if isinstance(obj, (np.generic, np.ndarray)):
            return obj.tolist()
        if isinstance(obj, os.PathLike):
            return os.fspath(obj)
        raise TypeError(f"result attrs must be JSON-serialisable; got {type(obj).__name__}")

    return json.loads(json.dumps(attrs, default=convert))


# -- writing the parts -----------------------------------------------------------------


def _write_space(root: zarr.Group, space: Space) -> None:
    group = root.create_group(
        "space", attributes={"affine": space.affine.tolist(), "fingerprint": space.fingerprint()}
    )
    group.create_array("mask", data=space.mask.astype(np.uint8))


def _write_dataset(dataset: xr.Dataset, target: Path, group: str) -> None:
    # write_empty_chunks keeps chunks that equal the fill value (e.g. NaN payloads) exact.
    dataset.to_zarr(
        target, group=group, mode="w-", zarr_format=3, consolidated=False, write_empty_chunks=True
    )


def _write_tables(root: zarr.Group, tables: dict[str, pd.DataFrame]) -> None:
    group = root.create_group("tables")
    for name, table in tables.items():
        mixed = [i for i in _object_positions(table.dtypes) if _is_mixed(table.iloc[:, i])]
        stored = table.copy()
        for i in mixed:
            try:
                stored.isetitem(i, table.iloc[:, i].map(_to_json))
            except (TypeError, ValueError) as exc:
                raise InputError(f"table {name!r} cannot be stored: {exc}") from None
        blob = _table_to_arrow(name, stored)
        group.create_array(
            name,
            data=np.frombuffer(blob, dtype=np.uint8),
            chunks=(len(blob),),
            compressors=None,
            attributes={
                "encoding": "arrow-ipc",
                # Arrow has no "object of strings" type and one kind of null; remember
                # which columns were object and where their nulls were NaN, not None.
                "object_columns": {
                    str(i): _nan_rows(table.iloc[:, i])
                    for i in _object_positions(table.dtypes) if i not in mixed
                },
                # Columns mixing value types (a cluster table's ids: 1, "1a") are stored as
                # one JSON text per value, which brings back each value's own type.
                "mixed_columns": mixed,
                "object_index_levels": _object_positions(_index_dtypes(table.index)),
            },
        )


def _table_to_arrow(name: str, table: pd.DataFrame) -> bytes:
    """Serialise a table as one Arrow IPC record batch, with pandas metadata.

    One explicit batch (rather than ``write_table``) keeps zero-row tables' schema
    details such as categories.
    """
    try:
        batch = pa.RecordBatch.from_pandas(table)
    except Exception as exc:  # pyarrow raises several types for unsupported content
        raise InputError(f"table {name!r} cannot be stored: {exc}") from None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _index_dtypes(index: pd.Index) -> list:
    if isinstance(index, pd.MultiIndex):
        return list(index.dtypes)
    return [index.dtype]


def _object_positions(dtypes) -> list[int]:
    return [i for i, dtype in enumerate(dtypes) if dtype == object]


def _is_mixed(column: pd.Series) -> bool:
    return len({type(v) for v in column if not pd.isna(v)}) > 1


def _to_json(value) -> str:
    return json.dumps(value.item() if isinstance(value, np.generic) else value)


def _nan_rows(column: pd.Series) -> list[int]:
    return [i for i, v in enumerate(column) if isinstance(v, float) and np.isnan(v)]


# -- replacing a store atomically --------------------------------------------------------


def _sibling(path: Path, tag: str) -> Path:
    """A hidden, unique sibling on the same filesystem, so renames are atomic."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}")


def _root_attributes(path: Path) -> dict | None:
    """Root attributes of a local Zarr v3 group at ``path``, or None if it is not one."""
    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        return None
    attributes = meta.get("attributes", {})
    return attributes if isinstance(attributes, dict) else {}


def _has_montecarlo(path: Path) -> bool:
    return (path / MONTECARLO_GROUP / "zarr.json").is_file()


def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a dmeta store or an empty directory."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        if not any(path.iterdir()):
            return
        attributes = _root_attributes(path)
        if attributes is not None and (STORE_MARKER in attributes or _has_montecarlo(path)):
            return
    raise InputError(f"{path}: exists and is not a dmeta Zarr store; refusing to replace it")


def _carry_over_montecarlo(old: Path, new: Path) -> None:
    """Copy the Monte Carlo engine's group from the store being replaced (copy, not move,
    so the old store stays whole until the swap)."""
    if _has_montecarlo(old) and not (new / MONTECARLO_GROUP).exists():
        shutil.copytree(old / MONTECARLO_GROUP, new / MONTECARLO_GROUP)


def _swap_into_place(staging: Path, path: Path) -> None:
    """Rename ``staging`` to ``path``; an old ``path`` is moved aside and restored on failure."""
    if not os.path.lexists(path):
        os.rename(staging, path)
        return
    backup = _sibling(path, "old")
    os.rename(path, backup)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(backup, path)
        raise
    shutil.rmtree(backup, ignore_errors=True)


# -- reading -----------------------------------------------------------------------------


def open_result(path) -> MetaResult:
    """Load a result written by :meth:`MetaResult.to_zarr` (maps and nulls into memory).

    Raises
    ------
    InputError
        If ``path`` is not a dmeta result store, or was written by a newer format.
    """
    path = Path(path)
    marker = (_root_attributes(path) or {}).get(STORE_MARKER)
    if not isinstance(marker, dict) or marker.get("kind") != RESULT_KIND:
        detail = (
            "it holds Monte Carlo nulls but no result yet"
            if _has_montecarlo(path)
            else "not a dmeta result Zarr store"
        )
        raise InputError(f"{path}: cannot open result: {detail}")
    if marker.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(
            f"{path}: result store format {marker.get('format_version')} is newer than this "
            f"dmeta supports ({FORMAT_VERSION}); upgrade dmeta"
        )
    root = zarr.open_group(path, mode="r", zarr_format=3)
    attributes = root.attrs.asdict()
    space = _read_space(root, path)
    maps = _read_dataset(path, "maps")[attributes["map_names"]]
    return MetaResult(
        maps,
        space,
        tables={name: _read_table(root["tables"][name]) for name in attributes["table_names"]},
        description=attributes["description"],
        nulls=_read_dataset(path, "nulls") if "nulls" in root else None,
        attrs=attributes["attrs"],
    )


def _read_space(root: zarr.Group, path: Path) -> Space:
    group = root["space"]
    space = Space(group["mask"][...].astype(bool), group.attrs["affine"], name=str(path))
    if space.fingerprint() != group.attrs["fingerprint"]:
        raise InputError(f"{path}: stored mask does not match its fingerprint; store is corrupt")
    return space


def _read_dataset(path: Path, group: str) -> xr.Dataset:
    with xr.open_zarr(path, group=group, zarr_format=3, consolidated=False) as dataset:
        return dataset.load().drop_encoding()


def _read_table(array: zarr.Array) -> pd.DataFrame:
    table = pa.ipc.open_file(pa.py_buffer(array[...].tobytes())).read_all().to_pandas()
    for position, nan_rows in array.attrs["object_columns"].items():
        table.isetitem(int(position), _object_column(table.iloc[:, int(position)], nan_rows))
    for i in array.attrs.get("mixed_columns", []):
        column = table.iloc[:, i]
        table.isetitem(i, pd.Series([json.loads(v) for v in column], index=column.index,
                                    name=column.name, dtype=object))
    levels = array.attrs["object_index_levels"]
    if levels:
        table.index = _index_levels_as_object(table.index, levels)
    return table


def _object_column(column: pd.Series, nan_rows: list[int]) -> pd.Series:
    """Rebuild an object column: nulls become None except the rows that held NaN."""
    values = column.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    values[nan_rows] = np.nan
    return pd.Series(values, index=column.index, name=column.name, dtype=object)


def _index_levels_as_object(index: pd.Index, levels: list[int]) -> pd.Index:
    if not isinstance(index, pd.MultiIndex):
        return index.astype(object)
    return index.set_levels([index.levels[i].astype(object) for i in levels], level=levels)
