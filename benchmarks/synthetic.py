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
conversion, unless ``talairach`` hands a share of the analyses over in Talairach space); no
sample size is missing, and no two analyses share subjects.

The same foci and sample sizes are given to dmeta (a :class:`dmeta.CoordinateSet`) and to
NiMARE (a :class:`nimare.dataset.Dataset`), so both fit the same ALE to the same foci.
"""

import functools
import json

import numpy as np
import pandas as pd

import dmeta
from dmeta.io import tal2mni
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


def mni_to_tal(xyz):
    """The inverse of :func:`dmeta.io.tal2mni` (an affine map)."""
    shift = tal2mni(np.zeros((1, 3)))[0]
    linear = (tal2mni(np.eye(3)) - shift).T
    return np.linalg.solve(linear, (np.asarray(xyz) - shift).T).T


def synthetic_foci(n_analyses=500, seed=0, jitter_mm=4.0, talairach=0.0):
    """Analyses shaped like the bundled real ones (see the module docstring).

    ``talairach`` is the share of analyses whose foci are given in Talairach space (chosen
    at random, their MNI foci converted), for readers to convert back as they do real data.

    Returns
    -------
    list of dict
        Per analysis: ``id``, ``study_id``, ``sample_size``, ``space`` ("MNI" or "TAL") and
        ``xyz`` (n_foci x 3, mm in that space).
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
            "space": "MNI",
            "xyz": jittered_foci(rng, space, pool, int(n_foci), jitter_mm),
        })
    # A stream of its own, so that the foci of a seed do not depend on ``talairach``.
    for study in np.random.default_rng([seed, 1]).permutation(studies)[
            :round(talairach * n_analyses)]:
        study["space"], study["xyz"] = "TAL", mni_to_tal(study["xyz"])
    return studies


def to_coordinate_set(studies):
    """The studies as a dmeta CoordinateSet."""
    analyses = pd.DataFrame({
        "id": [s["id"] for s in studies],
        "study_id": [s["study_id"] for s in studies],
        "analysis_id": "1",
        "sample_size": [s["sample_size"] for s in studies],
    })
    spaces = [s.get("space", "MNI") for s in studies]
    mni = [tal2mni(s["xyz"]) if space == "TAL" else s["xyz"] for s, space in zip(studies, spaces)]
    foci = pd.DataFrame({
        "id": np.repeat([s["id"] for s in studies], [len(s["xyz"]) for s in studies]),
        **dict(zip("xyz", np.concatenate(mni).T)),
        "space": np.repeat(spaces, [len(s["xyz"]) for s in studies]),
    })
    return dmeta.CoordinateSet(analyses, foci, source="synthetic")


def nimare_source(studies):
    """The studies as the dictionary of a NiMARE Dataset JSON file."""
    return {
        s["study_id"]: {"contrasts": {"1": {
            "coords": {"space": s.get("space", "MNI"),
                       **{k: list(map(float, v)) for k, v in zip("xyz", s["xyz"].T)}},
            "metadata": {"sample_sizes": [s["sample_size"]]},
        }}}
        for s in studies
    }


def write_nimare_json(studies, path):
    """The studies as a NiMARE Dataset JSON file, which both tools read."""
    with open(path, "w") as f:
        json.dump(nimare_source(studies), f)
    return path


def to_nimare_dataset(studies):
    """The studies as a NiMARE Dataset in MNI152 2 mm."""
    from nimare.dataset import Dataset

    return Dataset(nimare_source(studies))


def synthetic(n_analyses=500, seed=0):
    """(dmeta CoordinateSet, NiMARE Dataset) with the same foci."""
    studies = synthetic_foci(n_analyses, seed=seed)
    return to_coordinate_set(studies), to_nimare_dataset(studies)
