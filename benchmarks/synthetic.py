"""Seeded synthetic coordinate sets shaped like the bundled real ones, for benchmarks.

A benchmark on hundreds of analyses needs more data than the package bundles, but its
speed-up only carries over to real data if the synthetic set makes both tools do the work
real data makes them do. What sets that work is the number of foci per analysis, the
sample sizes (they set each kernel's width) and where the foci lie (clustered foci overlap,
which shapes the ALE histogram, the cluster-forming threshold and the clusters). So:

* each synthetic analysis takes the focus count and sample size of a real analysis drawn at
  random from the bundled ``pain``, ``semantic_knowledge`` and ``semantic_relatedness``
  sets (58 analyses, 730 foci), keeping the two together;
* each focus is a real focus drawn at random from the same pool, moved by Gaussian jitter of
  ``jitter_mm`` per axis, and kept inside the 91 x 109 x 91 volume (redrawn if not), though
  not necessarily inside the brain mask: real foci fall just outside it too.

How it still differs from real data: foci are drawn one by one from the pooled peaks, so an
analysis has no spatial structure of its own (no bilateral pairs, no study-specific
network); counts and sample sizes come from only 58 analyses (at most 28 foci and 67
subjects; large real exports have longer tails); every focus is in MNI space (no Talairach
conversion); no sample size is missing, and no two analyses share subjects.

The same foci and sample sizes are given to dmeta (a :class:`dmeta.CoordinateSet`) and to
NiMARE (a :class:`nimare.dataset.Dataset`), so both fit the same ALE to the same foci.
"""

import functools

import numpy as np
import pandas as pd

import dmeta
from dmeta.space import Space

#: The bundled real coordinate sets the synthetic ones are shaped like.
REAL_SETS = ("pain", "semantic_knowledge", "semantic_relatedness")


@functools.cache
def real_pool():
    """Per-analysis (focus count, sample size) and all foci (MNI mm) of :data:`REAL_SETS`."""
    analyses, foci = [], []
    for name in REAL_SETS:
        cset = dmeta.datasets.load_example(name)
        counts = cset.foci.groupby("id", sort=False).size()
        analyses.append(np.column_stack([counts.to_numpy(),
                                         cset.analyses.loc[counts.index, "sample_size"]]))
        foci.append(cset.foci[["x", "y", "z"]].to_numpy(dtype=float))
    return np.concatenate(analyses).astype(int), np.concatenate(foci)


def jittered_foci(rng, space, pool, n, jitter_mm):
    """``n`` foci at random pool foci plus Gaussian jitter, redrawn until inside the volume."""
    xyz = pool[rng.integers(len(pool), size=n)] + rng.normal(0, jitter_mm, size=(n, 3))
    outside = ~space.in_volume(space.mm_to_ijk(xyz))
    if outside.any():
        xyz[outside] = jittered_foci(rng, space, pool, int(outside.sum()), jitter_mm)
    return xyz


def synthetic_foci(n_analyses=500, seed=0, jitter_mm=4.0):
    """Analyses shaped like the bundled real ones (see the module docstring).

    Returns
    -------
    list of dict
        Per analysis: ``id``, ``study_id``, ``sample_size`` and ``xyz`` (n_foci x 3, MNI mm).
    """
    rng = np.random.default_rng(seed)
    space = Space.from_mask()
    shapes, pool = real_pool()
    studies = []
    for a, (n_foci, sample_size) in enumerate(shapes[rng.integers(len(shapes), size=n_analyses)]):
        studies.append({
            "id": f"study{a:04d}-1",
            "study_id": f"study{a:04d}",
            "sample_size": int(sample_size),
            "xyz": jittered_foci(rng, space, pool, int(n_foci), jitter_mm),
        })
    return studies


def to_coordinate_set(studies):
    """The studies as a dmeta CoordinateSet."""
    analyses = pd.DataFrame({
        "id": [s["id"] for s in studies],
        "study_id": [s["study_id"] for s in studies],
        "analysis_id": "1",
        "sample_size": [s["sample_size"] for s in studies],
    })
    foci = pd.DataFrame({
        "id": np.repeat([s["id"] for s in studies], [len(s["xyz"]) for s in studies]),
        **dict(zip("xyz", np.concatenate([s["xyz"] for s in studies]).T)),
    })
    return dmeta.CoordinateSet(analyses, foci, source="synthetic")


def to_nimare_dataset(studies):
    """The studies as a NiMARE Dataset in MNI152 2 mm."""
    from nimare.dataset import Dataset

    source = {
        s["study_id"]: {"contrasts": {"1": {
            "coords": {"space": "MNI", **{k: list(map(float, v))
                                          for k, v in zip("xyz", s["xyz"].T)}},
            "metadata": {"sample_sizes": [s["sample_size"]]},
        }}}
        for s in studies
    }
    return Dataset(source)


def synthetic(n_analyses=500, seed=0):
    """(dmeta CoordinateSet, NiMARE Dataset) with the same foci."""
    studies = synthetic_foci(n_analyses, seed=seed)
    return to_coordinate_set(studies), to_nimare_dataset(studies)
