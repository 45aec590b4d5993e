"""Meta-analysis results: maps over the in-mask voxels, tables and nulls, kept in Zarr.

- :mod:`dmeta.results.result`: :class:`MetaResult` and :func:`open_result`.
- :mod:`dmeta.results.store`: the Zarr layout of a result store (writing, reading,
  format and marker checks).
- :mod:`dmeta.results.tables`: the Arrow IPC codec for result tables.
- :mod:`dmeta.results.atomic`: the atomic write or replace of a directory store.
"""

from dmeta.results.result import MetaResult, open_result

__all__ = ["MetaResult", "open_result"]
