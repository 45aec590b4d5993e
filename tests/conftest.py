"""Shared fixtures: analysis spaces (the real MNI mask and a tiny toy grid) and an RNG."""

from pathlib import Path

import numpy as np
import pytest

from dmeta.datasets import default_mask_path
from dmeta.space import Space


@pytest.fixture(scope="session")
def mask_path() -> Path:
    """The MNI152 2 mm brain mask dmeta uses as its default space."""
    return default_mask_path()


@pytest.fixture(scope="session")
def space(mask_path) -> Space:
    """The default MNI152 2 mm space (91x109x91, 228,483 voxels)."""
    return Space.from_mask(mask_path)


@pytest.fixture(scope="session")
def toy_space() -> Space:
    """A small ellipsoid mask on a 3 mm, x-flipped grid: fast, and catches axis mix-ups."""
    i, j, k = np.indices((6, 7, 5))
    mask = ((i - 2.5) / 3) ** 2 + ((j - 3) / 3.5) ** 2 + ((k - 2) / 2.5) ** 2 <= 1
    affine = np.array(
        [[-3.0, 0, 0, 9], [0, 3.0, 0, -12], [0, 0, 3.0, -6], [0, 0, 0, 1]]
    )
    return Space(mask, affine, name="toy")


@pytest.fixture(scope="session")
def toy_groups(toy_space):
    """Two small groups on the toy grid (5 and 4 analyses)."""
    from toy_sets import toy_cset

    rng = np.random.default_rng(7)
    return toy_cset(toy_space, rng, 5, "a", "g1.txt"), toy_cset(toy_space, rng, 4, "b", "g2.txt")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def crash_after_writes(monkeypatch):
    """``crash_after_writes(n)``: Monte Carlo blocks are stored until ``n`` are, then the
    next write raises KeyboardInterrupt (a run interrupted with ``n`` blocks written); the
    undo is ``monkeypatch.undo()``."""
    from dmeta.montecarlo.store import NullStore

    def arm(n):
        written = []
        original = NullStore.write

        def write(self, *args):
            if len(written) == n:
                raise KeyboardInterrupt
            written.append(args[0])
            original(self, *args)

        monkeypatch.setattr(NullStore, "write", write)

    return arm


@pytest.fixture(scope="session")
def client():
    """Two single-threaded local workers, shared by the tests that run Dask graphs."""
    from dmeta.compute import close, connect

    client = connect("local", workers=2, quiet=True, dashboard_address=":0")
    yield client
    close(client)


@pytest.fixture(scope="session")
def knowledge():
    """The semantic-knowledge example (21 Sleuth experiments)."""
    from dmeta.datasets import load_example

    return load_example("semantic_knowledge")


@pytest.fixture(scope="session")
def pain_ale():
    """ALE fitted to the pain example (21 NIDM analyses)."""
    import warnings

    from dmeta.ale import ALE
    from dmeta.datasets import load_example

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ALE().fit(load_example("pain"))


@pytest.fixture(scope="session")
def knowledge_ale(knowledge):
    """ALE fitted to the semantic-knowledge example."""
    import warnings

    from dmeta.ale import ALE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return ALE().fit(knowledge)


@pytest.fixture(scope="session")
def neurostore_export(tmp_path_factory):
    """A NIMADS studyset shaped like a real NeuroStore export (see neurostore_export.py)."""
    from neurostore_export import write_neurostore_export

    return write_neurostore_export(tmp_path_factory.mktemp("neurostore"))
