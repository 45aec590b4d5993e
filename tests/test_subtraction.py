"""ALE subtraction engine: a dense reference on a toy grid, tie handling, chunk invariance,
bad inputs."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dmeta
from dmeta.errors import InputError
from dmeta.modeled_activation import ModeledActivation
from dmeta.space import Space
from dmeta.stats import p_to_z
from dmeta.subtraction._kernel import observed_difference, tail_counts, tail_thresholds
from dmeta.subtraction.estimator import two_sided_p
from dmeta.subtraction.permutation import (
    LogComplement,
    permutation_tail_counts,
    pooled_csr,
    relabellings,
)

N_ITERS = 60
MODES = ("exact", "nimare")


def _cset(space, rng, n, prefix, source):
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


@pytest.fixture(scope="module")
def groups(toy_space):
    rng = np.random.default_rng(7)
    return _cset(toy_space, rng, 5, "a", "g1.txt"), _cset(toy_space, rng, 4, "b", "g2.txt")


@pytest.fixture(scope="module")
def toy_fits(client, toy_space, groups):
    """One fit per tie-handling mode, same seed."""
    return {mode: dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                       tie_handling=mode).fit(*groups)
            for mode in MODES}


@pytest.fixture(scope="module")
def toy_fit(toy_fits):
    return toy_fits["exact"]


def _dense_reference(estimator, n_iters, seed, tie_handling):
    """NiMARE's procedure, written out densely: one relabelling at a time, exp and all.

    Each group's log(1 - ALE) is summed over its analyses in pooled order, so a relabelling
    with the observed grouping at a voxel gives the observed float64 difference there. The
    observed difference is that ("exact") or, as NiMARE has it, the float32 maps' ("nimare").
    """
    ma = pooled_csr(estimator.ma1_, estimator.ma2_).toarray().astype(np.float32)
    log_c = np.log1p(-ma).astype(np.float64)
    n1 = estimator.ma1_.matrix.shape[0]

    def difference(in_group1, dtype):
        ale1, ale2 = (1 - np.exp(log_c[in_group1].sum(0))), (1 - np.exp(log_c[~in_group1].sum(0)))
        return ale1.astype(dtype) - ale2.astype(dtype)

    observed_rows = np.arange(len(ma)) < n1
    stat = difference(observed_rows, np.float32)
    observed = stat if tie_handling == "nimare" else difference(observed_rows, np.float64)
    upper = np.zeros(ma.shape[1], int)
    lower = np.zeros(ma.shape[1], int)
    for i in range(n_iters):
        members = np.random.default_rng([seed, i]).permutation(len(ma))[:n1]
        diff = difference(np.isin(np.arange(len(ma)), members), np.float64)
        upper += diff >= observed
        lower += diff <= observed
    p = np.clip(2 * np.minimum(upper, lower) / n_iters, 1 / n_iters, 1 - 1 / n_iters)
    return stat, p.astype(np.float32), np.sign(lower - upper)


@pytest.mark.parametrize("mode", MODES)
def test_matches_dense_reference(toy_fits, mode):
    fit = toy_fits[mode]
    stat, p, sign = _dense_reference(fit.estimator, N_ITERS, 3, mode)
    np.testing.assert_array_equal(fit.get_map("stat_desc-group1MinusGroup2", "array"), stat)
    np.testing.assert_allclose(fit.get_map("p_desc-group1MinusGroup2", "array"), p, rtol=1e-6)
    z = fit.get_map("z_desc-group1MinusGroup2", "array")
    np.testing.assert_allclose(z, p_to_z(p, tail="two") * sign, rtol=1e-5, atol=1e-6)
    assert (p < 1).any() and (sign != 0).any()


def test_output_maps(toy_fits):
    expected = {f"{m}_desc-{d}" for m in ("stat", "p", "z", "logp")
                for d in ("group1MinusGroup2", "group1", "group2")}
    for mode, fit in toy_fits.items():
        assert expected <= set(fit.maps)
        assert fit.attrs["params"]["seed"] == 3
        assert fit.attrs["params"]["tie_handling"] == mode
    np.testing.assert_array_equal(
        *(f.get_map("stat_desc-group1MinusGroup2", "array") for f in toy_fits.values()))


def test_tie_handling_is_described(toy_fits):
    assert "ties in both tails" in toy_fits["exact"].description
    assert "NiMARE 0.22.1" in toy_fits["nimare"].description


@pytest.mark.parametrize("bad", ["Exact", "numpy", None, 1])
def test_bad_tie_handling(toy_space, groups, bad):
    with pytest.raises(InputError, match=f"tie_handling.*'exact', 'nimare'.*got {bad!r}"):
        dmeta.ALESubtraction(n_iters=5, mask=toy_space.mask_img, tie_handling=bad).fit(*groups)


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_iters=st.integers(7, N_ITERS))
def test_chunking_does_not_change_results(toy_fits, toy_space, groups, mode, chunk_iters):
    refit = dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                 chunk_iters=chunk_iters, tie_handling=mode).fit(*groups)
    for name in ("p_desc-group1MinusGroup2", "z_desc-group1MinusGroup2"):
        np.testing.assert_array_equal(refit.get_map(name, "array"),
                                      toy_fits[mode].get_map(name, "array"))


def _exact_setup(estimator):
    """Pooled log(1 - MA), the observed group-1 indicator column and "exact" thresholds."""
    lc = LogComplement(pooled_csr(estimator.ma1_, estimator.ma2_))
    n1 = len(estimator.ma1_.foci.ids)
    observed = (np.arange(lc.n_analyses) < n1)[:, None].astype(float)
    return lc, observed, tail_thresholds(lc.total, observed_difference(lc.sums(observed)[:, 0],
                                                                       lc.total))


def test_observed_grouping_ties_with_itself_in_both_tails(toy_fit):
    """With "exact", the observed grouping, run as a relabelling, counts once in each tail."""
    lc, observed, (up, lo) = _exact_setup(toy_fit.estimator)
    counts, _ = tail_counts(observed, lc.indptr, lc.indices, lc.data, up, lo, lc.total,
                            lc.bound)
    np.testing.assert_array_equal(counts, 1)


def test_other_blocks_give_the_same_counts(client, toy_fit):
    """Counts cut into other blocks of relabellings give the fit's p, sign and FWE null."""
    lc, observed, (up, lo) = _exact_setup(toy_fit.estimator)
    upper, lower, max_abs, seed = permutation_tail_counts(lc, int(observed.sum()), up, lo,
                                                          N_ITERS, seed=3, chunk_iters=11)
    assert seed == 3
    p, sign = two_sided_p(upper, lower, N_ITERS)
    np.testing.assert_array_equal(p, toy_fit.get_map("p_desc-group1MinusGroup2", "array"))
    np.testing.assert_array_equal(
        sign, np.sign(toy_fit.get_map("z_desc-group1MinusGroup2", "array")))
    np.testing.assert_array_equal(max_abs, toy_fit.nulls["max_stat"].values)


