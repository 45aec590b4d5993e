"""Readers for coordinate data. Each returns a :class:`dmeta.coordinates.CoordinateSet`.

``load(path)`` picks the reader from the input: a directory holding ``studyset.json`` is
a parquet studyset; a ``.json`` file is a NIMADS studyset if it has a ``"studies"`` list,
else a NiMARE Dataset JSON; a ``.txt`` file, or text starting with ``//``, is Sleuth.
"""

from __future__ import annotations

import os
from pathlib import Path

from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.io.nimare_json import dataset_from_dict, is_nimare_dataset, read_nimare_json
from dmeta.io.parquet_studyset import read_parquet_studyset
from dmeta.io.sleuth import parse_sleuth, read_sleuth, read_text
from dmeta.io.spaces import UNKNOWN_SPACE_POLICIES, UnknownSpace, tal2mni
from dmeta.io.studyset_json import read_json, read_studyset_json, studyset_from_dict
from dmeta.validation import check_choice

__all__ = [
    "UNKNOWN_SPACE_POLICIES",
    "load",
    "read_nimare_json",
    "read_parquet_studyset",
    "read_sleuth",
    "read_studyset_json",
    "tal2mni",
]


@fill_doc
def load(path: str | os.PathLike, unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Read coordinate data in any supported format, detected from the input.

    Parameters
    ----------
    path : str or os.PathLike
        A Sleuth ``.txt`` file, a NIMADS or NiMARE Dataset ``.json`` file, or a parquet
        studyset directory.
    %(unknown_space)s

    Returns
    -------
    CoordinateSet

    Raises
    ------
    dmeta.errors.InputError
        If the input is missing, of unknown format or malformed.
    """
    check_choice("unknown_space", unknown_space, UNKNOWN_SPACE_POLICIES)
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise InputError(f"{source}: file not found")
    if path.is_dir():
        if (path / "studyset.json").is_file():
            return read_parquet_studyset(path, unknown_space)
        raise InputError(f"{source}: a directory must be a parquet studyset (no studyset.json)")
    if path.suffix.lower() == ".json":
        return _from_json(read_json(path), source, unknown_space)
    text = read_text(path)
    if path.suffix.lower() == ".txt" or text.lstrip().startswith("//"):
        return parse_sleuth(text, source, unknown_space)
    raise InputError(
        f"{source}: unknown format (expected a Sleuth .txt file, a .json studyset or "
        "dataset, or a parquet studyset directory)"
    )


def _from_json(document, source, unknown_space):
    if isinstance(document, dict) and "studies" in document:
        return studyset_from_dict(document, source, unknown_space)
    if is_nimare_dataset(document):
        return dataset_from_dict(document, source, unknown_space)
    raise InputError(
        f"{source}: JSON is neither a NIMADS studyset (no 'studies' list) nor a NiMARE "
        "dataset (study ids mapping to 'contrasts')"
    )
