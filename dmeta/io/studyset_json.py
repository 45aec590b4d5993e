"""Reader for NIMADS studyset JSON (the format NeuroStore and NiMARE's Studyset use).

Layout: ``{"studies": [{"id", "metadata", "analyses": [{"id", "metadata", "points":
[{"coordinates": [x, y, z], "space"}]}]}]}``. Ids are ``{study id}-{analysis id}``
(e.g. ``pain_01.nidm-1``), as in NiMARE; a study or analysis without an id gets NiMARE's
positional one (``study-{i}``, ``analysis-{j}``).

Sample sizes follow NiMARE's Studyset: the analysis metadata's ``sample_sizes`` (a list,
averaged) or ``sample_size``, else the study metadata's.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any

import numpy as np

from dmeta.coordinates import AnalysisRecord, CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.io.sleuth import read_text
from dmeta.io.spaces import UnknownSpace


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file, raising InputError naming the file and line on failure."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from None


@fill_doc
def read_studyset_json(path: str | os.PathLike,
                       unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Read a NIMADS studyset JSON file (NeuroStore's format).

    %(reader)s
    """
    return studyset_from_dict(read_json(path), str(path), unknown_space)


def studyset_from_dict(document: Any, source: str,
                       unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Build a CoordinateSet from a parsed NIMADS studyset; ``source`` names it."""
    if not isinstance(document, dict) or not isinstance(document.get("studies"), list):
        raise InputError(f"{source}: not a NIMADS studyset (no 'studies' list)")
    records = []
    for s_row, study in enumerate(document["studies"]):
        if not isinstance(study, dict):
            raise InputError(f"{source}: studies[{s_row}] is not an object")
        study_id = _identifier(study, f"study-{s_row}")
        analyses = study.get("analyses") or []
        if not isinstance(analyses, list):
            raise InputError(f"{source}: 'analyses' of study '{study_id}' is not a list")
        for a_pos, analysis in enumerate(analyses):
            if not isinstance(analysis, dict):
                raise InputError(
                    f"{source}: analysis {a_pos} of study '{study_id}' is not an object"
                )
            analysis_id = _identifier(analysis, f"analysis-{len(records)}")
            where = f"studies[{s_row}].analyses[{a_pos}]"
            label = f"analysis '{study_id}-{analysis_id}' ({where})"
            xyz, spaces = _points(analysis.get("points"), source, label)
            size = sample_size(
                [
                    *_size_fields(analysis.get("metadata")),
                    *_size_fields(study.get("metadata")),
                ],
                source,
                label,
            )
            records.append(
                AnalysisRecord(
                    study_id=study_id,
                    analysis_id=analysis_id,
                    sample_size=size,
                    xyz=xyz,
                    spaces=spaces,
                    where=where,
                )
            )
    return CoordinateSet.from_records(records, source, unknown_space)


def _identifier(entry, default):
    value = entry.get("id")
    return default if value is None else str(value)


def _points(points, source, label):
    """Coordinates and spaces of an analysis's points."""
    if points is None:
        points = []
    if not isinstance(points, list):
        raise InputError(f"{source}: 'points' of {label} is not a list")
    xyz, spaces = [], []
    for i, point in enumerate(points):
        coordinates = point.get("coordinates") if isinstance(point, dict) else None
        if coordinates is None:
            raise InputError(f"{source}: point {i} of {label} has no coordinates")
        xyz.append(coordinate_triple(coordinates, source, f"point {i} of {label}"))
        spaces.append(point.get("space"))
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), spaces


def coordinate_triple(values, source, label):
    """Check that ``values`` is three finite numbers and return them as floats."""
    if (
        not isinstance(values, (list, tuple, np.ndarray))
        or len(values) != 3
        or not all(_is_number(v) and math.isfinite(v) for v in values)
    ):
        raise InputError(
            f"{source}: {label} needs coordinates [x, y, z] as 3 numbers, got {values!r}"
        )
    return [float(v) for v in values]


def _size_fields(metadata):
    metadata = metadata if isinstance(metadata, dict) else {}
    return [(key, metadata.get(key)) for key in ("sample_sizes", "sample_size")]


def sample_size(candidates, source, label) -> float:
    """Sample size from ``(field, value)`` candidates, first usable one wins.

    A list (``sample_sizes``) is averaged, as NiMARE's ALE kernel does; a missing value,
    an empty list or a list with a missing entry passes on to the next candidate, and
    none gives NaN. Non-numeric or non-positive values are an InputError.
    """
    for field, value in candidates:
        values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
        if not values or any(v is None or _is_nan(v) for v in values):
            continue
        numbers_ = [_positive_number(v, field, source, label) for v in values]
        return float(np.mean(numbers_))
    return math.nan


def _positive_number(value, field, source, label):
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if not _is_number(number) or not math.isfinite(number) or number <= 0:
        raise InputError(
            f"{source}: {label} has an invalid {field} value {value!r} "
            "(expected a positive number)"
        )
    return float(number)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_nan(value):
    return _is_number(value) and math.isnan(value)
