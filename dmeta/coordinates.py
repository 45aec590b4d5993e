"""The coordinate data every dmeta analysis starts from: analyses and their foci."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from dmeta.errors import InputError
from dmeta.messages import examples, warn

ANALYSIS_COLUMNS = ["study_id", "analysis_id", "sample_size", "source"]
FOCI_COLUMNS = ["id", "x", "y", "z", "space", "line"]


class CoordinateSet:
    """Peak coordinates (foci) of a set of analyses, in MNI mm.

    Parameters
    ----------
    analyses : pandas.DataFrame
        One row per analysis, indexed by analysis id (or with an ``id`` column), with
        columns ``study_id`` and ``analysis_id`` and optionally ``sample_size`` (NaN where
        unknown) and ``source`` (the file the analysis came from).
    foci : pandas.DataFrame
        One row per focus with columns ``id`` (analysis id) and ``x``, ``y``, ``z`` (MNI mm),
        and optionally ``space`` (the space the file gave, default ``"MNI"``) and ``line``
        (line number in a text source).
    source : str, optional
        Where the data came from, used in messages.

    Notes
    -----
    Analyses keep the given order; foci are regrouped by analysis in that order (keeping
    their order within an analysis). Every analysis needs at least one focus.
    """

    def __init__(self, analyses: pd.DataFrame, foci: pd.DataFrame, source: str | None = None):
        self._source = None if source is None else str(source)
        self._analyses = self._check_analyses(analyses)
        self._foci = self._check_foci(foci)

    @classmethod
    def from_records(cls, records: Sequence[AnalysisRecord], source: str,
                     unknown_space: Literal["keep", "drop", "error"] = "keep",
                     ) -> CoordinateSet:
        """Build a CoordinateSet from readers' per-analysis records.

        Parameters
        ----------
        records : list of AnalysisRecord
            In file order, with coordinates and space labels as the file gives them.
            Records without foci are skipped with a warning (NiMARE's coordinate-based
            estimators drop such analyses too).
        source : str
            The file or directory read, used in messages and the ``source`` column.
        unknown_space : {"keep", "drop", "error"}
            What to do with foci in unrecognised spaces (see :mod:`dmeta.io.spaces`).

        Returns
        -------
        CoordinateSet
            Foci in MNI mm (Talairach converted).
        """
        from dmeta.io.spaces import ResolvedSpaces

        source = str(source)
        first_seen = {}
        for record in records:
            if record.id in first_seen:
                raise InputError(
                    f"{source}, {record.where}: duplicate analysis id '{record.id}' "
                    f"(first used at {first_seen[record.id]})"
                )
            first_seen[record.id] = record.where
        counts = [len(r.xyz) for r in records]
        spaces = ResolvedSpaces(
            # The leading empty block lets a file without any focus reach the warning below.
            np.concatenate([np.empty((0, 3)), *(np.reshape(r.xyz, (-1, 3)) for r in records)]),
            [label for r in records for label in r.spaces],
            unknown_space,
            source,
            where=np.repeat([f"analysis '{r.id}' ({r.where})" for r in records], counts),
        )
        lines = [r.lines if r.lines is not None else [pd.NA] * len(r.xyz) for r in records]
        foci = pd.DataFrame(
            {
                "id": np.repeat([r.id for r in records], counts).astype(object),
                "x": spaces.xyz[:, 0],
                "y": spaces.xyz[:, 1],
                "z": spaces.xyz[:, 2],
                "space": spaces.labels,
                "line": pd.array(np.concatenate([[], *lines]), dtype="Int64"),
            }
        )[spaces.keep]
        kept = set(foci["id"])
        empty = [record.id for record in records if record.id not in kept]
        if empty:
            warn(f"{source}: skipping {len(empty)} analysis(es) without foci: {examples(empty)}")
            records = [record for record in records if record.id in kept]
        if not records:
            raise InputError(f"{source}: no analyses with foci")
        analyses = pd.DataFrame(
            {
                "study_id": [r.study_id for r in records],
                "analysis_id": [r.analysis_id for r in records],
                "sample_size": [r.sample_size for r in records],
                "source": source,
            },
            index=pd.Index([r.id for r in records], name="id"),
        )
        return cls(analyses, foci, source=source)

    # ------------------------------------------------------------------ validation
    def _fail(self, message):
        prefix = f"{self._source}: " if self._source else ""
        raise InputError(prefix + message)

    def _check_analyses(self, analyses):
        if not isinstance(analyses, pd.DataFrame):
            self._fail(f"analyses must be a DataFrame, not {type(analyses).__name__}")
        table = analyses.copy()
        if "id" in table.columns:
            table = table.set_index("id")
        missing = [c for c in ("study_id", "analysis_id") if c not in table.columns]
        if missing:
            self._fail(f"analyses table lacks column(s) {', '.join(missing)}")
        table.index = pd.Index(table.index.astype(str), name="id")
        duplicated = table.index[table.index.duplicated()]
        if len(duplicated):
            self._fail(f"duplicate analysis id '{duplicated[0]}'")
        if "sample_size" not in table.columns:
            table["sample_size"] = np.nan
        if "source" not in table.columns:
            table["source"] = self._source or ""
        try:
            sizes = pd.to_numeric(table["sample_size"]).astype(np.float64)
        except (TypeError, ValueError):
            self._fail("sample_size must be numeric")
        bad = sizes.index[sizes <= 0]
        if len(bad):
            self._fail(f"analysis '{bad[0]}': sample size must be positive, got {sizes[bad[0]]}")
        table["sample_size"] = sizes
        for column in ("study_id", "analysis_id", "source"):
            table[column] = table[column].astype(str)
        return table[ANALYSIS_COLUMNS]

    def _check_foci(self, foci):
        if not isinstance(foci, pd.DataFrame):
            self._fail(f"foci must be a DataFrame, not {type(foci).__name__}")
        missing = [c for c in ("id", "x", "y", "z") if c not in foci.columns]
        if missing:
            self._fail(f"foci table lacks column(s) {', '.join(missing)}")
        table = pd.DataFrame(
            {
                "id": foci["id"].astype(str).to_numpy(),
                "space": foci["space"].astype(str).to_numpy() if "space" in foci else "MNI",
                "line": (
                    pd.array(foci["line"], dtype="Int64")
                    if "line" in foci
                    else pd.array([pd.NA] * len(foci), dtype="Int64")
                ),
            }
        )
        for axis in ("x", "y", "z"):
            try:
                table[axis] = pd.to_numeric(foci[axis]).to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                self._fail(f"foci column '{axis}' must be numeric")
        finite = np.isfinite(table[["x", "y", "z"]].to_numpy()).all(axis=1)
        if not finite.all():
            self._fail(f"analysis '{table['id'][np.argmin(finite)]}' has a non-finite coordinate")
        position = self._analyses.index.get_indexer(table["id"])
        if (position < 0).any():
            self._fail(f"foci refer to unknown analysis '{table['id'][np.argmin(position)]}'")
        empty = np.bincount(position, minlength=len(self._analyses)) == 0
        if empty.any():
            self._fail(f"analysis '{self._analyses.index[np.argmax(empty)]}' has no foci")
        order = np.argsort(position, kind="stable")
        return table.iloc[order][FOCI_COLUMNS].reset_index(drop=True)

    # ------------------------------------------------------------------ access
    @property
    def analyses(self) -> pd.DataFrame:
        """Analyses table (a copy), indexed by analysis id."""
        return self._analyses.copy()

    @property
    def foci(self) -> pd.DataFrame:
        """Foci table (a copy), grouped by analysis in analysis order."""
        return self._foci.copy()

    @property
    def ids(self) -> list[str]:
        """Analysis ids in order."""
        return self._analyses.index.tolist()

    @property
    def sample_sizes(self) -> pd.Series:
        """Sample size of each analysis (NaN where unknown), indexed by id."""
        return self._analyses["sample_size"].copy()

    @property
    def source(self) -> str | None:
        """Where the data came from, or None."""
        return self._source

    def select(self, ids: str | Iterable[str]) -> CoordinateSet:
        """Return a CoordinateSet with only the given analyses, in the given order.

        Parameters
        ----------
        ids : str or iterable of str
            Analysis ids.

        Returns
        -------
        CoordinateSet
        """
        ids = [ids] if isinstance(ids, str) else [str(i) for i in ids]
        unknown = [i for i in ids if i not in self._analyses.index]
        if unknown:
            self._fail(f"unknown analysis id(s): {', '.join(repr(i) for i in unknown)}")
        repeated = pd.Index(ids)[pd.Index(ids).duplicated()]
        if len(repeated):
            self._fail(f"analysis id '{repeated[0]}' selected more than once")
        foci = self._foci[self._foci["id"].isin(ids)]
        return CoordinateSet(self._analyses.loc[ids].copy(), foci, source=self._source)

    def __len__(self) -> int:
        return len(self._analyses)

    def __repr__(self) -> str:
        source = f", source={self._source!r}" if self._source else ""
        return f"CoordinateSet({len(self)} analyses, {len(self._foci)} foci{source})"


@dataclass(frozen=True)
class AnalysisRecord:
    """One analysis as a reader found it, before it becomes table rows.

    Parameters
    ----------
    study_id, analysis_id : str
        Identifiers from the file.
    sample_size : float
        NaN when the file gives none.
    xyz : numpy.ndarray, shape (n, 3)
        Foci in mm, in the space the file gives.
    spaces : sequence
        Space label the file gives for each focus (None where it gives none).
    where : str
        Location in the file, for messages (e.g. ``"line 12"``).
    lines : sequence of int, optional
        Source line of each focus (text formats).
    full_id : str, optional
        Analysis id when the file states it; default ``"{study_id}-{analysis_id}"``.
    """

    study_id: str
    analysis_id: str
    sample_size: float
    xyz: np.ndarray
    spaces: tuple | list | np.ndarray
    where: str
    lines: tuple | list | None = None
    full_id: str | None = None

    @property
    def id(self) -> str:
        """Analysis id, NiMARE style: ``{study id}-{analysis id}``."""
        return self.full_id if self.full_id is not None else f"{self.study_id}-{self.analysis_id}"
