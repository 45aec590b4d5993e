"""BalancedALESubtraction: parity with NiMARE 0.22.1 (knowledge vs relatedness), a dense
reference for the balanced differences, chunk/worker invariance, resume, bad input.

The two tools draw different subsamples and null datasets, so at equal (small) counts their
maps agree statistically. The maps that average many draws (the balanced difference, the
probability maps and their conjunction) correlate at r >= 0.95. The thresholded p and z
maps do not at such counts, in dmeta against itself either: they hinge on a 97.5th
percentile of a few dozen null extremes. For them the test checks that the nulls agree in
distribution and that dmeta's p/z rule, applied to NiMARE's own statistic and nulls,
gives NiMARE's maps exactly.
"""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.errors import InputError
from dmeta.subtraction._balanced_kernel import mean_differences
from dmeta.subtraction.balanced import (
    DESC,
    MAX_NULL,
    MIN_NULL,
    NULL_STREAM,
    OBSERVED_STREAM,
    BalancedALESubtraction,
    BalancedPlan,
    BalancedStore,
    fwe_extremes_p,
)

METHODS = ("random-foci", "label-permutation")
#: Equal counts for both tools: small, so that NiMARE's runs take seconds.
PARITY = {"n_iters": 20, "n_subsamples": 20, "difference_iterations": 5}
AVERAGED = (f"stat_{DESC}", "prob_desc-group1", "prob_desc-group2", "stat_desc-conjunction")
#: Smaller still for the invariance tests, which compare dmeta with itself bit for bit.
SMALL = {"n_iters": 6, "n_subsamples": 5, "difference_iterations": 8}


@pytest.fixture(scope="module")
def groups():
    return tuple(dmeta.datasets.load_example(name)
                 for name in ("semantic_knowledge", "semantic_relatedness"))


def _fit(groups, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # foci outside the mask, as NiMARE keeps
        return BalancedALESubtraction(**params).fit(*groups)


def _same(a, b):
    """Every map and null of two results, bit for bit."""
    assert set(a.maps) == set(b.maps)
    for name in a.maps:
        np.testing.assert_array_equal(a.get_map(name, "array"), b.get_map(name, "array"),
                                      err_msg=name)
    assert a.nulls.identical(b.nulls)


@pytest.fixture(scope="module", params=METHODS)
def ours(request, client, groups):
    return _fit(groups, null_method=request.param, seed=0, **PARITY)


@pytest.fixture(scope="module")
def nimare_groups(space):
    """The same groups as NiMARE datasets."""
    pytest.importorskip("nimare")
    from nimare_reference import nimare_dataset

    return [nimare_dataset(n, space) for n in ("semantic_knowledge", "semantic_relatedness")]


@pytest.fixture(scope="module")
def parity(ours, nimare_groups):
    import nimare
    from nimare.meta.cbma.ale import BalancedALESubtraction as NiMAREBalanced

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = NiMAREBalanced(null_method=ours.estimator.null_method, random_state=0,
                                mask=ours.space.mask_img, **PARITY).fit(*nimare_groups)
    assert nimare.__version__ == "0.22.1"
    return ours, theirs


@pytest.fixture
def toy_fit(toy_space, toy_groups):
    """Fit on the toy grid (foci anywhere in its mask), ``SMALL`` counts unless overridden.

    A wide kernel keeps its peak, hence the approximate null's setup on each worker, small.
    """
    def fit(**params):
        return _fit(toy_groups, mask=toy_space.mask_img, mask_coverage="brain",
                    kernel_fwhm=15.0, **{**SMALL, **params})
    return fit


def test_same_names_and_types_as_nimare(parity):
    ours, theirs = parity
    assert set(theirs.maps) <= set(ours.maps)
    for name in theirs.maps:
        assert ours.get_map(name, "array").dtype == theirs.maps[name].dtype == np.float32
    for name in theirs.estimator.null_distributions_:
        assert ours.nulls[name].dtype == np.float32
        assert ours.nulls[name].size == PARITY["n_iters"]


def test_averaged_maps_correlate(parity):
    ours, theirs = parity
    for name in AVERAGED:
        r = np.corrcoef(ours.get_map(name, "array"), np.asarray(theirs.maps[name], float))[0, 1]
        assert r >= 0.95, (name, r)


def test_null_extremes_agree_in_distribution(parity):
    ours, theirs = parity
    for name in (MIN_NULL, MAX_NULL):
        a, b = ours.nulls[name].values, theirs.estimator.null_distributions_[name]
        spread = np.sqrt((a.var() + b.var()) / a.size)
        assert abs(a.mean() - b.mean()) < 4 * spread, name


def test_p_and_z_follow_nimare_exactly(parity):
    _, theirs = parity
    nulls = theirs.estimator.null_distributions_
    p, z = fwe_extremes_p(theirs.maps[f"stat_{DESC}"], nulls[MIN_NULL], nulls[MAX_NULL], 0.05)
    np.testing.assert_array_equal(p, theirs.maps[f"p_{DESC}"])
    np.testing.assert_array_equal(z, theirs.maps[f"z_{DESC}"])
    # Against random foci the real difference stands out; relabellings keep its structure.
    assert (z != 0).any() or theirs.estimator.null_method == "label-permutation"


def _plan(result, null_method):
    est = result.estimator
    return BalancedPlan(est.ma1_, est.ma2_, est.target_n_, est.n_subsamples,
                        est.difference_iterations, est.voxel_thresh, null_method,
                        est.mask_coverage)


def _dense_mean_difference(factors, group, members, always):
    """Mean over pairs of subsamples of prod(1 - MA) over group 2's minus group 1's."""
    dense = np.ones((group.size, members.shape[1], factors.shape[1]))
    taken = always[:, None] | (members > 0)
    dense[taken] = np.broadcast_to(factors[:, None, :], dense.shape)[taken]
    products = [dense[group == g].prod(axis=0) for g in (0, 1)]
    return (products[1] - products[0]).mean(axis=0)


def _dense_columns(plan, every=97):
    """Every ``every``-th prior voxel and the (analysis x voxel) 1 - MA there."""
    indptr, rows, factors = plan.pooled
    picked = np.arange(0, plan.n_prior, every)
    columns = np.ones((plan.group.size, picked.size))
    for c, v in enumerate(picked):
        columns[rows[indptr[v]:indptr[v + 1]], c] = factors[indptr[v]:indptr[v + 1]]
    return picked, columns


def test_observed_difference_matches_a_dense_reference(ours):
    plan = _plan(ours, ours.estimator.null_method)
    picked, columns = _dense_columns(plan)
    members, always = plan._members(np.random.default_rng([0, OBSERVED_STREAM, 0]), plan.group)
    stat = ours.get_map(f"stat_{DESC}", "array")[plan.prior_columns[picked]]
    np.testing.assert_allclose(stat, _dense_mean_difference(columns, plan.group, members,
                                                            always), atol=3e-6)


def test_relabelled_null_matches_a_dense_reference(ours):
    """Null dataset 0 relabels the pooled analyses, then draws the pairs of subsamples."""
    plan = _plan(ours, "label-permutation")
    picked, columns = _dense_columns(plan)
    rng = np.random.default_rng([0, NULL_STREAM, 0])
    group = np.ones(plan.group.size, np.int8)
    group[rng.permutation(group.size)[:plan.sizes[0]]] = 0
    members, always = plan._members(rng, group)
    diff = np.empty(plan.n_prior)
    mean_differences(*plan.pooled, group, always, members, diff)
    np.testing.assert_allclose(diff[picked], _dense_mean_difference(columns, group, members,
                                                                    always), atol=3e-6)
    extremes = diff.astype(np.float32)
    np.testing.assert_array_equal(plan.run(0, "null", 0, 1)[0], [extremes.min(), extremes.max()])


@pytest.mark.parametrize("null_method", METHODS)
def test_chunking_does_not_change_results(client, toy_fit, null_method):
    one = toy_fit(null_method=null_method, seed=7, chunk_iters=1)
    _same(one, toy_fit(null_method=null_method, seed=7, chunk_iters=4))
    assert one.attrs["params"]["seed"] == 7 and one.attrs["params"]["target_n"] == 4


def test_one_or_two_workers_give_the_same_result(client, toy_fit):
    """Two worker processes, or one worker of two threads in this process."""
    from distributed import Client, LocalCluster

    two = toy_fit(random_state=8)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                      dashboard_address=":0") as cluster:
        with Client(cluster):
            one = toy_fit(seed=8)
    _same(one, two)


