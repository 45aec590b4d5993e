"""Small coordinate sets on the toy grid, shared by the tests that build their own groups."""

import pandas as pd

import dmeta


def toy_cset(space, rng, n, prefix, source=None):
    """``n`` analyses with 1-3 foci at random in-mask voxels of ``space``."""
    ids, foci = [], []
    for a in range(n):
        ids.append(f"{prefix}{a}-1")
        for ijk in space.ijk[rng.integers(space.n_voxels, size=rng.integers(1, 4))]:
            foci.append((ids[-1], *space.ijk_to_mm(ijk[None])[0]))
    analyses = pd.DataFrame({"id": ids, "study_id": [i[:-2] for i in ids], "analysis_id": "1",
                             "sample_size": rng.integers(8, 30, size=n)})
    return dmeta.CoordinateSet(analyses, pd.DataFrame(foci, columns=["id", "x", "y", "z"]),
                               source=source)
