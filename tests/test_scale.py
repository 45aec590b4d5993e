"""SCALE: NiMARE 0.22.1's maps (from NiMARE's own draws, exactly), the same maps for any
chunking or workers, a store that resumes and extends, and clear errors for bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta.errors import InputError
from dmeta.ma_blocks import build_ma
from dmeta.modeled_activation import FociLayout
from dmeta.scale import SCALE, scale_base_rate
from dmeta.scale.base_rate import base_rate_ijk
from dmeta.scale.estimator import exceedance_p
from dmeta.scale.null import ScalePlan, _ale32, ale_cut
from dmeta.stats import p_to_logp, p_to_z

N_PARITY = 100


def _quiet_fit(estimator, cset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return estimator.fit(cset)


def _same_maps(a, b):
    assert a.maps.identical(b.maps) and a.nulls.identical(b.nulls)


@pytest.fixture(scope="module")
def pain():
    return dmeta.datasets.load_example("pain")


@pytest.fixture(scope="module")
def xyz(knowledge):
    """The semantic-knowledge foci as the base rate."""
    return scale_base_rate(knowledge)


@pytest.fixture(scope="module")
def nimare_fit(space, xyz):
    """NiMARE's SCALE on pain (dmeta's mask), and the draws it made: (n_foci x n_iters)
    rows of ``xyz``, foci in NiMARE's order."""
    pytest.importorskip("nimare")
    from nimare.meta.cbma.ale import SCALE as NiMARESCALE

    from nimare_reference import nimare_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = NiMARESCALE(xyz=xyz, n_iters=N_PARITY, random_state=0, mask=space.mask_img)
        result = estimator.fit(nimare_dataset("pain"))
        foci, _, _, draws = estimator._prepare_permutations(N_PARITY)
    return result, foci, draws


@pytest.fixture(scope="module")
def fitted(client, pain, xyz):
    return _quiet_fit(SCALE(xyz, n_iters=N_PARITY, seed=0), pain)


