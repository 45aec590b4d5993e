"""ALE subtraction engine: a dense reference on a toy grid, chunk invariance, bad inputs."""

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
from dmeta.subtraction.permutation import pooled_csr, relabellings

N_ITERS = 60


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
def toy_fit(client, toy_space, groups):
    estimator = dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img)
    return estimator.fit(*groups)


def _dense_reference(estimator, n_iters, seed):
    """NiMARE's procedure, written out densely: one relabelling at a time, exp and all."""
    ma = pooled_csr(estimator.ma1_, estimator.ma2_).toarray().astype(np.float32)
    log_c = np.log1p(-ma).astype(np.float64)
    n1 = estimator.ma1_.matrix.shape[0]
    observed = ((1 - np.exp(log_c[:n1].sum(0))).astype(np.float32)
                - (1 - np.exp(log_c[n1:].sum(0))).astype(np.float32))
    upper = np.zeros(ma.shape[1], int)
    lower = np.zeros(ma.shape[1], int)
    for i in range(n_iters):
        members = np.random.default_rng([seed, i]).permutation(len(ma))
        diff = ((1 - np.exp(log_c[members[:n1]].sum(0)))
                - (1 - np.exp(log_c[members[n1:]].sum(0))))
        upper += diff >= observed
        lower += diff <= observed
    p = np.clip(2 * np.minimum(upper, lower) / n_iters, 1 / n_iters, 1 - 1 / n_iters)
    return observed, p.astype(np.float32), np.sign(lower - upper)


def test_matches_dense_reference(toy_fit):
    stat, p, sign = _dense_reference(toy_fit.estimator, N_ITERS, 3)
    np.testing.assert_array_equal(toy_fit.get_map("stat_desc-group1MinusGroup2", "array"), stat)
    np.testing.assert_allclose(toy_fit.get_map("p_desc-group1MinusGroup2", "array"), p,
                               rtol=1e-6)
    z = toy_fit.get_map("z_desc-group1MinusGroup2", "array")
    np.testing.assert_allclose(z, p_to_z(p, tail="two") * sign, rtol=1e-5, atol=1e-6)
    assert (p < 1).any() and (sign != 0).any()


def test_output_maps(toy_fit):
    expected = {f"{m}_desc-{d}" for m in ("stat", "p", "z", "logp")
                for d in ("group1MinusGroup2", "group1", "group2")}
    assert expected <= set(toy_fit.maps)
    assert toy_fit.attrs["params"]["seed"] == 3


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_iters=st.integers(7, N_ITERS), chunk_voxels=st.integers(16, 200))
def test_chunking_does_not_change_results(toy_fit, toy_space, groups, chunk_iters, chunk_voxels):
    refit = dmeta.ALESubtraction(n_iters=N_ITERS, seed=3, mask=toy_space.mask_img,
                                 chunk_iters=chunk_iters, chunk_voxels=chunk_voxels).fit(*groups)
    for name in ("p_desc-group1MinusGroup2", "z_desc-group1MinusGroup2"):
        np.testing.assert_array_equal(refit.get_map(name, "array"), toy_fit.get_map(name, "array"))


def test_other_seed_other_null(toy_fit, toy_space, groups):
    other = dmeta.ALESubtraction(n_iters=N_ITERS, seed=4, mask=toy_space.mask_img).fit(*groups)
    assert not np.array_equal(other.get_map("p_desc-group1MinusGroup2", "array"),
                              toy_fit.get_map("p_desc-group1MinusGroup2", "array"))


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
