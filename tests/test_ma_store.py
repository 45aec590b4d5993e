"""A fit's modeled activation in its result store: a lossless round trip, and a result
opened from the store that correction and diagnostics run on as on the fit's own."""

import sys
from pathlib import Path

import numpy as np
import pytest

import dmeta
from dmeta import ma_blocks
from dmeta.errors import InputError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_ma import same_matrix  # noqa: E402


@pytest.fixture(scope="module")
def stored(knowledge_ale, tmp_path_factory):
    path = tmp_path_factory.mktemp("ma") / "fit.zarr"
    knowledge_ale.to_zarr(path, modeled_activation=True)
    return dmeta.open_result(path)


def test_round_trip_is_lossless(knowledge_ale, stored):
    ours, back = knowledge_ale.estimator, stored.estimator
    assert isinstance(back, dmeta.ALE)
    assert same_matrix(back.ma_.matrix, ours.ma_.matrix)
    assert back.ma_.ids == ours.ma_.ids
    np.testing.assert_array_equal(back.ma_.foci.ijk, ours.ma_.foci.ijk)
    np.testing.assert_array_equal(back.ma_.kernels.fwhms, ours.ma_.kernels.fwhms)
    np.testing.assert_array_equal(back.null_weights_, ours.null_weights_)
    np.testing.assert_array_equal(back.bins_, ours.bins_)
    np.testing.assert_array_equal(back.ma_.summary.statistic(), stored.get_map("stat", "array"))


def test_correction_runs_on_the_opened_result(knowledge_ale, stored):
    corrector = dmeta.FWECorrector(n_iters=40, seed=3)
    expected, got = corrector.transform(knowledge_ale), corrector.transform(stored)
    for name in expected.maps.data_vars:
        np.testing.assert_array_equal(got.get_map(name, "array"),
                                      expected.get_map(name, "array"))


def test_rows_written_block_by_block_without_a_matrix(space, tmp_path, monkeypatch):
    """A set built on the workers has no matrix here: its rows are rebuilt one block at a
    time as they are written, and read back equal to the matrix built in process."""
    cset = dmeta.datasets.load_example("pain")
    result = dmeta.ALE().fit(cset)
    monkeypatch.setattr(ma_blocks, "MA_BLOCK", 4)
    built = result.estimator.ma_.matrix
    result.estimator.ma_._matrix = None
    result.to_zarr(tmp_path / "blocks.zarr", modeled_activation=True)
    assert same_matrix(dmeta.open_result(tmp_path / "blocks.zarr").estimator.ma_.matrix, built)


def test_without_modeled_activation_no_estimator(knowledge_ale, tmp_path):
    knowledge_ale.to_zarr(tmp_path / "maps.zarr")
    assert dmeta.open_result(tmp_path / "maps.zarr").estimator is None
    assert not (tmp_path / "maps.zarr" / "modeled_activation").exists()


def test_modeled_activation_needs_a_fit(stored, tmp_path):
    result = stored.copy()
    result.estimator = None
    with pytest.raises(InputError, match="modeled_activation=True needs the result of ALE.fit"):
        result.to_zarr(tmp_path / "x.zarr", modeled_activation=True)
    assert not (tmp_path / "x.zarr").exists()


def test_jackknife_runs_on_the_opened_result(knowledge_ale, stored):
    jackknife = dmeta.Jackknife(target_image="z", voxel_thresh=0.001)
    expected, got = jackknife.transform(knowledge_ale), jackknife.transform(stored)
    assert expected.tables.keys() == got.tables.keys()
    for name, table in expected.tables.items():
        assert got.tables[name].equals(table), name
