"""ResampledStability and stability_sweep: every policy, clear errors for impossible
parameters, the one-product replicates equal to refits, chunking independence, resumable
sweeps, and stable-voxel counts within Monte Carlo error of NiMARE 0.22.1.
"""

import copy
import warnings

import numpy as np
import pytest

import dmeta
from dmeta.clusters import supra_threshold_clusters
from dmeta.datasets import example_path
from dmeta.diagnostics import store as store_module
from dmeta.diagnostics.null import passes
from dmeta.diagnostics.resampling import subset_schedule, subset_size
from dmeta.diagnostics.sweep import Config, Thresholds, run_stability

MAP = "z_diag-ResampledStability"


@pytest.fixture(scope="module")
def pain():
    return dmeta.datasets.load_example("pain")


@pytest.fixture(scope="module")
def pain_ale(pain):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dmeta.ALE().fit(pain)


@pytest.mark.parametrize("kwargs, message", [
    ({"resampling_policy": "leave_k_out", "k": 21}, "k must be an integer from 1 to 19"),
    ({"resampling_policy": "leave_k_out"}, "needs k"),
    ({"resampling_policy": "subsample", "target_n": 22},
     "target_n must be an integer from 2 to 21"),
    ({"resampling_policy": "bootstrap"}, "resampling_policy must be one of"),
    ({"resampling_policy": "leave_1_out", "refit": "exact"}, "refit must be one of"),
    ({"resampling_policy": "leave_1_out", "voxel_thresh": 2.3}, "voxel_thresh must be a p-value"),
    ({"resampling_policy": "leave_k_out", "k": 5}, "too many to use them all; set n_resamples"),
])
def test_impossible_parameters_are_clear_input_errors(pain_ale, kwargs, message):
    with pytest.raises(dmeta.InputError, match=message):
        dmeta.ResampledStability(target_image="z", **kwargs).transform(pain_ale)


