"""The Zarr layout of a result store: writing it, reading it back, recognising it.

Zarr layout written by :meth:`MetaResult.to_zarr`::

    RUN.zarr/                 root group; attrs: "dmeta" (store marker, see below),
                              "description", "attrs", "map_names", "table_names"
      space/mask              uint8 (i, j, k) mask; group attrs "affine" (4x4), "fingerprint"
      maps/                   xarray Dataset, one 1-D variable per map over dim "voxel"
      tables/<name>           uint8 1-D array holding the table as an Arrow IPC file
      nulls/                  xarray Dataset over dim "iteration" (only if the result has nulls)
      montecarlo/             owned by the Monte Carlo engine; kept when a store is replaced
      stability/              resampling replicates (dmeta.diagnostics.store); kept likewise
      modeled_activation/     the fit's MA, when asked for (see dmeta.ma_store)

The root attribute ``"dmeta"`` marks a store dmeta wrote: a dict with ``"kind"``
(``"result"`` here), ``"format_version"``, ``"dmeta_version"`` and ``"space_fingerprint"``.
Other dmeta writers to the same store should set ``"dmeta"`` too (with their own ``kind``)
and keep their own metadata inside their group.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from dmeta.errors import InputError
from dmeta.results.atomic import write_directory_atomically
from dmeta.results.tables import read_table, write_table
from dmeta.space import Space
from dmeta.versions import package_version

if TYPE_CHECKING:
    from dmeta.results.result import MetaResult

__all__ = ["FORMAT_VERSION", "read_result_store", "write_result_store"]

STORE_MARKER = "dmeta"
RESULT_KIND = "result"
FORMAT_VERSION = 1
MONTECARLO_GROUP = "montecarlo"
#: Groups computed before a result is written (resumable work): kept when it is replaced.
ENGINE_GROUPS = (MONTECARLO_GROUP, "stability")


# -- writing -----------------------------------------------------------------------------


def write_result_store(result: MetaResult, path, modeled_activation: bool = False) -> Path:
    """Write ``result`` to a Zarr v3 store at ``path``, atomically.

    See :meth:`MetaResult.to_zarr` for how an existing store is replaced.

    Parameters
    ----------
    result : MetaResult
        The result to write.
    path : str or os.PathLike
        The store's path.
    modeled_activation : bool
        Also write the fit's modeled activation (see :mod:`dmeta.ma_store`).

    Returns
    -------
    pathlib.Path
        The absolute path of the store.

    Raises
    ------
    InputError
        If ``path`` exists and is not a dmeta store or an empty directory, or
        ``modeled_activation`` is asked of a result that is not an ALE fit of this session.
    """
    path = Path(os.path.abspath(path))
    _check_replaceable(path)
    if modeled_activation:
        from dmeta.ale import ALE

        if not isinstance(result.estimator, ALE) or not hasattr(result.estimator, "ma_"):
            raise InputError(f"{path}: modeled_activation=True needs the result of ALE.fit "
                             "in this session (or a result opened with its modeled activation)")

    def write(staging: Path) -> None:
        _write_store(result, staging)
        if modeled_activation:
            from dmeta.ma_store import write_ma

            write_ma(zarr.open_group(staging, mode="r+", zarr_format=3), result.estimator)
        _carry_over_montecarlo(path, staging)

    write_directory_atomically(path, write)
    return path


def _write_store(result: MetaResult, target: Path) -> None:
    """Write every part; the root marker goes last, once the store is complete."""
    root = zarr.open_group(target, mode="w-", zarr_format=3)
    _write_space(root, result.space)
    _write_dataset(result.maps, target, "maps")
    _write_tables(root, result.tables)
    if result.nulls is not None:
        _write_dataset(result.nulls, target, "nulls")
    root.attrs.update(
        {
            "description": result.description,
            "attrs": _jsonable(result.attrs),
            "map_names": list(result.maps.data_vars),
            "table_names": list(result.tables),
            STORE_MARKER: {
                "kind": RESULT_KIND,
                "format_version": FORMAT_VERSION,
                "dmeta_version": package_version("dmeta"),
                "space_fingerprint": result.space.fingerprint(),
            },
        }
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
        write_table(group, name, table)


# -- recognising stores ------------------------------------------------------------------


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


def _has_engine_groups(path: Path) -> bool:
    return any((path / group / "zarr.json").is_file() for group in ENGINE_GROUPS)


def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a dmeta store or an empty directory."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        if not any(path.iterdir()):
            return
        attributes = _root_attributes(path)
        if attributes is not None and (STORE_MARKER in attributes or _has_engine_groups(path)):
            return
    raise InputError(f"{path}: exists and is not a dmeta Zarr store; refusing to replace it")


def _carry_over_montecarlo(old: Path, new: Path) -> None:
    """Copy the engine groups (Monte Carlo nulls, stability replicates) from the store being
    replaced (copy, not move, so the old store stays whole until the swap)."""
    for group in ENGINE_GROUPS:
        if (old / group / "zarr.json").is_file() and not (new / group).exists():
            shutil.copytree(old / group, new / group)


# -- reading -----------------------------------------------------------------------------


def read_result_store(path) -> dict:
    """Read a result store's parts into memory, checking its marker and format version.

    Parameters
    ----------
    path : str or os.PathLike
        A store written by :func:`write_result_store`.

    Returns
    -------
    dict
        The :class:`MetaResult` constructor's arguments: ``space``, ``maps``,
        ``tables``, ``description``, ``nulls`` and ``attrs``.

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
    return {
        "space": _read_space(root, path),
        "maps": _read_dataset(path, "maps")[attributes["map_names"]],
        "tables": {name: read_table(root["tables"][name]) for name in attributes["table_names"]},
        "description": attributes["description"],
        "nulls": _read_dataset(path, "nulls") if "nulls" in root else None,
        "attrs": attributes["attrs"],
    }


def read_stored_estimator(path, space: Space, tables: dict):
    """The fitted ALE a store keeps with its modeled activation, or None if it keeps none."""
    from dmeta.ma_store import has_ma, read_ale
    from dmeta.modeled_activation import OUTSIDE_TABLE

    root = zarr.open_group(Path(path), mode="r", zarr_format=3)
    if not has_ma(root):
        return None
    return read_ale(root, space, tables.get(OUTSIDE_TABLE, pd.DataFrame()))


def _read_space(root: zarr.Group, path: Path) -> Space:
    group = root["space"]
    space = Space(group["mask"][...].astype(bool), group.attrs["affine"], name=str(path))
    if space.fingerprint() != group.attrs["fingerprint"]:
        raise InputError(f"{path}: stored mask does not match its fingerprint; store is corrupt")
    return space


def _read_dataset(path: Path, group: str) -> xr.Dataset:
    with xr.open_zarr(path, group=group, zarr_format=3, consolidated=False) as dataset:
        return dataset.load().drop_encoding()
