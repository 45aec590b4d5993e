"""Base-rate coordinates of SCALE: where, in general, foci fall.

Langner et al. (2014) take the base rate from a large database of experiments (BrainMap):
every reported focus, so that regions reported by most tasks are drawn as often as they are
reported. :func:`scale_base_rate` reads such a studyset into the (n, 3) mm array SCALE takes
(NiMARE users pass ``dataset.coordinates[["x", "y", "z"]].values``);
:func:`base_rate_ijk` checks an array and places it on the analysis grid.
"""

from __future__ import annotations

import os

import numpy as np

from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.messages import examples, warn
from dmeta.space import Space

_BUILD_HINT = "dmeta.scale.scale_base_rate(studyset) builds one from a studyset"


@fill_doc
def scale_base_rate(source: CoordinateSet | str | os.PathLike,
                    unknown_space: str = "keep") -> np.ndarray:
    """Every focus of a studyset, as the base-rate coordinates SCALE draws null foci from.

    A focus reported twice (by two analyses) is kept twice, so it is drawn twice as often:
    the base rate is that of reports, as in Langner et al. (2014). To leave some analyses
    out (e.g. those being meta-analysed), select the others first (``cset.select(ids)``).

    Parameters
    ----------
    source : CoordinateSet, str or os.PathLike
        A coordinate set, or a file or directory :func:`dmeta.io.load` reads (Sleuth,
        NIMADS or NiMARE json, parquet studyset).
    %(unknown_space)s

    Returns
    -------
    (n_foci, 3) numpy.ndarray of float
        x, y, z in MNI mm (Talairach foci converted when read), in the set's focus order.

    Raises
    ------
    dmeta.errors.InputError
        If the source cannot be read or holds no foci.
    """
    if not isinstance(source, CoordinateSet):
        from dmeta.io import load

        source = load(source, unknown_space=unknown_space)
    xyz = source.foci[["x", "y", "z"]].to_numpy(dtype=float)
    if xyz.shape[0] == 0:
        raise InputError(f"{source.source or 'the coordinate set'} holds no foci for a base rate")
    return xyz


def base_rate_ijk(xyz, space: Space) -> np.ndarray:
    """Voxel subscripts of base-rate coordinates (mm), rounded as NiMARE rounds them.

    Coordinates outside the mask are kept, as NiMARE keeps them: each is drawn like the
    others and counts wherever its kernel reaches the mask; a warning counts them. Rows with
    a non-finite coordinate are dropped with a warning (NiMARE 0.22.1 casts them to a voxel
    at the edge of the grid, where they are drawn yet add nothing).

    Raises
    ------
    dmeta.errors.InputError
        If ``xyz`` is not an (n, 3) numeric array or holds no finite row.
    """
    if isinstance(xyz, CoordinateSet):
        raise InputError(f"xyz must be an (n, 3) array of mm coordinates, not a "
                         f"CoordinateSet; {_BUILD_HINT}")
    try:
        xyz = np.asarray(xyz, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"xyz must be an (n, 3) array of mm coordinates, got "
                         f"{type(xyz).__name__}; {_BUILD_HINT}") from None
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError(f"xyz must be an (n, 3) array of mm coordinates (columns x, y, z), "
                         f"got shape {xyz.shape}")
    if xyz.shape[0] == 0:
        raise InputError(f"xyz holds no coordinates: SCALE draws its null foci from them; "
                         f"{_BUILD_HINT}")
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        if rows.size == len(xyz):
            raise InputError(f"xyz: none of its {len(xyz)} rows is finite")
        warn(f"xyz: {rows.size} of {len(xyz)} base-rate rows hold a non-finite coordinate "
             f"(rows {examples(rows, shown=5)}) and are dropped")
        xyz = xyz[finite]
    ijk = space.mm_to_ijk(xyz).astype(np.int64)
    outside = np.flatnonzero(~space.in_mask(ijk))
    if outside.size:
        shown = examples([f"({x:g}, {y:g}, {z:g})" for x, y, z in xyz[outside]], shown=3)
        warn(f"xyz: {outside.size} of {len(xyz)} base-rate coordinates lie outside the mask "
             f"(e.g. {shown}). As in NiMARE they are kept: drawn like the others, each counts "
             "wherever its kernel reaches the mask.")
    return ijk
