"""Reader for parquet studyset directories (the layout NeuroStore releases use).

A directory with ``studyset.json`` (whose optional ``"tables"`` maps table names to
files) and ``analyses.parquet`` (``id``, ``study_id``, ``contrast_id``),
``coordinates.parquet`` (``id``, ``x``, ``y``, ``z``, ``space``) and optionally
``metadata.parquet`` (``id``, ``sample_sizes`` and/or ``sample_size``). Other tables
(studies, images, texts, annotations) are not needed for coordinates and are not read.

Ids are the ``id`` column of ``analyses.parquet`` (``{study_id}-{contrast_id}``), as in
NiMARE's ``Studyset.from_parquet``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dmeta.coordinates import AnalysisRecord, CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.io.spaces import UnknownSpace
from dmeta.io.studyset_json import read_json, sample_size

_SIZE_FIELDS = ["sample_sizes", "sample_size"]


@fill_doc
def read_parquet_studyset(path: str | os.PathLike,
                          unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Read a parquet studyset directory.

    Parameters
    ----------
    path : str or os.PathLike
        The directory.
    %(unknown_space)s

    Returns
    -------
    CoordinateSet
        Foci in MNI mm (Talairach foci converted), analyses in ``analyses.parquet`` order.
    """
    directory, source = Path(path), str(path)
    if not directory.exists():
        raise InputError(f"{source}: directory not found")
    if not directory.is_dir():
        raise InputError(f"{source}: a parquet studyset must be a directory")
    files = _table_files(directory)
    analyses = _read_table(directory, files, "analyses", ["id", "study_id", "contrast_id"], source)
    coords = _read_table(directory, files, "coordinates", ["id", "x", "y", "z"], source, ["space"])
    if (directory / files["metadata"]).is_file():
        metadata = _read_table(directory, files, "metadata", ["id"], source, _SIZE_FIELDS)
        metadata = metadata.drop_duplicates("id").set_index("id")
    else:
        metadata = pd.DataFrame(index=pd.Index([], name="id"))

    analysis_ids = analyses["id"].to_numpy()
    position = pd.Index(analysis_ids).get_indexer(coords["id"])
    if (position < 0).any():
        row = int(np.argmax(position < 0))
        raise InputError(
            f"{source}: row {row} of {files['coordinates']} refers to analysis "
            f"'{coords['id'].iloc[row]}', which is not in {files['analyses']}"
        )
    xyz = coords[["x", "y", "z"]].to_numpy(dtype=np.float64)
    if not np.isfinite(xyz).all():
        row = int(np.argmin(np.isfinite(xyz).all(axis=1)))
        raise InputError(
            f"{source}: row {row} of {files['coordinates']} (analysis "
            f"'{coords['id'].iloc[row]}') has no coordinates"
        )
    spaces = (coords["space"].to_numpy(dtype=object) if "space" in coords
              else np.full(len(coords), None, dtype=object))

    order = np.argsort(position, kind="stable")
    bounds = np.searchsorted(position[order], np.arange(len(analyses) + 1))
    records = []
    for row, (full_id, study_id, contrast_id) in enumerate(
        analyses[["id", "study_id", "contrast_id"]].itertuples(index=False)
    ):
        rows = order[bounds[row] : bounds[row + 1]]
        label = f"analysis '{full_id}'"
        size_values = metadata.loc[full_id] if full_id in metadata.index else {}
        records.append(
            AnalysisRecord(
                study_id=str(study_id),
                analysis_id=str(contrast_id),
                sample_size=sample_size(
                    [(f, size_values.get(f)) for f in _SIZE_FIELDS], source, label
                ),
                xyz=xyz[rows],
                spaces=spaces[rows],
                where=f"row {row} of {files['analyses']}",
                full_id=str(full_id),
            )
        )
    return CoordinateSet.from_records(records, source, unknown_space)


def _table_files(directory):
    """File name of each table, from studyset.json's ``"tables"`` when it gives one."""
    files = {name: f"{name}.parquet" for name in ("analyses", "coordinates", "metadata")}
    manifest_path = directory / "studyset.json"
    if manifest_path.is_file():
        manifest = read_json(manifest_path)
        declared = manifest.get("tables") if isinstance(manifest, dict) else None
        if isinstance(declared, dict):
            files.update({k: str(v) for k, v in declared.items() if k in files and v})
    return files


def _read_table(directory, files, name, required, source, optional=()):
    """Read the needed columns of one table, checking that the required ones are there."""
    path = directory / files[name]
    if not path.is_file():
        raise InputError(f"{source}: missing {files[name]} (the {name} table)")
    try:
        present = pq.read_schema(path).names
        missing = [column for column in required if column not in present]
        if missing:
            raise InputError(f"{source}: {files[name]} lacks column(s) {', '.join(missing)}")
        columns = required + [column for column in optional if column in present]
        table = pd.read_parquet(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{source}: cannot read {files[name]} ({err})") from None
    for column in set(required) & {"id", "study_id", "contrast_id"}:
        if table[column].isna().any():
            row = int(np.argmax(table[column].isna().to_numpy()))
            raise InputError(f"{source}: row {row} of {files[name]} has no {column}")
    return table
