"""The two-sample reference example on the bundled data: what ``dmeta demo`` runs.

Both samples of Enge et al. (2021) get an ALE with Monte Carlo FWE (kept in a Zarr store
each, so a rerun resumes) and a diagnostic (FocusCounter for one, Jackknife for the other);
the subtraction runs as a workflow with FDR correction and FocusCounter on both tails; the
conjunction keeps where both samples are significant; the report describes the subtraction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dmeta.ale import ALE
from dmeta.conjunction import conjunction
from dmeta.coordinates import CoordinateSet
from dmeta.correct import FWECorrector
from dmeta.datasets import load_example
from dmeta.diagnostics import FocusCounter, Jackknife
from dmeta.docstrings import fill_doc
from dmeta.results import MetaResult
from dmeta.subtraction import ALESubtraction
from dmeta.workflows import PairwiseCBMAWorkflow

SAMPLES = ("semantic_knowledge", "semantic_relatedness")
TARGET = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


@fill_doc
def corrected_ale(cset: CoordinateSet, store: str | os.PathLike, n_iters: int,
                  seed: int | None = None, voxel_thresh: float = 0.001,
                  chunk_iters: int | None = None, kernel_fwhm: float | None = None,
                  sample_size: int | None = None) -> MetaResult:
    """ALE with Monte Carlo FWE whose null is kept in ``store``, the result saved there too.

    Rerunning with the same arguments resumes the null from the blocks already stored.

    Parameters
    ----------
    cset : CoordinateSet
    store : str or os.PathLike
        Zarr store for the Monte Carlo null, kept block by block so a rerun resumes, and
        for the result.
    %(n_iters)s
    %(seed)s
    %(voxel_thresh)s
    %(chunk_iters)s
    %(kernel_fwhm)s
    %(sample_size)s

    Returns
    -------
    MetaResult
        The FWE-corrected result, as written to ``store``.
    """
    result = ALE(kernel_fwhm=kernel_fwhm, sample_size=sample_size).fit(cset)
    corrector = FWECorrector(voxel_thresh=voxel_thresh, n_iters=n_iters, seed=seed,
                             chunk_iters=chunk_iters, store=store)
    result = corrector.transform(result)
    result.to_zarr(store)
    return result


@dataclass
class DemoResults:
    """What the demo made, and where."""

    out: Path
    groups: dict
    subtraction: object
    conjunction: object
    report: Path


def run_demo(out: str | os.PathLike, n_iters: int, seed: int = 1) -> DemoResults:
    """Run the example into folder ``out`` on the active Dask client (or a local one).

    Parameters
    ----------
    out : str or Path
        Output folder: ``<sample>.zarr`` stores and NIfTI/TSV folders per sample,
        ``subtraction.zarr`` and ``subtraction/``, ``conjunction.nii.gz``, ``report/``.
    n_iters : int
        Monte Carlo iterations per FWE correction and permutations of the subtraction.
    seed : int
        Root seed of every draw.

    Returns
    -------
    DemoResults
    """
    from dmeta.reporting import report

    out = Path(out).resolve()
    csets = {name: load_example(name) for name in SAMPLES}
    diagnostics = (FocusCounter(target_image=TARGET), Jackknife(target_image=TARGET))
    groups = {}
    for (name, cset), diagnostic in zip(csets.items(), diagnostics):
        result = corrected_ale(cset, out / f"{name}.zarr", n_iters, seed=seed)
        result = diagnostic.transform(result)
        result.to_zarr(out / f"{name}.zarr")
        result.save_nifti(out / name)
        groups[name] = result
    workflow = PairwiseCBMAWorkflow(
        estimator=ALESubtraction(n_iters=n_iters, seed=seed), corrector="fdr",
        diagnostics=FocusCounter(voxel_thresh=0.01, display_second_group=True),
        output_dir=out / "subtraction",
    )
    subtraction = workflow.fit(*csets.values())
    subtraction.to_zarr(out / "subtraction.zarr")
    conj = conjunction([group.get_map(TARGET) for group in groups.values()])
    conj.to_filename(out / "conjunction.nii.gz")
    return DemoResults(out, groups, subtraction, conj, report(subtraction, out / "report"))
