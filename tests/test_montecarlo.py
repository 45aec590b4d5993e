"""The Monte Carlo engine: same numbers as a dense reference, whatever the chunking or
workers, and a Zarr store that resumes, extends and refuses what it was not written for."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmeta.approximate_null import hist_to_threshold
from dmeta.clusters import supra_threshold_clusters
from dmeta.correct import FWECorrector
from dmeta.errors import InputError
from dmeta.ma_blocks import build_ma
from dmeta.montecarlo import NullPlan, run_null
from dmeta.montecarlo.store import NullStore


@pytest.fixture(scope="module")
def plan(knowledge_ale):
    ale = knowledge_ale.estimator
    return NullPlan(ale.ma_, hist_to_threshold(ale.null_weights_, ale.bins_, 0.001))


def _dense_iteration(ma, plan, draws):
    """One iteration the slow way: full MA matrix, ALE, scipy cluster labelling."""
    layout = type("Layout", (), {})()
    layout.ids, layout.starts = ma.foci.ids, ma.foci.starts
    layout.ijk = plan.mask_ijk[draws]
    stat = build_ma(layout, ma.kernels, ma.space)[0].statistic().astype(float)
    _, sizes, masses = supra_threshold_clusters(ma.space.to_volume(stat), plan.thresh)
    return stat.max(), sizes.max(), masses.max()


def test_block_matches_dense_reference(knowledge_ale, plan):
    values, _ = plan.run(seed=7, start=0, stop=6)
    for it, row in enumerate(values):
        draws = plan.draws(7, it, it + 1)[0]
        expected = _dense_iteration(knowledge_ale.estimator.ma_, plan, draws)
        np.testing.assert_allclose(row, expected, rtol=2e-4, atol=1e-6)
    assert values[:, 1].max() > 0, "some iteration should form a cluster"


def test_iterations_do_not_depend_on_block_boundaries(plan):
    whole, _ = plan.run(seed=3, start=0, stop=12)
    parts = np.concatenate([plan.run(3, 0, 5)[0], plan.run(3, 5, 12)[0]])
    np.testing.assert_array_equal(whole, parts)
    assert not np.array_equal(whole, plan.run(4, 0, 12)[0])


def test_plans_compute_only_what_they_are_asked_for(knowledge_ale, plan):
    """thresh=None skips clusters (size and mass 0), bins=None the histogram (empty); the
    maximum ALE is the same either way, and a histogram counts every in-mask voxel."""
    ale = knowledge_ale.estimator
    values, hist = plan.run(3, 0, 6)
    assert plan.clusters and not plan.histogram and hist.shape == (0,)
    others = [NullPlan(ale.ma_, None), NullPlan(ale.ma_, None, ale.bins_),
              NullPlan(ale.ma_, plan.thresh, ale.bins_)]
    (bare, no_hist), (voxelwise, counts), (both, both_counts) = (p.run(3, 0, 6) for p in others)
    assert no_hist.shape == (0,) and counts.sum() == 6 * ale.space_.n_voxels
    np.testing.assert_array_equal(both_counts, counts)
    np.testing.assert_array_equal(both, values)
    for only_max in (bare, voxelwise):
        np.testing.assert_array_equal(only_max[:, 0], values[:, 0])
        assert not only_max[:, 1:].any()
    assert len({p.fingerprint() for p in [plan, *others]}) == 4


@settings(max_examples=4, deadline=None)
@given(chunk_iters=st.integers(min_value=1, max_value=30))
def test_null_is_the_same_for_any_chunking(client, plan, chunk_iters):
    reference, _ = run_null(plan, 30, seed=11, chunk_iters=30)
    nulls, _ = run_null(plan, 30, seed=11, chunk_iters=chunk_iters)
    assert nulls.identical(reference)


def test_null_is_the_same_on_one_or_two_workers(client, plan):
    from distributed import Client, LocalCluster

    two, _ = run_null(plan, 24, seed=5, chunk_iters=4)
    with LocalCluster(n_workers=1, threads_per_worker=2, dashboard_address=":0") as cluster:
        with Client(cluster):
            one, _ = run_null(plan, 24, seed=5, chunk_iters=4)
    assert one.identical(two)


def test_interrupted_run_resumes_to_the_uninterrupted_result(client, plan, tmp_path, monkeypatch,
                                                             crash_after_writes):
    store = tmp_path / "run.zarr"
    uninterrupted, _ = run_null(plan, 40, seed=2, chunk_iters=5)
    crash_after_writes(3)
    with pytest.raises(KeyboardInterrupt):
        run_null(plan, 40, seed=2, chunk_iters=5, store=store)
    monkeypatch.undo()
    reopened = NullStore.open(store, "fwe", plan, 2, 5)
    assert len(reopened.pending(40)) == 8 - 3
    resumed, _ = run_null(plan, 40, seed=2, store=store)
    assert resumed.identical(uninterrupted)


def test_extension_equals_a_single_longer_run(client, plan, tmp_path):
    store = tmp_path / "run.zarr"
    run_null(plan, 17, seed=9, chunk_iters=5, store=store)
    extended, _ = run_null(plan, 33, seed=9, store=store)
    single, _ = run_null(plan, 33, seed=9, chunk_iters=33)
    assert extended.identical(single)


def test_store_keeps_its_block_size_and_says_so(client, plan, tmp_path):
    """Another chunk_iters for an existing null is named and ignored; the default is silent."""
    store = tmp_path / "run.zarr"
    run_null(plan, 12, seed=4, chunk_iters=5, store=store)
    with pytest.warns(UserWarning, match="keeps its block size of 5 iterations; "
                                         "chunk_iters=3 ignored") as caught:
        extended, _ = run_null(plan, 20, seed=4, chunk_iters=3, store=store)
    assert len(caught) == 1 and str(store) in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, _ = run_null(plan, 20, seed=4, store=store)
        run_null(plan, 20, seed=4, chunk_iters=5, store=store)
    single, _ = run_null(plan, 20, seed=4, chunk_iters=20)
    assert extended.identical(single) and again.identical(single)


def test_store_for_other_inputs_or_seed_is_refused(client, plan, knowledge_ale, tmp_path):
    store = tmp_path / "run.zarr"
    run_null(plan, 5, seed=1, store=store)
    with pytest.raises(InputError, match="other inputs or parameters"):
        run_null(plan, 5, seed=2, store=store)
    ale = knowledge_ale.estimator
    other = NullPlan(ale.ma_, plan.thresh * 1.5)
    with pytest.raises(InputError, match="other inputs or parameters"):
        run_null(other, 5, seed=1, store=store)


def test_fwe_maps_follow_the_nulls(client, knowledge_ale):
    corrected = FWECorrector(n_iters=60, seed=4).transform(knowledge_ale)
    stat = corrected.get_map("stat", "array")
    z_voxel = corrected.get_map("z_level-voxel_corr-FWE_method-montecarlo", "array")
    max_stat = corrected.nulls["max_stat"].values
    assert corrected.nulls.sizes["iteration"] == 60
    # Voxel-level p is the exceedance fraction of the max-statistic null, as NiMARE's.
    from nimare.stats import null_to_p as nimare_null_to_p
    from nimare.transforms import p_to_z as nimare_p_to_z

    expected = nimare_p_to_z(nimare_null_to_p(stat, max_stat, tail="upper"), tail="one")
    np.testing.assert_allclose(z_voxel, expected, atol=1e-5)
    assert np.all(np.diff(z_voxel[np.argsort(stat)]) >= -1e-6)
    size_z = corrected.get_map("z_desc-size_level-cluster_corr-FWE_method-montecarlo", "array")
    thresh = corrected.nulls.attrs["cluster_forming_stat"]
    assert np.all(size_z[stat <= thresh] == 0)
    assert (size_z > 0).any()
    for name in ("level-voxel", "desc-size_level-cluster", "desc-mass_level-cluster"):
        assert f"logp_{name}_corr-FWE_method-montecarlo" in corrected.maps


def test_voxelwise_montecarlo_null_is_close_to_the_approximate_one(client, knowledge):
    import warnings

    from dmeta.ale import ALE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        approximate = ALE().fit(knowledge)
        montecarlo = ALE(null_method="montecarlo", n_iters=20, seed=1).fit(knowledge)
    z_a = approximate.get_map("z", "array")
    z_m = montecarlo.get_map("z", "array")
    assert np.corrcoef(z_a, z_m)[0, 1] > 0.99
    np.testing.assert_array_equal(approximate.get_map("stat", "array"),
                                  montecarlo.get_map("stat", "array"))


def test_refitting_an_estimator_leaves_earlier_results_alone(client, knowledge):
    """The reference example fits one ALE object to two samples, then corrects both."""
    import warnings

    from dmeta.ale import ALE
    from dmeta.datasets import load_example

    ale = ALE()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first = ale.fit(knowledge)
        ale.fit(load_example("semantic_relatedness"))
    assert first.estimator.ma_.ids == list(knowledge.ids)
    corrected = FWECorrector(n_iters=8, seed=1).transform(first)
    assert corrected.estimator.ma_.ids == list(knowledge.ids)


FWE_RECORD = "corr-FWE_method-montecarlo"


def test_fwe_records_the_seed_and_iterations_it_ran(client, knowledge_ale):
    corrected = FWECorrector(n_iters=12, seed=None, voxel_thresh=0.001).transform(knowledge_ale)
    record = corrected.attrs["corrections"][FWE_RECORD]
    assert isinstance(record["seed"], int)
    assert record["n_iters"] == corrected.nulls.sizes["iteration"] == 12
    assert record["cluster_forming_stat"] == corrected.nulls.attrs["cluster_forming_stat"]
    assert record["name"] == "FWECorrector" and record["voxel_thresh"] == 0.001
    # The estimator's parameters are kept apart, unchanged.
    assert corrected.attrs["params"] == knowledge_ale.attrs["params"]
    again = FWECorrector(n_iters=12, seed=record["seed"]).transform(knowledge_ale)
    assert again.nulls.identical(corrected.nulls)


def test_fwe_records_the_seed_and_length_of_a_stored_null(client, knowledge_ale, tmp_path):
    store = tmp_path / "run.zarr"
    first = FWECorrector(n_iters=6, store=store).transform(knowledge_ale)
    extended = FWECorrector(n_iters=10, store=store).transform(knowledge_ale)
    seed = first.attrs["corrections"][FWE_RECORD]["seed"]
    assert extended.attrs["corrections"][FWE_RECORD]["seed"] == seed
    assert extended.attrs["corrections"][FWE_RECORD]["n_iters"] == 10
    single = FWECorrector(n_iters=10, seed=seed).transform(knowledge_ale)
    assert extended.nulls.identical(single.nulls)


def test_fwe_provenance_survives_zarr(client, knowledge_ale, tmp_path):
    from dmeta.results import open_result
    from dmeta.versions import DEPENDENCIES

    corrected = FWECorrector(n_iters=5, seed=3).transform(knowledge_ale)
    versions = corrected.attrs["versions"]
    assert {"dmeta", "python", *DEPENDENCIES} <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())
    stored = open_result(corrected.to_zarr(tmp_path / "run.zarr"))
    assert stored.attrs == corrected.attrs
    assert stored.attrs["corrections"][FWE_RECORD]["n_iters"] == 5


def test_ale_records_monte_carlo_settings_only_when_they_ran(client, knowledge, knowledge_ale):
    from dmeta.ale import ALE

    assert not {"n_iters", "seed", "chunk_iters"} & set(knowledge_ale.attrs["params"])
    assert knowledge_ale.attrs["versions"]["numpy"] == np.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mc = ALE(null_method="montecarlo", n_iters=6).fit(knowledge)
    assert mc.attrs["params"]["n_iters"] == 6 and isinstance(mc.attrs["params"]["seed"], int)