def test_nimare_draws_give_nimare_maps(space, pain, xyz, nimare_fit, fitted):
    """Fed NiMARE's draws, dmeta's null counts what NiMARE's does, voxel for voxel."""
    result, nimare_foci, draws = nimare_fit
    # NiMARE's rows of each focus, in dmeta's focus order (foci keep their order within an
    # analysis in both).
    def keys(table):
        return list(zip(table["id"], table.groupby("id").cumcount()))

    row = {key: r for r, key in enumerate(keys(nimare_foci))}
    order = [row[key] for key in keys(pain.foci)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan = ScalePlan(fitted.estimator.ma_, base_rate_ijk(xyz, space))
    plan.draws = lambda seed, start, stop: np.ascontiguousarray(draws.T[start:stop, order])
    _, counts = plan.run(0, 0, N_PARITY)
    p = exceedance_p(counts, N_PARITY)
    nimare_z = space.from_image(result.get_map("z"))
    np.testing.assert_allclose(p_to_z(p), nimare_z, atol=1e-5)
    np.testing.assert_allclose(p_to_logp(p), space.from_image(result.get_map("logp")),
                               atol=1e-5)
    assert (nimare_z > 2).sum() > 100


def test_own_draws_agree_with_nimare(space, nimare_fit, fitted):
    """Same inputs and iterations, independent draws: the same statistic, close z."""
    result = nimare_fit[0]
    assert set(result.maps) <= set(fitted.maps) == {"stat", "p", "z", "logp"}
    np.testing.assert_allclose(fitted.get_map("stat", "array"),
                               space.from_image(result.get_map("stat")), rtol=1e-6, atol=1e-9)
    z, nimare_z = fitted.get_map("z", "array"), space.from_image(result.get_map("z"))
    assert np.corrcoef(z, nimare_z)[0, 1] >= 0.95


def test_result_records_what_ran(fitted, xyz):
    params = fitted.attrs["params"]
    assert fitted.attrs["estimator"] == "SCALE"
    assert params["seed"] == 0 and params["n_iters"] == N_PARITY
    assert params["xyz"].startswith(f"{len(xyz)} base-rate coordinates")
    assert fitted.nulls.sizes["iteration"] == N_PARITY
    assert np.all(fitted.nulls["max_stat"].values >= fitted.get_map("stat", "array").min())
    assert f"one of {len(xyz)} base-rate coordinates" in fitted.description
    assert "analyses" in fitted.tables
    p = fitted.get_map("p", "array")
    assert p.min() >= 1 / N_PARITY and p.max() <= 1 - 1 / N_PARITY


def _toy_cset(toy_space):
    rng = np.random.default_rng(5)
    ids, foci = [f"t{a}-1" for a in range(4)], []
    for name in ids:
        for ijk in toy_space.ijk[rng.integers(toy_space.n_voxels, size=rng.integers(1, 4))]:
            foci.append((name, *toy_space.ijk_to_mm(ijk[None])[0]))
    foci.append((ids[0], *toy_space.ijk_to_mm([[2, 3, -3]])[0]))  # beyond the grid
    analyses = pd.DataFrame({"id": ids, "study_id": [i[:-2] for i in ids], "analysis_id": "1",
                             "sample_size": [8, 12, 20, 30]})
    return dmeta.CoordinateSet(analyses, pd.DataFrame(foci, columns=["id", "x", "y", "z"]))


def test_block_matches_dense_reference_on_and_off_the_grid(toy_space):
    """Base-rate points in the mask, outside it, just beyond each face of the grid (their
    kernels reach in) and far away: counts and maxima as dense ALE maps give them."""
    cset = _toy_cset(toy_space)
    ale = _quiet_fit(dmeta.ALE(mask=toy_space), cset)
    ma, stat = ale.estimator.ma_, ale.get_map("stat", "array")
    nx, ny, nz = toy_space.shape
    off = [[0, 0, 0], [-2, 3, 2], [nx + 1, 3, 2], [3, -3, 2], [3, ny, 2], [3, 3, -4],
           [3, 3, nz + 2], [-40, 3, 2], [3, 3, 60]]
    points = np.concatenate([toy_space.ijk[::3], off])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plan = ScalePlan(ma, base_rate_ijk(toy_space.ijk_to_mm(points), toy_space))
    values, counts = plan.run(seed=4, start=0, stop=12)
    expected, maxima = np.zeros_like(counts), []
    for draw in plan.draws(4, 0, 12):
        layout = FociLayout.of(ma.ids, plan.points[draw], ma.foci.starts)
        null = build_ma(layout, ma.kernels, toy_space)[0].statistic()
        expected += null >= stat
        maxima.append(null.max())
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_allclose(values[:, 0], maxima, rtol=1e-6)
    assert 0 < counts.sum() < 12 * toy_space.n_voxels


def test_ale_cut_is_the_last_log_value_reaching_the_ale():
    rng = np.random.default_rng(0)
    observed = -np.concatenate([10.0 ** rng.uniform(-20, 1, 2000), [0.0, 1e-30]])
    observed = observed.astype(np.float32)
    cut = ale_cut(observed)
    target = _ale32(observed)
    assert np.all(_ale32(cut) >= target)
    reached = target > 0
    closer = np.nextafter(cut[reached], np.float32(0))
    assert np.all(_ale32(closer) < target[reached])
    assert np.all(cut[~reached] == 0) and np.all(cut[reached] < 0)


def test_maps_do_not_depend_on_chunking_or_workers(client, pain, xyz):
    from distributed import Client, LocalCluster

    whole = _quiet_fit(SCALE(xyz, n_iters=24, seed=3, chunk_iters=24), pain)
    _same_maps(whole, _quiet_fit(SCALE(xyz, n_iters=24, seed=3, chunk_iters=5), pain))
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=":0") as cluster:
        with Client(cluster):
            one = _quiet_fit(SCALE(xyz, n_iters=24, seed=3, chunk_iters=7), pain)
    _same_maps(whole, one)
    assert not whole.maps.identical(
        _quiet_fit(SCALE(xyz, n_iters=24, seed=4), pain).maps)


def test_interrupted_run_resumes_to_the_uninterrupted_result(client, pain, xyz, tmp_path,
                                                             monkeypatch, crash_after_writes):
    store = tmp_path / "scale.zarr"
    uninterrupted = _quiet_fit(SCALE(xyz, n_iters=20, seed=2, chunk_iters=4), pain)
    crash_after_writes(2)
    with pytest.raises(KeyboardInterrupt):
        _quiet_fit(SCALE(xyz, n_iters=20, seed=2, chunk_iters=4, store=store), pain)
    monkeypatch.undo()
    resumed = _quiet_fit(SCALE(xyz, n_iters=20, store=store), pain)
    _same_maps(resumed, uninterrupted)
    assert resumed.attrs["params"]["seed"] == 2


