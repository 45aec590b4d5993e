"""Reader for NiMARE's older Dataset JSON.

Layout: ``{study id: {"contrasts": {contrast id: {"coords": {"space", "x", "y", "z"},
"metadata": {"sample_sizes": [n]}}}}}``. Ids are ``{study id}-{contrast id}`` as in
NiMARE's Dataset; the sample size is the contrast metadata's ``sample_sizes`` (averaged)
or ``sample_size``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dmeta.coordinates import AnalysisRecord, CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.io.spaces import UnknownSpace
from dmeta.io.studyset_json import coordinate_triple, read_json, sample_size


@fill_doc
def read_nimare_json(path: str | os.PathLike,
                     unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Read a NiMARE Dataset JSON file (the older format of NiMARE's ``Dataset``).

    %(reader)s
    """
    return dataset_from_dict(read_json(path), str(path), unknown_space)


def is_nimare_dataset(document: Any) -> bool:
    """Whether a parsed JSON document looks like a NiMARE Dataset (study ids -> contrasts)."""
    return (
        isinstance(document, dict)
        and bool(document)
        and all(isinstance(study, dict) and "contrasts" in study for study in document.values())
    )


def dataset_from_dict(document: Any, source: str,
                      unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Build a CoordinateSet from a parsed NiMARE Dataset JSON; ``source`` names it."""
    if not isinstance(document, dict) or not document:
        raise InputError(f"{source}: not a NiMARE dataset (expected an object of study ids)")
    records = []
    for study_id, study in document.items():
        contrasts = study.get("contrasts") if isinstance(study, dict) else None
        if not isinstance(contrasts, dict):
            raise InputError(f"{source}: study '{study_id}' has no 'contrasts' object")
        for contrast_id, contrast in contrasts.items():
            label = f"analysis '{study_id}-{contrast_id}'"
            if not isinstance(contrast, dict):
                raise InputError(f"{source}: {label} is not an object")
            xyz, space = _coords(contrast.get("coords"), source, label)
            metadata = contrast.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            size = sample_size(
                [(key, metadata.get(key)) for key in ("sample_sizes", "sample_size")],
                source,
                label,
            )
            spaces = [space] * len(xyz)
            records.append(
                AnalysisRecord(
                    study_id=str(study_id),
                    analysis_id=str(contrast_id),
                    sample_size=size,
                    xyz=xyz,
                    spaces=spaces,
                    where=f"study '{study_id}', contrast '{contrast_id}'",
                )
            )
    return CoordinateSet.from_records(records, source, unknown_space)


def _coords(coords, source, label):
    """Foci of a contrast as an (n, 3) array, and their space."""
    if coords is None:
        return np.zeros((0, 3)), None
    if not isinstance(coords, dict):
        raise InputError(f"{source}: 'coords' of {label} is not an object")
    columns = []
    for axis in ("x", "y", "z"):
        values = coords.get(axis)
        if not isinstance(values, list):
            raise InputError(f"{source}: {label} has no '{axis}' coordinate list")
        columns.append(values)
    if len({len(values) for values in columns}) != 1:
        raise InputError(f"{source}: {label} has x, y and z lists of different lengths")
    xyz = [
        coordinate_triple(list(point), source, f"focus {i} of {label}")
        for i, point in enumerate(zip(*columns, strict=True))
    ]
    space = coords.get("space")
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), space
