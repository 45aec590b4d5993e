"""Arrow IPC codec for result tables: one table per Zarr ``uint8`` array.

The array holds the table as one Arrow IPC file; its attributes record what Arrow would
lose (object columns and index levels, NaN versus None, columns mixing value types).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr

from dmeta.errors import InputError

__all__ = ["read_table", "write_table"]


def write_table(group: zarr.Group, name: str, table: pd.DataFrame) -> None:
    """Store ``table`` as the array ``name`` in ``group``.

    Parameters
    ----------
    group : zarr.Group
        The group to create the array in.
    name : str
        The array's (and table's) name.
    table : pandas.DataFrame
        The table; object columns may hold strings, None, NaN or mixed value types.

    Raises
    ------
    InputError
        If a value cannot be stored (not JSON-serialisable in a mixed column, or of a
        type Arrow does not support).
    """
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


def read_table(array: zarr.Array) -> pd.DataFrame:
    """Read back a table stored by :func:`write_table`, with its object columns restored.

    Parameters
    ----------
    array : zarr.Array
        The array :func:`write_table` created.

    Returns
    -------
    pandas.DataFrame
    """
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
    return [i for i, dtype in enumerate(dtypes) if dtype == np.dtype(object)]


def _is_mixed(column: pd.Series) -> bool:
    return len({type(v) for v in column if not pd.isna(v)}) > 1


def _to_json(value) -> str:
    return json.dumps(value.item() if isinstance(value, np.generic) else value)


def _nan_rows(column: pd.Series) -> list[int]:
    return [i for i, v in enumerate(column) if isinstance(v, float) and np.isnan(v)]


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
