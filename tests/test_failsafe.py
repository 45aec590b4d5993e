"""FailSafeN: each cluster's fail-safe N checked against refits made with the public API."""

import warnings

import numpy as np
import pandas as pd
import pytest
import zarr

import dmeta
from dmeta.diagnostics.failsafe import COLUMNS, noise_analyses, null_seed
from dmeta.errors import InputError
from dmeta.results import MetaResult

TARGET = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"
TABLE = f"{TARGET}_diag-FailSafeN"
N_ITERS = 100
# On the pain example with these seeds, two clusters have a fail-safe N below MAX_NOISE and
# four withstand it, so both outcomes of the search are checked.
MAX_NOISE, SEED = 12, 3


@pytest.fixture(scope="module")
def pain():
    return dmeta.datasets.load_example("pain")


@pytest.fixture(scope="module")
def corrected(client, pain_ale):
    return dmeta.FWECorrector(n_iters=N_ITERS, seed=1).transform(pain_ale)


@pytest.fixture(scope="module")
def failsafe(corrected):
    return dmeta.FailSafeN(max_noise=MAX_NOISE, n_iters=N_ITERS, seed=SEED).transform(corrected)


def _with_noise(pain, corrected, n_noise):
    """The pain analyses followed by the first ``n_noise`` noise analyses."""
    if n_noise == 0:
        return pain
    noise = noise_analyses(corrected, n_noise, SEED)
    columns = ["study_id", "analysis_id", "sample_size"]
    analyses = pd.concat([pain.analyses[columns], noise.analyses[columns]])
    foci = pd.concat([pain.foci, noise.foci])[["id", "x", "y", "z"]]
    return dmeta.CoordinateSet(analyses.reset_index(), foci)


