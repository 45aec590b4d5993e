"""Stereotactic spaces: which labels dmeta recognises, and what happens to the others.

Recognised labels (case, spaces, ``-`` and ``_`` ignored):

* MNI: ``MNI``, ``MNI152``, ``MNI152_2mm``, ``MNI152_1mm``, ``MNI305``, ``ICBM``, ``ICBM152``,
  ``ale_2mm`` (NiMARE's name for the GingerALE MNI template);
* Talairach: ``TAL``, ``Talairach``, ``TAL_2mm``, ``Talairach_Tournoux``.

NeuroStore also writes ``OTHER``, ``UNKNOWN`` or nothing. NiMARE leaves foci in such spaces
untransformed, that is, takes them to be in the target space; ``unknown_space="keep"`` does the
same (with one warning counting them per label), ``"drop"`` leaves them out and ``"error"``
refuses the file.

Talairach coordinates are converted with Lancaster et al. (2007)'s transform for data
normalised with templates other than SPM's or FSL's ("icbm_other"), the conversion
BrainMap's ``tal2icbm_other.m`` and NiMARE's ``tal2mni`` apply.

Lancaster JL, Tordesillas-Gutiérrez D, Martinez M, et al. (2007). Bias between MNI and
Talairach coordinates analyzed using the ICBM-152 brain template. Human Brain Mapping 28,
1194-1205. doi:10.1002/hbm.20345
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from dmeta.errors import InputError
from dmeta.messages import warn
from dmeta.validation import check_choice

UNKNOWN_SPACE_POLICIES = ("keep", "drop", "error")
#: An ``unknown_space`` policy, for annotations (the names in UNKNOWN_SPACE_POLICIES).
UnknownSpace = Literal["keep", "drop", "error"]

_MNI_LABELS = {"mni", "mni152", "mni1522mm", "mni1521mm", "mni305", "icbm", "icbm152", "ale2mm"}
_TAL_LABELS = {"tal", "talairach", "tal2mm", "talairachtournoux"}
_IGNORED = re.compile(r"[\s_\-]+")

# Affine from MNI (ICBM-152, "other" normalisation) to Talairach, Lancaster et al. (2007).
_MNI_TO_TAL_LINEAR = np.array(
    [
        [0.9357, 0.0029, -0.0072],
        [-0.0065, 0.9396, -0.0726],
        [0.0103, 0.0752, 0.8967],
    ]
)
_MNI_TO_TAL_SHIFT = np.array([-1.0423, -1.3940, 3.6475])


def tal2mni(xyz: ArrayLike) -> np.ndarray:
    """Convert Talairach coordinates to MNI coordinates.

    Parameters
    ----------
    xyz : array-like, shape (n, 3)
        Talairach coordinates in mm, one focus per row.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        MNI coordinates in mm (float64).
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"expected an (n, 3) array of coordinates, got shape {xyz.shape}")
    # tal = A @ mni + b, so mni = A^-1 (tal - b); solve for all foci at once.
    return np.linalg.solve(_MNI_TO_TAL_LINEAR, (xyz - _MNI_TO_TAL_SHIFT).T).T


def space_label(label) -> str:
    """A focus's space label as text: ``""`` when the file gives none (None, NaN, blank)."""
    if label is None or (isinstance(label, float) and math.isnan(label)):
        return ""
    return str(label).strip()


def parse_space(label) -> str | None:
    """``"MNI"`` or ``"TAL"`` for a recognised space label, None for any other."""
    key = _IGNORED.sub("", space_label(label).lower())
    if key in _MNI_LABELS:
        return "MNI"
    if key in _TAL_LABELS:
        return "TAL"
    return None


class ResolvedSpaces:
    """Foci moved to MNI, and which of them an ``unknown_space`` policy keeps.

    Parameters
    ----------
    xyz : array-like, shape (n, 3)
        Coordinates in mm, as the file gives them.
    labels : sequence, length n
        Each focus's space label as the file gives it (None or blank when missing).
    unknown_space : {"keep", "drop", "error"}
    source : str
        The file, for messages.
    where : sequence of str, optional
        Where each focus is in the file (an analysis, a line), for the error of "error".

    Attributes
    ----------
    xyz : numpy.ndarray, shape (n, 3)
        MNI mm: Talairach foci converted, foci in unrecognised spaces as given.
    labels : numpy.ndarray of str
        ``"MNI"``, ``"TAL"``, or the unrecognised label as given (``""`` if none).
    keep : numpy.ndarray of bool
        False for foci the policy drops.
    """

    def __init__(self, xyz, labels, unknown_space, source, where=None):
        check_choice("unknown_space", unknown_space, UNKNOWN_SPACE_POLICIES)
        text = [space_label(label) for label in labels]
        canonical = [parse_space(label) for label in text]
        self.labels = np.array([c or t for c, t in zip(canonical, text)], dtype=object)
        self.xyz = np.array(xyz, dtype=np.float64).reshape(-1, 3)
        tal = self.labels == "TAL"
        if tal.any():
            self.xyz[tal] = tal2mni(self.xyz[tal])
        unknown = np.array([c is None for c in canonical], dtype=bool)
        self.keep = ~unknown if unknown_space == "drop" else np.ones(len(text), dtype=bool)
        if unknown.any():
            _report_unknown(self.labels[unknown], unknown_space, source,
                            None if where is None else np.asarray(where, object)[unknown])


def _report_unknown(labels, unknown_space, source, where):
    counts = Counter(labels)
    listing = ", ".join(f"{n} in {label or '(no label)'!s}" for label, n in counts.most_common())
    if unknown_space == "error":
        first = f" (first: {where[0]})" if where is not None else ""
        raise InputError(
            f"{source}: {len(labels)} foci are in unrecognised spaces ({listing}){first}; "
            "recognised are MNI and Talairach labels (see dmeta.io.spaces), or pass "
            "unknown_space='keep' to use them as given"
        )
    action = ("left out" if unknown_space == "drop"
              else "used as given, untransformed, as NiMARE does")
    warn(f"{source}: {len(labels)} foci in unrecognised spaces are {action} ({listing}); "
         "unknown_space='keep'|'drop'|'error' chooses")