def test_too_few_analyses_is_an_input_error(pain):
    two = pain.select(pain.ids[:2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dmeta.ALE().fit(two)
    with pytest.raises(dmeta.InputError, match="at least 3 analyses"):
        dmeta.ResampledStability(resampling_policy="leave_1_out").transform(result)


def test_schedules():
    assert subset_size("leave_1_out", 21) == 20 and subset_size("subsample", 21) == 21
    loo = subset_schedule(21, 20)
    assert loo.shape == (21, 20) and all(i not in row for i, row in enumerate(loo))
    assert subset_schedule(6, 4).shape == (15, 4)  # every subset when there are few
    drawn = subset_schedule(21, 15, n_resamples=20, random_state=3)
    assert len({tuple(row) for row in drawn}) == 20
    np.testing.assert_array_equal(drawn, subset_schedule(21, 15, 20, random_state=3))


def test_replicates_equal_refits_on_the_subsets(client, pain, pain_ale):
    """With a fixed cluster size there is no randomness: each replicate's support must be
    exactly what an ALE refit on its analyses, thresholded the same way, gives."""
    config = Config.build("subsample", 21, target_n=17, n_resamples=3, random_state=5)
    th = Thresholds(cluster_threshold=20)
    ma = pain_ale.estimator.ma_
    stability = run_stability(ma, {"s": config}, th, chunk_replicates=2)["s"]
    expected = np.zeros(ma.space.n_voxels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = pain_ale.estimator
        for subset in config.subsets:
            refit = dmeta.ALE().fit(pain.select([pain.ids[i] for i in subset]))
            stat = refit.get_map("stat", "array")
            supra = passes(stat, full.null_weights_, full.bins_, 0.001)
            labels, sizes, _ = supra_threshold_clusters(ma.space.to_volume(supra * 1.0), 0.5)
            expected += ma.space.from_volume((sizes > 20)[labels])
    np.testing.assert_array_equal(stability, expected / 3)
    assert 0 < stability.max() and stability.min() == 0


@pytest.mark.parametrize("kwargs", [
    {"resampling_policy": "leave_1_out"},
    {"resampling_policy": "leave_k_out", "k": 3, "n_resamples": 4},
    {"resampling_policy": "subsample", "target_n": 15, "n_resamples": 4},
])
def test_every_policy(client, pain_ale, kwargs):
    out = dmeta.ResampledStability(target_image="z", random_state=1, n_iters=24,
                                   **kwargs).transform(pain_ale)
    stability = out.get_map(MAP, "array")
    assert 0 <= stability.min() and stability.max() <= 1 and (stability > 0).sum() > 500
    summary = out.tables[f"{MAP}_tab-summary"]
    assert list(summary.columns) == ["target_image", "resampling_policy", "n_resamples",
                                     "target_n", "k", "random_state", "n_iters_min",
                                     "n_iters_median", "n_iters_max", "precision_reached"]
    assert summary["n_iters_max"][0] == 24
    record = out.attrs["diagnostics"][MAP]
    assert record["n_iters"] == 24 and "precision" not in record
    assert summary["resampling_policy"][0] == kwargs["resampling_policy"]


def test_full_refit_gives_each_replicate_its_own_null(client, pain_ale, tmp_path):
    store = tmp_path / "run.zarr"
    out = dmeta.ResampledStability(target_image="z", resampling_policy="subsample",
                                   target_n=18, n_resamples=2, random_state=2, n_iters=16,
                                   refit="full", store=store).transform(pain_ale)
    import zarr
    names = sorted(zarr.open_group(str(store), mode="r")["montecarlo"].group_keys())
    assert names == ["stability-subsample_n-18_refit-full-r00000",
                     "stability-subsample_n-18_refit-full-r00001"]
    assert out.get_map(MAP, "array").max() > 0


SWEEP = dict(policies=["leave_1_out", "subsample"], target_n=[15, 18], n_resamples=5,
             random_state=7, n_iters=24, chunk_iters=8)


def test_sweep_resumes_to_the_uninterrupted_result(client, pain, tmp_path, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = dmeta.stability_sweep(pain, store=tmp_path / "a.zarr", **SWEEP)
        assert list(reference.policy.values) == ["leave_1_out", "subsample_n-15",
                                                 "subsample_n-18"]
        assert reference["N replicates"].values.tolist() == [21, 5, 5]
        write = store_module.SupportStore.write
        calls = []

        def interrupted(self, *args):
            if len(calls) == 2:
                raise KeyboardInterrupt
            calls.append(1)
            write(self, *args)

        monkeypatch.setattr(store_module.SupportStore, "write", interrupted)
        with pytest.raises(KeyboardInterrupt):
            dmeta.stability_sweep(pain, store=tmp_path / "b.zarr", **SWEEP)
        monkeypatch.setattr(store_module.SupportStore, "write", write)
        resumed = dmeta.stability_sweep(pain, store=tmp_path / "b.zarr", **SWEEP)
        assert resumed.identical(reference)
        with pytest.raises(dmeta.InputError, match="other inputs or parameters"):
            dmeta.stability_sweep(pain, store=tmp_path / "b.zarr", **{**SWEEP, "alpha": 0.01})


def test_result_does_not_depend_on_chunking(client, pain_ale):
    ma = pain_ale.estimator.ma_
    config = Config.build("leave_k_out", 21, k=2, n_resamples=6, random_state=4)
    th = Thresholds(n_iters=24)
    a = run_stability(ma, {"c": config}, th, seed=9, chunk_iters=24, chunk_replicates=6)["c"]
    b = run_stability(ma, {"c": config}, th, seed=9, chunk_iters=5, chunk_replicates=1)["c"]
    np.testing.assert_array_equal(a, b)


N_ITERS = 100


def test_stable_voxels_within_monte_carlo_error_of_nimare(client, pain_ale, tmp_path):
    """leave_1_out at N_ITERS = 100 Monte Carlo iterations on both sides.

    Tolerance: the replicates are the same deterministic refits, so counts differ only by
    the cluster-size cut, the 95th percentile of a 100-iteration null. NiMARE's cut lies
    between our null's (95 -/+ d)th percentiles, d = 3 * sqrt(2 * 0.95 * 0.05 / 100) = 9.2
    points (three standard errors of the difference of two empirical quantiles). Counts fall
    as the cut rises, so NiMARE's counts (> 0, >= 0.5, >= 0.8) must lie between ours with the
    cut fixed at those two percentiles.
    """
    pytest.importorskip("nimare")
    from nimare.correct import FWECorrector
    from nimare.diagnostics import ResampledStability as NiMAREStability
    from nimare.meta.cbma import ALE as NiMAREALE

    from nimare_reference import nimare_dataset

    space = pain_ale.space
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dset = nimare_dataset("pain", space)
        theirs = FWECorrector(method="montecarlo", n_iters=N_ITERS).transform(
            NiMAREALE(mask=space.mask_img).fit(dset))
        theirs = NiMAREStability(target_image="z", resampling_policy="leave_1_out",
                                 random_state=0).transform(copy.deepcopy(theirs))
    nimare_counts = _counts(theirs.get_map(MAP, return_type="array"))

    ma = pain_ale.estimator.ma_
    config = Config.build("leave_1_out", 21)
    import zarr
    path = tmp_path / "loo.zarr"
    run_stability(ma, {"loo": config}, Thresholds(n_iters=N_ITERS), seed=0, store=path)
    sizes = zarr.open_group(str(path), mode="r")["montecarlo/stability-loo/values"][:, 1]
    d = 3 * np.sqrt(2 * 0.95 * 0.05 / N_ITERS)
    bounds = []
    for q in (min(0.95 + d, 1.0), 0.95 - d):
        cut = np.percentile(sizes, 100 * q)
        fixed = run_stability(ma, {"loo": config}, Thresholds(cluster_threshold=cut))["loo"]
        bounds.append(_counts(fixed))
    low, high = bounds
    assert all(lo <= n <= hi for lo, n, hi in zip(low, nimare_counts, high)), (
        low, nimare_counts, high)


def _counts(stability):
    return [int((stability > 0).sum()), int((stability >= 0.5).sum()),
            int((stability >= 0.8).sum())]


def test_cli_stability(client, tmp_path, capsys):
    from dmeta.cli import main

    out = tmp_path / "run.zarr"
    argv = ["stability", str(example_path("pain")), "--policy", "subsample", "--target-n",
            "18", "--n-resamples", "3", "--n-iters", "16", "--seed", "3", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
        first = capsys.readouterr().out
        assert "subsample_n-18" in first and "Stable voxels (>0)" in first
        assert main(argv) == 0  # resumes: nothing left to compute, same summary
    assert capsys.readouterr().out == first
    assert main(argv[:-4] + ["--seed", "4", "--out", str(out)]) == 2


def test_parked_foci_equal_iterations_run_one_by_one(pain_ale):
    """Left-out analyses' foci parked outside the mask change nothing: a block equals its
    iterations run one by one on the subset's own layout (the path for masks with no room)."""
    from dmeta.diagnostics.null import ResamplingNullPlan, sample_space, stat_cut

    ale = pain_ale.estimator
    args = (ale.ma_, stat_cut(ale.null_weights_, ale.bins_, 0.001), sample_space(ale.space_),
            17)
    parked, unparked = ResamplingNullPlan(*args), ResamplingNullPlan(*args)
    assert parked.parking is not None
    unparked.parking = None
    np.testing.assert_array_equal(parked.run(5, 0, 12)[0], unparked.run(5, 0, 12)[0])
