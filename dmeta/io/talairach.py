"""Stereotactic spaces: recognising their labels and moving Talairach foci to MNI.

Talairach coordinates are converted with Lancaster et al. (2007)'s transform for data
normalised with templates other than SPM's or FSL's ("icbm_other"), the conversion
BrainMap's ``tal2icbm_other.m`` and NiMARE's ``tal2mni`` apply.

Lancaster JL, Tordesillas-Gutiérrez D, Martinez M, et al. (2007). Bias between MNI and
Talairach coordinates analyzed using the ICBM-152 brain template. Human Brain Mapping 28,
1194-1205. doi:10.1002/hbm.20345
"""

from __future__ import annotations

import numpy as np

# Affine from MNI (ICBM-152, "other" normalisation) to Talairach, Lancaster et al. (2007).
_MNI_TO_TAL_LINEAR = np.array(
    [
        [0.9357, 0.0029, -0.0072],
        [-0.0065, 0.9396, -0.0726],
        [0.0103, 0.0752, 0.8967],
    ]
)
_MNI_TO_TAL_SHIFT = np.array([-1.0423, -1.3940, 3.6475])


def tal2mni(xyz):
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


def parse_space(label):
    """Return ``"MNI"`` or ``"TAL"`` for a space label, or None if it names neither.

    Matching is case-insensitive: labels containing "tal" (``TAL``, ``Talairach``) are
    Talairach; labels containing "mni" or "ale" (``MNI``, ``mni152_2mm``, ``ale_2mm``) are
    MNI, as in NiMARE's NIMADS conversion.
    """
    if not isinstance(label, str):
        return None
    lowered = label.strip().lower()
    if "tal" in lowered:
        return "TAL"
    if "mni" in lowered or "ale" in lowered:
        return "MNI"
    return None


def to_mni(xyz, spaces):
    """Convert the Talairach rows of ``xyz`` to MNI, leaving MNI rows unchanged.

    Parameters
    ----------
    xyz : array-like, shape (n, 3)
        Coordinates in mm.
    spaces : array-like of str, length n
        ``"MNI"`` or ``"TAL"`` for each row.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        MNI coordinates (a new float64 array).
    """
    out = np.array(xyz, dtype=np.float64).reshape(-1, 3)
    tal = np.asarray(spaces, dtype=object) == "TAL"
    if tal.any():
        out[tal] = tal2mni(out[tal])
    return out
