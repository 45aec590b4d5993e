"""conjunction: voxelwise minimum where every map is positive, 0 elsewhere."""

import nibabel as nib
import numpy as np
import pytest

import dmeta
from dmeta.errors import InputError

AFFINE = np.diag([2.0, 2.0, 2.0, 1.0])


def _img(values, affine=AFFINE):
    return nib.Nifti1Image(np.asarray(values, dtype=np.float32).reshape(2, 2, 1), affine)


def test_minimum_where_all_positive(tmp_path):
    a = _img([3.0, 0.0, 2.0, -1.0])
    b = _img([1.5, 4.0, 2.5, 3.0])
    b_path = tmp_path / "b.nii.gz"
    b.to_filename(b_path)
    out = dmeta.conjunction([a, str(b_path)])
    np.testing.assert_array_equal(out.get_fdata().ravel(), [1.5, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(out.affine, AFFINE)


def test_three_maps_and_symmetry():
    maps = [_img([1, 2, 3, 4]), _img([4, 3, 2, 1]), _img([2, 2, 0, 2])]
    out = dmeta.conjunction(maps).get_fdata().ravel()
    np.testing.assert_array_equal(out, [1, 2, 0, 1])
    np.testing.assert_array_equal(dmeta.conjunction(maps[::-1]).get_fdata().ravel(), out)


def test_mismatched_grids():
    with pytest.raises(InputError, match="another grid"):
        dmeta.conjunction([_img([1, 1, 1, 1]), _img([1, 1, 1, 1], np.diag([3, 3, 3, 1.0]))])


@pytest.mark.parametrize("imgs", [[], "one.nii.gz"])
def test_needs_two_images(imgs):
    with pytest.raises(InputError, match="two or more"):
        dmeta.conjunction(imgs)


def test_unreadable_path(tmp_path):
    with pytest.raises(InputError, match="missing.nii.gz"):
        dmeta.conjunction([_img([1, 1, 1, 1]), tmp_path / "missing.nii.gz"])


def test_dmeta_conjunction_stays_the_function_after_its_module_is_imported():
    import importlib

    import dmeta

    importlib.import_module("dmeta.conjunction")
    importlib.import_module("dmeta.reporting")
    assert callable(dmeta.conjunction) and callable(dmeta.report)