def _survives(pain, corrected, n_noise, xyz):
    """Refit ALE and FWE with ``n_noise`` noise analyses; is the voxel at ``xyz`` (mm) in a
    cluster with cluster-size FWE p < 0.05?"""
    voxel_thresh = corrected.attrs["corrections"]["corr-FWE_method-montecarlo"]["voxel_thresh"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        refit = dmeta.ALE().fit(_with_noise(pain, corrected, n_noise))
    fwe = dmeta.FWECorrector(voxel_thresh=voxel_thresh, n_iters=N_ITERS,
                             seed=null_seed(SEED, n_noise)).transform(refit)
    space = fwe.space
    ijk = space.mm_to_ijk(np.asarray([xyz], dtype=float))[0]
    voxel = int(np.flatnonzero((space.ijk == ijk).all(axis=1))[0])
    thresh = fwe.attrs["corrections"]["corr-FWE_method-montecarlo"]["cluster_forming_stat"]
    in_cluster = fwe.get_map("stat", "array")[voxel] > thresh
    logp = fwe.get_map("logp" + TARGET[1:], "array")[voxel]
    return bool(in_cluster and logp > -np.log10(0.05))


def test_failsafe_n_matches_refits_with_the_public_api(failsafe, corrected, pain):
    table = failsafe.tables[TABLE]
    below = table[~table["Survives max_noise"]]
    assert len(below) >= 2 and table["Survives max_noise"].any()
    checked = {}
    for _, row in below.iterrows():
        n, xyz = int(row["Fail-safe N"]), (row.X, row.Y, row.Z)
        for size, expected in ((n, True), (n + 1, False)):
            if (size, xyz) not in checked:
                checked[size, xyz] = _survives(pain, corrected, size, xyz)
            assert checked[size, xyz] is expected, (row.Cluster, size)
    flagged = table[table["Survives max_noise"]].iloc[0]
    assert flagged["Fail-safe N"] == MAX_NOISE
    assert _survives(pain, corrected, MAX_NOISE, (flagged.X, flagged.Y, flagged.Z))


def test_table_name_columns_and_record(failsafe, corrected):
    table = failsafe.tables[TABLE]
    assert list(table.columns) == COLUMNS
    assert table["Cluster"].tolist() == list(range(1, len(table) + 1))
    assert (np.diff(table["Peak Stat"]) <= 0).all()
    assert (table["FWE p"] < 0.05).all()
    assert table["Fail-safe N"].between(0, MAX_NOISE).all()
    for row in table.itertuples():
        tested = [int(m) for m in row[-1].split(", ")]
        assert tested[0] == MAX_NOISE  # every search starts at max_noise
    record = failsafe.attrs["diagnostics"][TABLE]
    assert record["seed"] == SEED and record["max_noise"] == MAX_NOISE
    assert record["n_iters"] == N_ITERS
    assert set(record["sizes_tested"]) == {int(m) for s in table["Sizes tested"]
                                           for m in s.split(", ")}
    assert TABLE not in corrected.tables  # transform returns a copy
    assert "Acar et al., 2018" in failsafe.description


def test_result_does_not_depend_on_chunking(failsafe, corrected):
    for chunk_iters in (25, 50):
        again = dmeta.FailSafeN(max_noise=MAX_NOISE, n_iters=N_ITERS, seed=SEED,
                                chunk_iters=chunk_iters).transform(corrected)
        pd.testing.assert_frame_equal(again.tables[TABLE], failsafe.tables[TABLE])


def test_store_keeps_the_seed_and_the_nulls(corrected, tmp_path):
    store = tmp_path / "failsafe.zarr"
    first = dmeta.FailSafeN(max_noise=4, n_iters=50, store=store).transform(corrected)
    again = dmeta.FailSafeN(max_noise=4, n_iters=50, store=store).transform(corrected)
    seed = first.attrs["diagnostics"][TABLE]["seed"]
    assert again.attrs["diagnostics"][TABLE]["seed"] == seed
    pd.testing.assert_frame_equal(again.tables[TABLE], first.tables[TABLE])
    held = zarr.open_group(str(store), mode="r")
    assert {f"failsafe-{m}" for m in first.attrs["diagnostics"][TABLE]["sizes_tested"]} <= set(
        held["montecarlo"].group_keys())
    with pytest.raises(InputError, match="seed"):
        dmeta.FailSafeN(max_noise=4, n_iters=50, seed=seed + 1, store=store).transform(corrected)


def test_adaptive_nulls_stop_on_their_own(corrected):
    """n_iters="auto": each size's null stops at its own multiple of 100, within the limit,
    and the record and methods text say how many iterations each used."""
    out = dmeta.FailSafeN(max_noise=4, n_iters="auto", precision=0.2, max_iters=400,
                          seed=SEED).transform(corrected)
    record = out.attrs["diagnostics"][TABLE]
    assert record["n_iters"] == "auto"
    used = record["iterations"]
    assert set(used) == {str(m) for m in record["sizes_tested"]}
    assert all(100 <= n <= 400 and n % 100 == 0 for n in used.values())
    assert "Monte Carlo iterations at each number tested" in out.description


def test_noise_analyses_are_nested_and_in_the_mask(corrected):
    five, two = noise_analyses(corrected, 5, SEED), noise_analyses(corrected, 2, SEED)
    assert five.ids == [f"failsafe-noise-000{j}" for j in range(1, 6)]
    pd.testing.assert_frame_equal(five.select(two.ids).foci, two.foci)
    space = corrected.space
    assert space.in_mask(space.mm_to_ijk(five.foci[["x", "y", "z"]].to_numpy())).all()
    original = corrected.tables["analyses"]
    assert set(five.sample_sizes) <= set(original["sample_size"])
    assert set(five.foci.groupby("id").size()) <= set(original["n_foci"])


def test_result_round_trips_through_zarr(failsafe, tmp_path):
    back = dmeta.open_result(failsafe.to_zarr(tmp_path / "run.zarr"))
    pd.testing.assert_frame_equal(back.tables[TABLE], failsafe.tables[TABLE],
                                  check_dtype=False)
    assert back.attrs["diagnostics"] == failsafe.attrs["diagnostics"]


@pytest.mark.parametrize("params, message", [
    ({"max_noise": 0}, "max_noise must be a positive integer"),
    ({"max_noise": 2.5}, "max_noise must be a positive integer"),
    ({"max_noise": True}, "max_noise must be a positive integer"),
    ({"alpha": 0}, r"alpha must be a number in \(0, 1\)"),
    ({"alpha": 1.5}, r"alpha must be a number in \(0, 1\)"),
    ({"target_image": "z"}, "target_image must be one of"),
    ({"n_iters": 0}, "n_iters must be a positive integer or 'auto'"),
    ({"n_iters": "auto", "precision": 2}, "precision must be a number in \\(0, 1\\)"),
])
def test_bad_parameters_are_input_errors(corrected, params, message):
    with pytest.raises(InputError, match=message):
        dmeta.FailSafeN(**params).transform(corrected)


def test_uncorrected_result_is_an_input_error(pain_ale):
    with pytest.raises(InputError, match="FWECorrector"):
        dmeta.FailSafeN().transform(pain_ale)


def test_voxel_level_only_correction_is_an_input_error(client, pain_ale):
    voxel_only = dmeta.FWECorrector(n_iters=20, seed=1, vfwe_only=True).transform(pain_ale)
    with pytest.raises(InputError, match="does not have"):
        dmeta.FailSafeN().transform(voxel_only)


def test_no_significant_cluster_is_an_input_error(corrected):
    # With 100 iterations no cluster-level p is below 1/100.
    with pytest.raises(InputError, match="no cluster with FWE p < 0.005"):
        dmeta.FailSafeN(alpha=0.005).transform(corrected)


def test_result_without_its_estimator_is_an_input_error(corrected):
    stored = MetaResult(corrected.maps, corrected.space, corrected.tables,
                        attrs=corrected.attrs)
    with pytest.raises(InputError, match="ALE.fit in this session"):
        dmeta.FailSafeN().transform(stored)


def test_subtraction_is_an_input_error(client, toy_groups, toy_space):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = dmeta.ALESubtraction(n_iters=10, seed=1, mask=toy_space.mask_img).fit(
            *toy_groups)
    with pytest.raises(InputError, match="does not support subtraction"):
        dmeta.FailSafeN().transform(result)


def test_report_shows_the_fail_safe_n_section(failsafe, tmp_path):
    # Only the table and its record: the section is read from the result's contents.
    slim = MetaResult({"stat": failsafe.get_map("stat", "array")}, failsafe.space,
                      tables={TABLE: failsafe.tables[TABLE]}, attrs=failsafe.attrs,
                      description=failsafe.description)
    html = dmeta.report(slim, tmp_path).read_text()
    section = html[html.index('<section id="Fail-safe-N">'):]
    section = section[:section.index("</section>")]
    assert TABLE in section and "Survives max_noise" in section
    assert f"up to {MAX_NOISE}" in section
    assert "Assessing robustness against potential publication bias" in html


def test_bisection_finds_the_last_survivor_of_a_monotone_search():
    from dmeta.diagnostics.failsafe import Search, bisect

    truth = np.array([0, 3, 7, 50])  # largest number of noise analyses each survives
    calls = []

    def test(sizes):
        calls.append(sizes)
        return {m: truth >= m for m in sizes}

    searches = [Search(20) for _ in truth]
    survival, rounds = bisect(searches, test)
    assert [s.low for s in searches] == [0, 3, 7, 20]
    assert [s.flagged for s in searches] == [False, False, False, True]
    assert calls[0] == [20] and rounds == len(calls)
    assert sum(map(len, calls)) == len(survival) == len(set(survival))  # each size once
    assert all(m in survival for s in searches for m in s.tested)


def test_mass_target(client, corrected):
    target = "z_desc-mass_level-cluster_corr-FWE_method-montecarlo"
    out = dmeta.FailSafeN(target_image=target, max_noise=2, n_iters=50,
                          seed=SEED).transform(corrected)
    table = out.tables[f"{target}_diag-FailSafeN"]
    assert list(table.columns) == COLUMNS and len(table)


def test_result_read_back_with_its_modeled_activation(client, corrected, tmp_path):
    stored = dmeta.open_result(corrected.to_zarr(tmp_path / "fit.zarr", modeled_activation=True))
    here, back = (dmeta.FailSafeN(max_noise=3, n_iters=50, seed=SEED).transform(r)
                  for r in (corrected, stored))
    pd.testing.assert_frame_equal(back.tables[TABLE], here.tables[TABLE])
