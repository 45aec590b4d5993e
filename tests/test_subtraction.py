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


@pytest.fixture(scope="module")
def groups(toy_groups):
    return toy_groups


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


# -- Family-wise error: voxel and cluster nulls ----------------------------------------------

FWE_THRESH = 0.05  # a quantile the toy grid's few hundred values per relabelling resolve


def _dense_differences(estimator, n_iters, seed):
    """(voxel x relabelling) float32 differences, one relabelling at a time (NiMARE's way)."""
    log_c = np.log1p(-pooled_csr(estimator.ma1_, estimator.ma2_).toarray().astype(np.float32))
    log_c = log_c.astype(np.float64)
    n1 = estimator.ma1_.matrix.shape[0]
    out = []
    for i in range(n_iters):
        members = np.isin(np.arange(len(log_c)),
                          np.random.default_rng([seed, i]).permutation(len(log_c))[:n1])
        a, b = log_c[members].sum(0), log_c[~members].sum(0)
        out.append(((1 - np.exp(a)) - (1 - np.exp(b))).astype(np.float32))
    return np.stack(out, axis=1)


def _dense_cluster_maxima(space, diffs, thresh):
    """Largest face-connected cluster (size, mass) of each relabelling, positive and
    negative apart, with scipy on the whole volume."""
    from scipy import ndimage

    maxima = []
    for d in diffs.T:
        best = [0.0, 0.0]
        for signed in (d, -d):
            volume = space.to_volume(np.where(signed > thresh, signed, 0.0))
            labels, n = ndimage.label(volume > 0, ndimage.generate_binary_structure(3, 1))
            if n:
                index = np.arange(1, n + 1)
                best[0] = max(best[0], np.bincount(labels.ravel())[1:].max())
                best[1] = max(best[1], ndimage.sum(volume - thresh * (volume > 0), labels,
                                                   index).max())
        maxima.append(best)
    return np.array(maxima)


@pytest.fixture(scope="module")
def fwe_fit(client, toy_space, groups):
    return dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                vfwe_only=False, voxel_thresh=FWE_THRESH).fit(*groups)


def test_fwe_nulls_match_dense_reference(fwe_fit, toy_space):
    """The histogram's quantile is NiMARE's to within a bin; maxima, cluster sizes and masses
    at that threshold are those of the dense maps."""
    diffs = _dense_differences(fwe_fit.estimator, N_ITERS, 3)
    thresh = fwe_fit.nulls.attrs["cluster_forming_stat"]
    exact = np.quantile(np.abs(diffs), 1 - FWE_THRESH)
    assert abs(thresh - exact) <= 2.5e-4 * exact
    np.testing.assert_allclose(fwe_fit.nulls["max_stat"], np.abs(diffs).max(axis=0),
                               rtol=1e-6)
    dense = _dense_cluster_maxima(toy_space, diffs, thresh)
    assert dense[:, 0].max() > 1  # clusters of several voxels exist
    np.testing.assert_array_equal(fwe_fit.nulls["max_cluster_size"], dense[:, 0])
    np.testing.assert_allclose(fwe_fit.nulls["max_cluster_mass"], dense[:, 1], rtol=1e-5)


@pytest.mark.parametrize("chunk_iters", [7, 25])
def test_fwe_nulls_do_not_depend_on_blocks(fwe_fit, toy_space, groups, chunk_iters):
    refit = dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                 vfwe_only=False, voxel_thresh=FWE_THRESH,
                                 chunk_iters=chunk_iters).fit(*groups)
    assert refit.nulls.equals(fwe_fit.nulls)
    assert refit.nulls.attrs["cluster_forming_stat"] == \
        fwe_fit.nulls.attrs["cluster_forming_stat"]