def test_extension_equals_a_single_longer_run(client, pain, xyz, tmp_path):
    store = tmp_path / "scale.zarr"
    first = _quiet_fit(SCALE(xyz, n_iters=9, chunk_iters=4, store=store), pain)
    extended = _quiet_fit(SCALE(xyz, n_iters=21, store=store), pain)
    seed = first.attrs["params"]["seed"]
    assert extended.attrs["params"]["seed"] == seed
    _same_maps(extended, _quiet_fit(SCALE(xyz, n_iters=21, seed=seed), pain))


def test_store_for_another_base_rate_is_refused(client, pain, xyz, tmp_path):
    store = tmp_path / "scale.zarr"
    _quiet_fit(SCALE(xyz, n_iters=4, seed=1, store=store), pain)
    with pytest.raises(InputError, match="other inputs or parameters"):
        _quiet_fit(SCALE(xyz[:-1], n_iters=4, seed=1, store=store), pain)


@pytest.mark.parametrize("bad, match", [
    (np.empty((0, 3)), "xyz holds no coordinates"),
    ([], "xyz must be an \\(n, 3\\) array"),
    (np.zeros((4, 2)), "got shape \\(4, 2\\)"),
    ([["a", "b", "c"]], "got list"),
    (np.full((3, 3), np.nan), "none of its 3 rows is finite"),
])
def test_bad_base_rates_are_refused(pain, bad, match):
    with pytest.raises(InputError, match=match):
        SCALE(bad, n_iters=5).fit(pain)


def test_bad_inputs_are_refused(pain, knowledge, xyz):
    with pytest.raises(InputError, match="scale_base_rate"):
        SCALE(knowledge).fit(pain)
    with pytest.raises(InputError, match="expects a dmeta.CoordinateSet"):
        SCALE(xyz).fit(xyz)
    with pytest.raises(InputError, match="n_iters must be a positive integer"):
        SCALE(xyz, n_iters=0).fit(pain)
    with pytest.raises(InputError, match="seed must be a non-negative integer"):
        SCALE(xyz, seed=-1).fit(pain)


def test_base_rate_rows_outside_the_mask_warn_and_non_finite_ones_are_dropped(space, xyz):
    messy = np.concatenate([xyz, [[np.nan, 0, 0], [0, np.inf, 0], [0, 0, 500]]])
    with pytest.warns(UserWarning) as caught:
        ijk = base_rate_ijk(messy, space)
    dropped, outside = (str(w.message) for w in caught)
    assert dropped.startswith(f"xyz: 2 of {len(messy)} base-rate rows hold a non-finite")
    assert f"rows {len(xyz)}, {len(xyz) + 1})" in dropped
    n_outside = (~space.in_mask(space.mm_to_ijk(xyz))).sum() + 1
    assert outside.startswith(f"xyz: {n_outside} of {len(xyz) + 1} base-rate coordinates lie "
                              "outside the mask")
    np.testing.assert_array_equal(ijk[:-1], space.mm_to_ijk(xyz))


def test_base_rate_from_a_set_or_a_file(knowledge):
    from dmeta.datasets import example_path

    expected = knowledge.foci[["x", "y", "z"]].to_numpy(dtype=float)
    np.testing.assert_array_equal(scale_base_rate(knowledge), expected)
    np.testing.assert_array_equal(scale_base_rate(example_path("semantic_knowledge")),
                                  expected)
    with pytest.raises(InputError, match="file not found"):
        scale_base_rate("no-such-file.txt")


def test_fwe_corrector_voxel_level(fitted):
    """FWECorrector on a SCALE result: voxel-level maps from the fit's maxima (same count),
    or from a null of another count that starts with the fit's iterations."""
    result = fitted
    n = int(result.nulls.sizes["iteration"])
    corrected = dmeta.FWECorrector(n_iters=n).transform(result)
    null = np.sort(result.nulls["max_stat"].values)
    stat = result.get_map("stat", "array")
    p = np.clip(1 - np.searchsorted(null, stat, side="left") / n, 1 / n, 1 - 1 / n)
    np.testing.assert_allclose(corrected.get_map("logp_level-voxel_corr-FWE_method-montecarlo",
                                                 "array"), -np.log10(p), rtol=1e-5)
    assert "z_desc-size_level-cluster_corr-FWE_method-montecarlo" not in corrected.maps
    longer = dmeta.FWECorrector(n_iters=n + 10).transform(result)
    np.testing.assert_array_equal(longer.nulls["max_stat"].values[:n],
                                  result.nulls["max_stat"].values)