SPARSE_ITERS = 200


@pytest.fixture(scope="module")
def sparse_fits(client, space):
    """Six one-focus analyses far apart (3 vs 3): most reached voxels see one analysis only."""
    xyz = [(-40, -60, 0), (40, 20, 40), (0, 40, -10), (-40, 10, 40), (40, -60, 0), (0, -80, 30)]
    ids = [f"s{a}-1" for a in range(len(xyz))]
    analyses = pd.DataFrame({"id": ids, "study_id": [i[:-2] for i in ids], "analysis_id": "1",
                             "sample_size": 20})
    cset = dmeta.CoordinateSet(analyses, pd.DataFrame(xyz, columns=["x", "y", "z"]).assign(id=ids))
    halves = cset.select(ids[:3]), cset.select(ids[3:])
    return {mode: dmeta.ALESubtraction(n_iters=SPARSE_ITERS, seed=1, tie_handling=mode)
            .fit(*halves) for mode in MODES}


def test_voxels_reached_by_one_analysis(sparse_fits):
    """There the only relabellings that tie are those keeping the analysis in its group:
    "exact" gives the tie-correct p = 2 ties / n (near 1), "nimare" often the 1/n artefact."""
    estimator = sparse_fits["exact"].estimator
    reach = pooled_csr(estimator.ma1_, estimator.ma2_).tocsc()
    single = np.flatnonzero(np.diff(reach.indptr) == 1)
    owner = reach.indices[reach.indptr[single]]
    in_group1 = relabellings(1, 0, SPARSE_ITERS, n_total=6, n_group1=3).sum(axis=1)
    ties = np.where(owner < 3, in_group1[owner], SPARSE_ITERS - in_group1[owner])
    expected = np.clip(2 * ties / SPARSE_ITERS, 1 / SPARSE_ITERS, 1 - 1 / SPARSE_ITERS)
    p = {mode: fit.get_map("p_desc-group1MinusGroup2", "array")[single]
         for mode, fit in sparse_fits.items()}
    assert single.size > 1000
    np.testing.assert_array_equal(p["exact"], expected.astype(np.float32))
    assert p["exact"].min() > 0.5
    assert np.mean(p["nimare"] == np.float32(1 / SPARSE_ITERS)) > 0.1


