"""A seeded synthetic coordinate set: many analyses with random in-mask foci.

The same foci and sample sizes are given to dmeta (a :class:`dmeta.CoordinateSet`) and to
NiMARE (a :class:`nimare.dataset.Dataset`), so both fit identical ALEs.
"""

import numpy as np
import pandas as pd

import dmeta
from dmeta.space import Space


def synthetic_foci(n_analyses=500, foci=(5, 15), sample_sizes=(10, 40), seed=0):
    """Random in-mask foci (MNI mm) and sample sizes, as a per-analysis list of dicts."""
    rng = np.random.default_rng(seed)
    space = Space.from_mask()
    studies = []
    for a in range(n_analyses):
        voxels = space.ijk[rng.integers(space.n_voxels, size=rng.integers(foci[0], foci[1] + 1))]
        studies.append({
            "id": f"study{a:04d}-1",
            "study_id": f"study{a:04d}",
            "sample_size": int(rng.integers(sample_sizes[0], sample_sizes[1] + 1)),
            "xyz": space.ijk_to_mm(voxels),
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
    """(dmeta CoordinateSet, NiMARE Dataset) with the same random foci."""
    studies = synthetic_foci(n_analyses, seed=seed)
    return to_coordinate_set(studies), to_nimare_dataset(studies)