def test_fwe_nulls_resume_and_extend(fwe_fit, toy_space, groups, tmp_path):
    """A shorter run extended, and a run whose store lost blocks of both passes (killed),
    give the uninterrupted run's nulls."""
    import zarr

    store = tmp_path / "run.zarr"

    def fit(n_iters):
        return dmeta.ALESubtraction(n_iters=n_iters, seed=3, mask=toy_space.mask_img,
                                    vfwe_only=False, voxel_thresh=FWE_THRESH, chunk_iters=10,
                                    store=store).fit(*groups)

    fit(N_ITERS // 2)
    extended = fit(N_ITERS)
    np.testing.assert_array_equal(extended.nulls.to_array(), fwe_fit.nulls.to_array())
    nulls = zarr.open_group(str(store), mode="a")["montecarlo"]
    for name in nulls.group_keys():
        nulls[name]["filled"][1] = 0
    resumed = fit(N_ITERS)
    np.testing.assert_array_equal(resumed.nulls.to_array(), fwe_fit.nulls.to_array())


def test_corrector_uses_the_fit_nulls_when_they_answer(fwe_fit):
    """Same iterations and threshold: the fit's nulls; another count: new ones, same seed."""
    same = dmeta.FWECorrector(n_iters=N_ITERS, voxel_thresh=FWE_THRESH).transform(fwe_fit)
    assert same.nulls.equals(fwe_fit.nulls)
    other = dmeta.FWECorrector(n_iters=N_ITERS // 2, voxel_thresh=FWE_THRESH).transform(fwe_fit)
    np.testing.assert_array_equal(other.nulls["max_stat"],
                                  fwe_fit.nulls["max_stat"][: N_ITERS // 2])
    names = {f"{kind}_desc-group1MinusGroup2{level}_corr-FWE_method-montecarlo"
             for kind in ("p", "z", "logp")
             for level in ("_level-voxel", "Size_level-cluster", "Mass_level-cluster")}
    assert names <= set(same.maps)


def test_corrected_maps_from_the_nulls(fwe_fit):
    """Voxel-level p: the share of relabellings whose maximum reaches |difference|; z takes
    the uncorrected z's sign."""
    corrected = dmeta.FWECorrector(n_iters=N_ITERS, voxel_thresh=FWE_THRESH).transform(fwe_fit)
    stat = np.abs(fwe_fit.get_map("stat_desc-group1MinusGroup2", "array"))
    null = fwe_fit.nulls["max_stat"].values
    expected = np.clip((null[None, :] >= stat[:, None]).mean(1), 1 / N_ITERS, 1 - 1 / N_ITERS)
    suffix = "desc-group1MinusGroup2_level-voxel_corr-FWE_method-montecarlo"
    np.testing.assert_allclose(corrected.get_map(f"p_{suffix}", "array"), expected, rtol=1e-6)
    sign = np.sign(fwe_fit.get_map("z_desc-group1MinusGroup2", "array"))
    np.testing.assert_array_equal(np.sign(corrected.get_map(f"z_{suffix}", "array")), sign)


def test_main_effects_target(fwe_fit):
    corrected = dmeta.FWECorrector(n_iters=20, voxel_thresh=FWE_THRESH, seed=1,
                                   target="main-effects").transform(fwe_fit)
    new = set(corrected.maps) - set(fwe_fit.maps)
    assert new == {f"{kind}_desc-{group}{level}_corr-FWE_method-montecarlo"
                   for kind in ("z", "logp") for group in ("group1", "group2")
                   for level in ("_level-voxel", "Size_level-cluster", "Mass_level-cluster")}


# -- Directional inference maps ------------------------------------------------------------

def _gates(fit):
    """Gate 1 on the voxels where group 1's ALE is high, gate 2 where group 2's is."""
    return [(fit.get_map(f"stat_desc-{g}", "array")
             > np.median(fit.get_map(f"stat_desc-{g}", "array"))).astype(np.float32)
            for g in ("group1", "group2")]


@pytest.mark.parametrize("restrict", [False, True])
def test_inference_maps_give_one_sided_gated_p(toy_fits, toy_space, groups, restrict):
    fit = toy_fits["exact"]
    gates = _gates(fit)
    gated = dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                 restrict_to_inference_mask=restrict).fit(
        *groups, inference_map1=gates[0], inference_map2=gates[1])
    lc, observed, (up, lo) = _exact_setup(fit.estimator)
    upper, lower, _, _ = permutation_tail_counts(lc, int(observed.sum()), up, lo, N_ITERS, 3)
    diff = fit.get_map("stat_desc-group1MinusGroup2", "array")
    pos, neg = (gates[0] > 0) & (diff > 0), (gates[1] > 0) & (diff < 0)
    p = gated.get_map("p_desc-group1MinusGroup2", "array")
    z = gated.get_map("z_desc-group1MinusGroup2", "array")
    assert pos.any() and neg.any()
    np.testing.assert_allclose(p[pos], np.maximum(upper[pos], 1) / N_ITERS, rtol=1e-6)
    np.testing.assert_allclose(p[neg], np.maximum(lower[neg], 1) / N_ITERS, rtol=1e-6)
    np.testing.assert_array_equal(p[~(pos | neg)], 1)
    np.testing.assert_array_equal(z[~(pos | neg)], 0)
    np.testing.assert_allclose(z[pos], p_to_z(p[pos], tail="one"), rtol=1e-5)
    assert (z[neg] <= 0).all()


def test_inference_map_errors(toy_space, groups, tmp_path):
    est = dmeta.ALESubtraction(n_iters=5, mask=toy_space.mask_img)
    with pytest.raises(InputError, match="inference_map1 must be a vector of the mask's"):
        est.fit(*groups, inference_map1=np.ones(3))
    other = tmp_path / "other.nii.gz"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), other)
    with pytest.raises(InputError, match="inference_map2: .*not in the analysis space"):
        est.fit(*groups, inference_map2=other)
    with pytest.raises(InputError, match="no voxel > 0"):
        est.fit(*groups, inference_map1=np.zeros(toy_space.n_voxels))


@pytest.mark.parametrize("bad", [0, 1, 1.5, "0.01", True])
def test_bad_voxel_thresh(toy_space, groups, bad):
    with pytest.raises(InputError, match="voxel_thresh must be a number in"):
        dmeta.ALESubtraction(n_iters=5, mask=toy_space.mask_img, voxel_thresh=bad).fit(*groups)


def test_inference_maps_are_described(toy_fits, toy_space, groups):
    gates = _gates(toy_fits["exact"])
    gated = dmeta.ALESubtraction(n_iters=5, seed=3, mask=toy_space.mask_img).fit(
        *groups, inference_map1=gates[0])
    assert "one-sided: group 1 > group 2 only where inference map 1 was positive; " \
        "elsewhere p = 1." in gated.description
    assert "inference map" not in toy_fits["exact"].description
