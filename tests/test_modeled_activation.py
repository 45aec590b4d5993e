"""The MA matrix builder: bit for bit the matrix of dmeta's previous kernel (kept in
benchmarks/bench_ma.py) whatever the block size; the same summary, maps and null in process
or as Dask tasks; and a large set's paths (no matrix in the client, the chunked
log(1 - MA), a matrix too large for this machine)."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dmeta import ALE, ma_blocks
from dmeta import ale as ale_module
from dmeta._ma_kernel import row_spans
from dmeta.datasets import load_example
from dmeta.errors import InputError
from dmeta.kernels import KernelBank
from dmeta.ma_blocks import build_ma
from dmeta.modeled_activation import FociLayout, ModeledActivation, analysis_fwhms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_ma import old_ma_matrix, same_matrix  # noqa: E402
from synthetic import synthetic_foci, to_coordinate_set  # noqa: E402


def ma_matrix(foci, kernels, space, **options):
    return build_ma(foci, kernels, space, dask_min=None, **options)[1]


def assert_same_summary(a, b, sums_exact=True):
    if sums_exact:
        np.testing.assert_array_equal(a.log_complement, b.log_complement)
    np.testing.assert_array_equal(a.statistic(), b.statistic())
    np.testing.assert_array_equal(a.maxima, b.maxima)
    for field in ("ptr", "bins", "counts", "reached"):
        np.testing.assert_array_equal(getattr(a.histograms, field), getattr(b.histograms, field))


def _inputs(cset, space):
    return FociLayout(cset, space), KernelBank(analysis_fwhms(cset), space.zooms)


@pytest.fixture(scope="module")
def synthetic_inputs(space):
    return _inputs(to_coordinate_set(synthetic_foci(150, seed=3)), space)


@pytest.mark.parametrize("name", ["pain", "semantic_knowledge"])
def test_bundled_data_match_the_previous_kernel(name, space):
    foci, kernels = _inputs(load_example(name), space)
    assert same_matrix(ma_matrix(foci, kernels, space), old_ma_matrix(foci, kernels, space))


def test_synthetic_data_match_the_previous_kernel(synthetic_inputs, space):
    foci, kernels = synthetic_inputs
    assert len(kernels.kernels) > 1  # kernels of several widths, padded to one cube
    assert same_matrix(ma_matrix(foci, kernels, space), old_ma_matrix(foci, kernels, space))


def test_foci_beyond_the_volume_edges(toy_space):
    """Kernels wider than the toy volume, centred inside, near and beyond its edges."""
    rng = np.random.default_rng(7)
    corners = toy_space.affine @ np.array([[0, 0, 0, 1], [*toy_space.shape, 1]]).T
    lo, hi = corners[:3].min(axis=1) - 12, corners[:3].max(axis=1) + 12
    studies = [{"id": f"s{a}-1", "study_id": f"s{a}", "sample_size": int(n),
                "xyz": rng.uniform(lo, hi, size=(rng.integers(1, 6), 3))}
               for a, n in enumerate(rng.integers(5, 40, size=30))]
    studies.insert(3, {"id": "far-1", "study_id": "far", "sample_size": 20,
                       "xyz": np.array([[200.0, 0, 0], [0, -300.0, 0]])})
    foci, kernels = _inputs(to_coordinate_set(studies), toy_space)
    new = ma_matrix(foci, kernels, toy_space, block=4)
    assert same_matrix(new, old_ma_matrix(foci, kernels, toy_space))
    assert new.indptr[4] == new.indptr[3]  # 'far' reaches no in-mask voxel


@pytest.mark.parametrize("block", [1, 7, 64])
def test_block_size_does_not_change_the_matrix(block, synthetic_inputs, space):
    foci, kernels = synthetic_inputs
    assert same_matrix(ma_matrix(foci, kernels, space, block=block),
                       ma_matrix(foci, kernels, space))


def test_small_inputs_stay_in_process(space, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("run_blocks called")

    monkeypatch.setattr(ma_blocks, "run_blocks", no_cluster)
    cset = load_example("pain")
    assert ModeledActivation(cset, space).matrix.shape[0] == len(cset.ids)


def test_large_sets_keep_no_matrix_in_the_client(client, space, monkeypatch):
    """Above MA_DASK_MIN analyses only the summary comes back; the matrix is built (by the
    same blocks, bit for bit) when a diagnostic asks for it."""
    cset = to_coordinate_set(synthetic_foci(60, seed=5))
    in_process = ModeledActivation(cset, space)
    monkeypatch.setattr(ma_blocks, "MA_DASK_MIN", 10)
    monkeypatch.setattr(ma_blocks, "MA_BLOCK", 16)
    on_workers = ModeledActivation(cset, space)
    assert on_workers._matrix is None
    np.testing.assert_array_equal(on_workers.summary.statistic(),
                                  in_process.summary.statistic())
    assert same_matrix(on_workers.matrix, in_process.matrix)


@pytest.mark.parametrize("block", [16, 50])
def test_dask_blocks_give_the_same_summary(block, client, synthetic_inputs, space):
    """On the workers only the summaries come back: the same as in process, bit for bit."""
    foci, kernels = synthetic_inputs
    summary, matrix = build_ma(foci, kernels, space, block=block, dask_min=0)
    assert matrix is None
    assert_same_summary(summary, build_ma(foci, kernels, space, block=block, dask_min=None)[0])


def test_kernel_reductions_equal_numpy_on_the_rows(synthetic_inputs, space):
    """The kernel reduces the maps as it reads them back, with numpy's log1p per distinct
    value: the same summary as reducing the finished rows (numpy's log1p per non-zero)."""
    foci, kernels = synthetic_inputs
    summary, matrix = build_ma(foci, kernels, space, block=40, dask_min=None)
    edges = ma_blocks.block_edges(foci, kernels, space, 40)
    assert len(edges) == 5
    assert_same_summary(summary, ma_blocks.summarize(matrix, edges))


def test_block_size_changes_no_map(synthetic_inputs, space):
    """Block sums are added in block order: the float64 sum may move in its last bits with
    the block size, the float32 statistic (and so p and z) does not."""
    foci, kernels = synthetic_inputs
    stats = [build_ma(foci, kernels, space, block=block, dask_min=None)[0].statistic()
             for block in (7, 64, 250)]
    np.testing.assert_array_equal(stats[0], stats[2])
    np.testing.assert_array_equal(stats[1], stats[2])


def test_blocks_are_bounded_in_bytes(synthetic_inputs, space):
    """A block holds at most MA_BLOCK_BYTES of estimated rows: wide data makes more blocks."""
    foci, kernels = synthetic_inputs
    per_analysis = ma_blocks._row_bytes(foci, kernels, space)
    budget = int(per_analysis.max() * 3)
    edges = ma_blocks.block_edges(foci, kernels, space, budget=budget)
    sizes = [per_analysis[a0:a1].sum() for a0, a1 in zip(edges[:-1], edges[1:])]
    assert edges[0] == 0 and edges[-1] == len(foci.ids) and max(sizes) <= budget
    assert len(sizes) >= per_analysis.sum() / budget > 1
    summary, matrix = build_ma(foci, kernels, space, dask_min=None)
    assert_same_summary(ma_blocks.summarize(matrix, edges), summary, sums_exact=False)


def test_row_spans_are_the_positive_runs():
    kernels = np.zeros((1, 3, 3, 3), dtype=np.float32)
    kernels[0, 1, 1] = [0.5, 1.0, 0.5]
    kernels[0, 1, 2, 1:] = 0.25
    spans = row_spans(kernels)
    assert spans[0, 1, 1].tolist() == [0, 3] and spans[0, 1, 2].tolist() == [1, 3]
    assert spans[0, 0, 0].tolist() == [0, 0]
    kernels[0, 1, 1, 1] = 0.0
    with pytest.raises(ValueError, match="not contiguous"):
        row_spans(kernels)


@pytest.mark.parametrize("kept_here", [True, False])
def test_chunked_log_complement(kept_here, space, monkeypatch):
    """to_xarray: one Dask chunk per block, numpy's log1p of the rows, lazily."""
    monkeypatch.setattr(ma_blocks, "MA_BLOCK", 6)
    ma = ModeledActivation(load_example("pain"), space)
    dense = np.log1p(-ma.matrix.toarray())
    if not kept_here:
        ma._matrix = None  # as for a set built on the workers
    array = ma.to_xarray()
    assert array.dims == ("analysis", "voxel") and list(array["analysis"].values) == ma.ids
    assert array.chunks[0] == (6, 6, 6, 3) and array.dtype == np.float32
    np.testing.assert_array_equal(array.values, dense)
    np.testing.assert_allclose(array.sum("analysis").values, ma.summary.log_complement,
                               rtol=1e-6, atol=1e-9)


def test_ale_on_the_workers_equals_in_process(client, monkeypatch):
    """A set above MA_DASK_MIN: blocks reduced on the workers, the null folded as they
    arrive; the same maps and null as in process, bit for bit."""
    cset = to_coordinate_set(synthetic_foci(60, seed=5))
    expected = ALE().fit(cset)
    monkeypatch.setattr(ma_blocks, "MA_DASK_MIN", 10)
    monkeypatch.setattr(ma_blocks, "MA_BLOCK", 16)

    def no_second_fold(*args, **kwargs):
        raise AssertionError("the null was folded again after the blocks arrived")

    monkeypatch.setattr(ale_module, "approximate_null", no_second_fold)
    got = ALE().fit(cset)
    assert got.estimator.ma_._matrix is None
    np.testing.assert_array_equal(got.estimator.null_weights_, expected.estimator.null_weights_)
    for name in ("stat", "p", "z", "logp"):
        np.testing.assert_array_equal(got.get_map(name, "array"), expected.get_map(name, "array"))


def test_a_matrix_this_machine_cannot_hold_is_refused(space, monkeypatch):
    """A set built on the workers has no matrix here; building it for a diagnostic on a
    machine without the memory is a clear error naming the size, not a crash."""
    ma = ModeledActivation(load_example("pain"), space)
    ma._matrix = None
    monkeypatch.setattr(ma_blocks.psutil, "virtual_memory",
                        lambda: SimpleNamespace(available=2**20))
    with pytest.raises(InputError, match=r"the MA matrix of 21 analyses needs about 0\.\d GiB "
                                         r"in this process and 0\.0 GiB is free"):
        ma.matrix  # noqa: B018
