"""The shared base: parameters read from constructors, readable repr, the fitted check."""

import numpy as np
import pytest

import dmeta
from dmeta.base import DmetaBase
from dmeta.errors import InputError
from test_subtraction import _cset

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
    cset = _cset(toy_space, np.random.default_rng(3), 5, "a", "toy.txt")
    result = dmeta.ALE(mask=toy_space.mask_img).fit(cset)
    result.estimator = dmeta.ALE(mask=toy_space.mask_img)
    return result


@pytest.mark.parametrize("step", [dmeta.FWECorrector(n_iters=10), dmeta.ResampledStability()],
                         ids=lambda s: type(s).__name__)
def test_unfitted_estimator_is_named(unfitted_result, step):
    with pytest.raises(InputError, match="ALE is not fitted: call ALE.fit first"):
        step.transform(unfitted_result)
