"""The shared base: parameters read from constructors, readable repr, the fitted check."""

import numpy as np
import pytest

import dmeta
from dmeta.base import DmetaBase
from dmeta.errors import InputError
from toy_sets import toy_cset

# Each public class with one parameter changed from its default.
CHANGED = [
    (dmeta.ALE, {"sample_size": 20}),
    (dmeta.ALESubtraction, {"n_iters": 100}),
    (dmeta.FWECorrector, {"voxel_thresh": 0.01}),
    (dmeta.FDRCorrector, {"alpha": 0.1}),
    (dmeta.FocusCounter, {"cluster_threshold": 5}),
    (dmeta.Jackknife, {"chunk_voxels": 1000}),
    (dmeta.ResampledStability, {"resampling_policy": "leave_1_out"}),
    (dmeta.CBMAWorkflow, {"corrector": "fdr"}),
    (dmeta.PairwiseCBMAWorkflow, {"voxel_thresh": 3.1}),
    (dmeta.FocusFilter, {"mask": "mask.nii.gz"}),
]


@pytest.mark.parametrize("cls, changed", CHANGED, ids=lambda c: getattr(c, "__name__", ""))
def test_params_round_trip(cls, changed):
    obj = cls()
    assert isinstance(obj, DmetaBase)
    assert obj.set_params(**changed) is obj
    params = obj.get_params()
    assert {k: params[k] for k in changed} == changed
    assert cls(**params).get_params() == params


@pytest.mark.parametrize("cls, changed", CHANGED, ids=lambda c: getattr(c, "__name__", ""))
def test_repr_names_class_and_changed_parameters(cls, changed):
    (name, value), = changed.items()
    assert repr(cls(**changed)) == f"{cls.__name__}({name}={value!r})"


def test_repr_nests_and_abbreviates_images(toy_space):
    workflow = dmeta.CBMAWorkflow(estimator=dmeta.ALE(mask=toy_space.mask_img, n_iters=10))
    assert repr(workflow) == "CBMAWorkflow(estimator=ALE(n_iters=10, mask=<Nifti1Image>))"


@pytest.mark.parametrize("cls", [dmeta.ALE, dmeta.Jackknife, dmeta.PairwiseCBMAWorkflow])
def test_set_params_unknown_name(cls):
    with pytest.raises(InputError, match=rf"{cls.__name__} has no parameter n_iter\b.*valid"):
        cls().set_params(n_iter=10)


def test_workflow_resolves_parameters_set_after_construction():
    workflow = dmeta.CBMAWorkflow().set_params(corrector="fdr", diagnostics="jackknife")
    _, corrector, (diagnostic,) = workflow._steps()
    assert isinstance(corrector, dmeta.FDRCorrector)
    assert diagnostic.get_params()["cluster_threshold"] == 10  # the workflow's


@pytest.fixture(scope="module")
def unfitted_result(toy_space):
    cset = toy_cset(toy_space, np.random.default_rng(3), 5, "a", "toy.txt")
    result = dmeta.ALE(mask=toy_space.mask_img).fit(cset)
    result.estimator = dmeta.ALE(mask=toy_space.mask_img)
    return result


@pytest.mark.parametrize("step", [dmeta.FWECorrector(n_iters=10), dmeta.ResampledStability()],
                         ids=lambda s: type(s).__name__)
def test_unfitted_estimator_is_named(unfitted_result, step):
    with pytest.raises(InputError, match="ALE is not fitted: call ALE.fit first"):
        step.transform(unfitted_result)


BAD_INTS = [0, -1, 2.5, "100", True]


@pytest.fixture(scope="module")
def two_csets(toy_space):
    rng = np.random.default_rng(5)
    return (toy_cset(toy_space, rng, 4, "a", "a.txt"), toy_cset(toy_space, rng, 4, "b", "b.txt"))


@pytest.fixture
def no_mask(monkeypatch):
    """Loading a mask fails the test: parameters are checked before any heavy work."""
    def refuse(*_):
        raise AssertionError("the mask was loaded before the parameters were checked")

    monkeypatch.setattr(dmeta.space.Space, "from_mask", refuse)


# Each entry point with iteration parameters, given a bad one: the result handed to a
# transform is a bare object, so any work before the checks fails with another error.
ENTRY_POINTS = {
    "ALE.fit": lambda c, kw: dmeta.ALE(**kw).fit(c[0]),
    "FWECorrector.transform": lambda c, kw: dmeta.FWECorrector(**kw).transform(object()),
    "ALESubtraction.fit": lambda c, kw: dmeta.ALESubtraction(**kw).fit(*c),
    "ResampledStability.transform":
        lambda c, kw: dmeta.ResampledStability(**kw).transform(object()),
    "stability_sweep": lambda c, kw: dmeta.stability_sweep(c[0], **kw),
}


@pytest.mark.parametrize("bad", BAD_INTS, ids=repr)
@pytest.mark.parametrize("name", ["n_iters", "chunk_iters"])
@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
def test_bad_iteration_counts_are_refused_before_any_work(no_mask, two_csets, entry, name,
                                                          bad):
    accepted = " or 'auto'" if name == "n_iters" else ""
    with pytest.raises(InputError, match=rf"^{name} must be a positive integer{accepted}, got "):
        ENTRY_POINTS[entry](two_csets, {name: bad})


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=str)
def test_bad_seed_is_refused_before_any_work(no_mask, two_csets, entry):
    name = "random_state" if "tability" in entry else "seed"
    with pytest.raises(InputError, match=f"^{name} must be a non-negative integer, got -1"):
        ENTRY_POINTS[entry](two_csets, {name: -1})
