"""HTML reports of meta-analysis results: ``dmeta.report(result, out_dir)``.

People look at a meta-analysis before they read it; the report puts the inputs, the methods
text, the thresholded maps, cluster and diagnostic tables, the Monte Carlo nulls and the
stability maps of any :class:`~dmeta.MetaResult` on one static page. Modules:
:mod:`~dmeta.reporting.contents` (what a result holds), :mod:`~dmeta.reporting.figures`
(matplotlib/nilearn drawings), :mod:`~dmeta.reporting.sections` (one function per section),
:mod:`~dmeta.reporting.html` (the page) and :mod:`~dmeta.reporting.references`.
"""

from __future__ import annotations

import contextlib
import gc
import os
from pathlib import Path
from typing import TYPE_CHECKING

from dmeta.reporting.contents import survey
from dmeta.reporting.html import Page
from dmeta.reporting.sections import SECTIONS

if TYPE_CHECKING:
    from dmeta.results import MetaResult

__all__ = ["report"]


def report(result: MetaResult, out_dir: str | os.PathLike,
           title: str = "dmeta meta-analysis report") -> Path:
    """Write a self-contained HTML report of a result.

    The page shows whatever the result holds: the analyses (and a glass brain of the foci
    when the result still has its estimator or a ``foci`` table), the methods text with
    references and parameters, every z map thresholded at its level (corrected p < 0.05,
    uncorrected p < 0.001), a subtraction's corrected difference maps and a contrast
    workflow's thresholded maps with their clusters, cluster tables, diagnostic tables with
    heatmaps, predicted FWE cutoffs, Monte Carlo null histograms with the critical and
    observed values, and stability maps with their summary. Figures are embedded in the page
    and also written as PNG files.

    Parameters
    ----------
    result : MetaResult
        In memory or read back with :func:`dmeta.open_result`.
    out_dir : str or Path
        Folder for ``index.html`` and ``figures/*.png`` (created if needed).
    title : str
        Page title.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = survey(result)
    page = Page(out_dir, title)
    with _frozen_heap():
        for heading, section in SECTIONS:
            page.add_section(heading, section(page, result, contents))
    index = out_dir / "index.html"
    index.write_text(page.render(), encoding="utf-8")
    return index


@contextlib.contextmanager
def _frozen_heap():
    """Exempt the objects that already exist from garbage collection for a while.

    nilearn runs ``gc.collect()`` for every image it reads; with a large session heap (a
    fitted estimator, a Dask client) that is most of the report's time. Frozen objects are
    skipped by those collections and unfrozen afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
