"""Reader for Sleuth / GingerALE text files.

Layout: a ``// Reference=MNI`` (or ``Talairach``/``TAL``) line, then one block per
experiment: one or more ``// name`` lines, a ``// Subjects=N`` line and one ``x y z`` line
per focus (tabs, spaces or commas). Blank lines are ignored; as in NiMARE, a run of
``//`` lines (ending with its Subjects= line) starts a new experiment, and every ``//``
line before Subjects= is part of the experiment's name.

Experiment names become ids as NiMARE's ``convert_sleuth_to_dict`` makes them: the name
lines are joined with spaces and split into study and contrast at the first ``;`` or
``:`` after a year (19xx/20xx), else at the first ``;``, else the first ``:``; with no
separator the contrast is ``analysis_1``. The id is ``{study}-{contrast}``, e.g.
``backes2002-analysis_1``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from dmeta.coordinates import AnalysisRecord, CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.io.spaces import UnknownSpace

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_REFERENCE = re.compile(r"//\s*reference\s*=\s*(.*)", re.IGNORECASE)
_SUBJECTS = re.compile(r"//\s*subjects\s*=\s*(.*)", re.IGNORECASE)
_YEAR = re.compile(r"(19|20)\d{2}")
_FIELD_SEP = re.compile(r"[\s,]+")


def read_text(path: str | os.PathLike) -> str:
    """Return the text of an input file, raising InputError if it is missing or empty.

    UTF-8 (with or without a byte-order mark) is expected; other bytes are read as
    Latin-1 so that accented author names in older files do not stop the read.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    return text


@fill_doc
def read_sleuth(path: str | os.PathLike, unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Read a Sleuth text file; each focus keeps its ``line`` number.

    %(reader)s
    """
    return parse_sleuth(read_text(path), str(path), unknown_space)


def parse_sleuth(text: str, source: str, unknown_space: UnknownSpace = "keep") -> CoordinateSet:
    """Parse Sleuth text; ``source`` names it in messages and the ``source`` column."""
    lines = [
        (number, line.strip())
        for number, line in enumerate(_LINE_BREAK.split(text), start=1)
        if line.strip()
    ]
    if not lines:
        raise InputError(f"{source}: file is empty")
    space = _reference_space(lines[0], source)
    records = [
        _experiment(header, coords, space, source) for header, coords in _blocks(lines[1:], source)
    ]
    if not records:
        raise InputError(f"{source}: no experiments after the Reference= line")
    return CoordinateSet.from_records(records, source, unknown_space)


def _reference_space(numbered_line, source):
    """The space label of the first line, ``// Reference=<label>``, as written."""
    number, line = numbered_line
    match = _REFERENCE.fullmatch(line)
    if match is None:
        raise InputError(
            f"{source}, line {number}: the first line must be '// Reference=MNI' or "
            f"'// Reference=Talairach', found '{line}'"
        )
    return match.group(1).strip()


def _blocks(lines, source):
    """Split numbered lines into (header lines, coordinate lines) per experiment.

    A ``//`` line starts a new experiment after a coordinate line or a Subjects= line.
    """
    blocks = []
    for number, line in lines:
        if line.startswith("//"):
            if not blocks or blocks[-1][1] or _SUBJECTS.fullmatch(blocks[-1][0][-1][1]):
                blocks.append(([], []))
            blocks[-1][0].append((number, line))
        elif blocks:
            blocks[-1][1].append((number, line))
        else:
            raise InputError(
                f"{source}, line {number}: coordinates before the first experiment's "
                "'// name' and '// Subjects=' lines"
            )
    return blocks


def _experiment(header, coords, space, source):
    """Turn one experiment's header and coordinate lines into an AnalysisRecord."""
    last_number, last_line = header[-1]
    match = _SUBJECTS.fullmatch(last_line)
    names = header[:-1] if match else header
    name = " ".join(line.replace("//", "").strip() for _, line in names)
    label = f"experiment '{name.strip()}'"
    if match is None:
        raise InputError(
            f"{source}, line {last_number}: missing '// Subjects=N' line for {label} "
            "(it must be the last '//' line before the coordinates)"
        )
    for number, line in names:
        if _REFERENCE.fullmatch(line):
            raise InputError(
                f"{source}, line {number}: Reference= may only appear on the first line "
                "(were several files concatenated?)"
            )
    if not name.strip():
        raise InputError(
            f"{source}, line {last_number}: experiment has no '// name' line before "
            "its Subjects= line"
        )
    study_id, analysis_id = split_experiment_name(name)
    sample_size = _subjects(match.group(1), last_number, label, source)
    if not coords:
        raise InputError(f"{source}, line {last_number}: {label} has no foci")
    xyz = np.array([_focus(line, number, label, source) for number, line in coords])
    return AnalysisRecord(
        study_id=study_id,
        analysis_id=analysis_id,
        sample_size=sample_size,
        xyz=xyz,
        spaces=[space] * len(xyz),
        where=f"line {header[0][0]}",
        lines=[number for number, _ in coords],
    )


def split_experiment_name(name: str) -> tuple[str, str]:
    """Split a Sleuth experiment name into (study, contrast) as NiMARE does."""
    name = name.strip()
    year = _YEAR.search(name)
    if year is not None:
        cuts = [i for i in (name.find(";", year.end()), name.find(":", year.end())) if i != -1]
        if cuts:
            return _halves(name, min(cuts))
    for separator in ";:":
        if separator in name:
            return _halves(name, name.index(separator))
    return name, "analysis_1"


def _halves(name, cut):
    study, contrast = name[:cut].strip(), name[cut + 1 :].strip()
    return study or name, contrast or "analysis_1"


def _subjects(value, number, label, source):
    value = value.replace(" ", "")
    try:
        count = float(value)
    except ValueError:
        raise InputError(
            f"{source}, line {number}: Subjects= value '{value}' for {label} is not a number"
        ) from None
    if not (count > 0 and float(count).is_integer()):
        raise InputError(
            f"{source}, line {number}: Subjects= value '{value}' for {label} must be a "
            "positive whole number"
        )
    return count


def _focus(line, number, label, source):
    fields = _FIELD_SEP.split(line)
    if len(fields) != 3:
        raise InputError(
            f"{source}, line {number}: expected 3 coordinates (x y z) in {label}, "
            f"found {len(fields)}: '{line}'"
        )
    try:
        xyz = [float(field) for field in fields]
    except ValueError:
        raise InputError(
            f"{source}, line {number}: non-numeric coordinate in {label}: '{line}'"
        ) from None
    if not np.isfinite(xyz).all():
        raise InputError(f"{source}, line {number}: non-finite coordinate in {label}: '{line}'")
    return xyz
