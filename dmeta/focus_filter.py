"""FocusFilter: drop the foci whose centre lies outside the analysis mask, on request.

dmeta, like NiMARE, keeps every focus by default (a focus just outside the mask still spreads
its kernel into it); this is for analysts whose protocol excludes such foci.
"""

from __future__ import annotations

from dmeta.base import DmetaBase
from dmeta.coordinates import CoordinateSet
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.messages import examples, warn
from dmeta.space import MaskLike, Space


@fill_doc
class FocusFilter(DmetaBase):
    """Remove foci outside the mask from a coordinate set (NiMARE's ``FocusFilter``).

    Parameters
    ----------
    %(mask)s

    Notes
    -----
    Unlike NiMARE, which keeps analyses left without coordinates, an analysis whose every
    focus lies outside the mask is removed too (with a warning naming it): it has nothing
    left to contribute to a coordinate-based meta-analysis.
    """

    def __init__(self, mask: MaskLike = None):
        self.mask = mask

    def transform(self, cset: CoordinateSet) -> CoordinateSet:
        """Return a new :class:`~dmeta.CoordinateSet` without the foci outside the mask."""
        if not isinstance(cset, CoordinateSet):
            raise InputError(
                f"FocusFilter.transform expects a dmeta.CoordinateSet, got {type(cset).__name__}"
            )
        space = Space.from_mask(self.mask)
        foci = cset.foci
        inside = space.in_mask(space.mm_to_ijk(foci[["x", "y", "z"]].to_numpy(dtype=float)))
        kept = foci.loc[inside]
        kept_ids = set(kept["id"])
        emptied = [i for i in cset.ids if i not in kept_ids]
        where = cset.source or "the coordinate set"
        if len(emptied) == len(cset.ids):
            raise InputError(f"{where}: every focus lies outside the mask ({space.name})")
        if emptied:
            warn(f"{where}: FocusFilter removed {len(emptied)} analysis(es) with no focus "
                 f"inside the mask: {examples(emptied, shown=10)}")
        analyses = cset.analyses.drop(index=emptied)
        return CoordinateSet(analyses, kept, source=cset.source)