def test_other_seed_other_null(toy_fit, toy_space, groups):
    other = dmeta.ALESubtraction(n_iters=N_ITERS, seed=4, mask=toy_space.mask_img).fit(*groups)
    assert not np.array_equal(other.get_map("p_desc-group1MinusGroup2", "array"),
                              toy_fit.get_map("p_desc-group1MinusGroup2", "array"))


def test_drawn_seed_is_the_one_recorded(toy_fit, toy_space, groups):
    """Without a seed the engine draws one; the estimator records it and it repeats the fit."""
    drawn = dmeta.ALESubtraction(n_iters=N_ITERS, mask=toy_space.mask_img).fit(*groups)
    seed = drawn.estimator.seed_
    assert isinstance(seed, int) and drawn.attrs["params"]["seed"] == seed
    again = dmeta.ALESubtraction(n_iters=N_ITERS, seed=seed, mask=toy_space.mask_img).fit(*groups)
    np.testing.assert_array_equal(again.get_map("p_desc-group1MinusGroup2", "array"),
                                  drawn.get_map("p_desc-group1MinusGroup2", "array"))


def test_relabellings_keep_group_sizes():
    rows = relabellings(5, 10, 20, n_total=9, n_group1=4)
    assert rows.shape == (9, 10) and (rows.sum(axis=0) == 4).all()
    np.testing.assert_array_equal(rows[:, 3:], relabellings(5, 13, 20, 9, 4))


def test_empty_group(toy_space, groups):
    with pytest.raises(InputError, match="group 2 .*g2.txt.* no analyses"):
        dmeta.ALESubtraction(n_iters=5, mask=toy_space.mask_img).fit(
            groups[0], groups[1].select([]))


def test_same_analysis_in_both_groups(toy_space, groups):
    both = groups[1].select([groups[1].ids[0]])
    shared = dmeta.CoordinateSet(pd.concat([groups[0].analyses, both.analyses]).reset_index(),
                                 pd.concat([groups[0].foci, both.foci]), source="g1b.txt")
    with pytest.raises(InputError, match=f"in both groups.*{groups[1].ids[0]}"):
        dmeta.ALESubtraction(n_iters=5, mask=toy_space.mask_img).fit(shared, groups[1])


def test_groups_in_different_spaces(toy_space, groups):
    mask = toy_space.mask.copy()
    mask[tuple(toy_space.ijk[0])] = False
    other = Space(mask, toy_space.mask_img.affine, name="smaller")
    ma1, ma2 = ModeledActivation(groups[0], toy_space), ModeledActivation(groups[1], other)
    with pytest.raises(InputError, match="different spaces"):
        pooled_csr(ma1, ma2)


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_bad_n_iters(toy_space, groups, bad):
    with pytest.raises(InputError, match="n_iters"):
        dmeta.ALESubtraction(n_iters=bad, mask=toy_space.mask_img).fit(*groups)


def test_not_a_coordinate_set(groups):
    with pytest.raises(InputError, match="group 2 is a str"):
        dmeta.ALESubtraction(n_iters=5).fit(groups[0], "g2.txt")


def test_cli_subtract_writes_a_result(client, tmp_path, capsys):
    from dmeta.cli import main
    from dmeta.datasets import example_path

    out = tmp_path / "sub.zarr"
    code = main(["subtract", str(example_path("semantic_knowledge")),
                 str(example_path("semantic_relatedness")), "--out", str(out),
                 "--n-iters", "50", "--seed", "2"])
    assert code == 0
    result = dmeta.open_result(out)
    assert "z_desc-group1MinusGroup2" in result.maps
    assert "minus" in capsys.readouterr().out


def test_cli_subtract_bad_input_exits_2(tmp_path, capsys):
    from dmeta.cli import main

    assert main(["subtract", str(tmp_path / "nope.txt"), str(tmp_path / "nope2.txt"),
                 "--out", str(tmp_path / "o.zarr")]) == 2
    assert "nope.txt" in capsys.readouterr().err