def test_interrupted_run_resumes_and_extends(client, toy_fit, tmp_path, monkeypatch):
    store = tmp_path / "balanced.zarr"
    written = []
    original = BalancedStore.write

    def crash_after_five(self, *args):
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(args[:2])
        original(self, *args)

    monkeypatch.setattr(BalancedStore, "write", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        toy_fit(seed=9, store=store, chunk_iters=2)
    monkeypatch.setattr(BalancedStore, "write", original)
    resumed = toy_fit(store=store, chunk_iters=2)  # the seed comes from the store
    _same(resumed, toy_fit(seed=9, chunk_iters=2))
    longer = SMALL["n_iters"] + 3
    _same(toy_fit(store=store, n_iters=longer), toy_fit(seed=9, n_iters=longer, chunk_iters=2))


def test_store_refuses_other_parameters(client, toy_fit, tmp_path):
    store = tmp_path / "balanced.zarr"
    toy_fit(seed=1, store=store)
    with pytest.raises(InputError, match="other inputs or parameters"):
        toy_fit(seed=1, store=store, difference_iterations=9)


@pytest.mark.parametrize("target_n", [0, 17, 2.5, True])
def test_bad_target_n(groups, target_n):
    with pytest.raises(InputError, match=r"target_n must be an integer from 1 to 16 "
                                         r"\(the smaller group's number of analyses\)"):
        BalancedALESubtraction(target_n=target_n).fit(*groups)


@pytest.mark.parametrize(("name", "value", "choices"), [
    ("null_method", "permutation", "'random-foci', 'label-permutation'"),
    ("mask_coverage", "wm", "'gm', 'brain'"),
])
def test_bad_choices(groups, name, value, choices):
    with pytest.raises(InputError, match=f"{name} must be one of {choices}, got '{value}'"):
        BalancedALESubtraction(**{name: value}).fit(*groups)


def test_bad_parameters(groups):
    with pytest.raises(InputError, match="seed=1 and random_state=2 differ"):
        BalancedALESubtraction(seed=1, random_state=2).fit(*groups)
    with pytest.raises(InputError, match="alpha"):
        BalancedALESubtraction(alpha=1.5).fit(*groups)
    with pytest.raises(InputError, match="difference_iterations"):
        BalancedALESubtraction(difference_iterations=0).fit(*groups)
    with pytest.raises(InputError, match="group 2 is a str"):
        BalancedALESubtraction().fit(groups[0], "relatedness.txt")
