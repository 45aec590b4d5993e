"""Tests for dmeta.space: mask loading, coordinate conversion and vector/volume layout."""

import pickle
import sys
import types

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from nilearn.maskers import NiftiMasker
from nimare.utils import mm2vox

from dmeta.errors import InputError
from dmeta.space import Space, values_at


def test_mni_mask_attributes(space, mask_path):
    img = nib.load(mask_path)
    assert space.shape == (91, 109, 91)
    assert space.n_voxels == 228483
    assert space.affine.dtype == np.float64
    np.testing.assert_array_equal(space.affine, img.affine)
    assert space.mask.dtype == bool and space.mask.flags.c_contiguous
    np.testing.assert_array_equal(space.mask, np.asarray(img.dataobj) > 0)
    assert space.flat_index.dtype == np.int64
    assert np.all(np.diff(space.flat_index) > 0)
    np.testing.assert_array_equal(space.ijk, np.argwhere(space.mask))
    assert space.zooms == (2.0, 2.0, 2.0)


def test_mask_img_matches_source(space, mask_path):
    img = nib.load(mask_path)
    assert space.mask_img.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(space.mask_img.affine, img.affine)
    assert space.mask_img.header.get_zooms() == img.header.get_zooms()
    np.testing.assert_array_equal(space.mask_img.get_fdata() > 0, space.mask)


def test_from_image_object_equals_from_path(space, mask_path):
    assert Space.from_mask(nib.load(mask_path)) == space
    assert Space.from_mask(space) is space


def test_default_mask_is_looked_up_lazily(monkeypatch, mask_path, space):
    fake = types.ModuleType("dmeta.datasets")
    fake.default_mask_path = lambda: mask_path
    monkeypatch.setitem(sys.modules, "dmeta.datasets", fake)
    assert Space.from_mask() == space


def test_arrays_are_read_only(toy_space):
    for array in (toy_space.mask, toy_space.affine, toy_space.flat_index, toy_space.ijk):
        with pytest.raises(ValueError):
            array.flat[0] = 0


def test_not_3d_mask_is_refused_naming_file(tmp_path):
    path = tmp_path / "four_d.nii.gz"
    nib.Nifti1Image(np.ones((3, 3, 3, 2), np.uint8), np.eye(4)).to_filename(path)
    with pytest.raises(InputError, match="four_d.nii.gz.*3-D"):
        Space.from_mask(path)


def test_empty_mask_is_refused_naming_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    nib.Nifti1Image(np.zeros((3, 3, 3), np.uint8), np.eye(4)).to_filename(path)
    with pytest.raises(InputError, match="empty.nii.gz.*empty"):
        Space.from_mask(path)


def test_missing_or_unreadable_mask(tmp_path):
    with pytest.raises(InputError, match="missing.nii.gz.*not found"):
        Space.from_mask(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_text("not an image")
    with pytest.raises(InputError, match="junk.nii.gz"):
        Space.from_mask(junk)
    with pytest.raises(InputError, match="path or a nibabel image"):
        Space.from_mask(42)


def test_non_finite_voxels_are_outside_the_mask():
    data = np.ones((2, 2, 2), np.float32)
    data[0, 0, 0] = np.nan
    space = Space.from_mask(nib.Nifti1Image(data, np.eye(4)))
    assert space.n_voxels == 7 and not space.mask[0, 0, 0]


def test_fingerprint_is_stable_and_sensitive(toy_space):
    again = Space(toy_space.mask.copy(), toy_space.affine.copy())
    assert toy_space.fingerprint() == again.fingerprint()
    assert len(toy_space.fingerprint()) == 64
    shifted = toy_space.affine.copy()
    shifted[0, 3] += 1
    assert Space(toy_space.mask, shifted).fingerprint() != toy_space.fingerprint()
    mask = toy_space.mask.copy()
    mask[toy_space.ijk[0][0], toy_space.ijk[0][1], toy_space.ijk[0][2]] = False
    assert Space(mask, toy_space.affine).fingerprint() != toy_space.fingerprint()


def test_vectors_follow_nilearn_masker_order(space, rng):
    masker = NiftiMasker(space.mask_img).fit()
    volume = rng.standard_normal(space.shape).astype(np.float32)
    img = nib.Nifti1Image(volume, space.affine)
    expected = np.asarray(masker.transform(img)).ravel()
    np.testing.assert_array_equal(space.from_image(img), expected)
    np.testing.assert_array_equal(space.from_volume(volume), expected)

    values = rng.standard_normal(space.n_voxels).astype(np.float32)
    np.testing.assert_array_equal(
        space.to_image(values).get_fdata(), masker.inverse_transform(values).get_fdata()
    )


@settings(max_examples=200, deadline=None)
@given(
    xyz=arrays(
        np.float64,
        st.tuples(st.integers(1, 20), st.just(3)),
        elements=st.one_of(
            st.integers(-120, 120).map(float),  # odd mm = exactly half a voxel on this grid
            st.integers(-240, 240).map(lambda n: n / 2 + 0.0),
            st.floats(-150, 150, allow_nan=False),
        ),
    )
)
def test_mm_to_ijk_matches_nimare(xyz):
    affine = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])
    space = Space(np.ones((1, 1, 1), bool), affine)  # the mask plays no part in mm_to_ijk
    np.testing.assert_array_equal(space.mm_to_ijk(xyz), mm2vox(xyz, affine))


def test_mm_to_ijk_rounds_half_voxels_like_nimare(space):
    xyz = np.array([[1.0, 1.0, 1.0], [3.0, -3.0, 5.0], [-89.0, 17.0, 0.0]])
    np.testing.assert_array_equal(space.mm_to_ijk(xyz), mm2vox(xyz, space.affine))


def test_ijk_mm_round_trip(toy_space):
    mm = toy_space.ijk_to_mm(toy_space.ijk)
    np.testing.assert_array_equal(toy_space.mm_to_ijk(mm), toy_space.ijk)
    expected = toy_space.affine[:3, :3] @ toy_space.ijk[0] + toy_space.affine[:3, 3]
    np.testing.assert_allclose(mm[0], expected)


def test_in_volume_and_in_mask(toy_space):
    ijk = np.array([[-1, 0, 0], [0, 0, 0], [5, 6, 4], [6, 0, 0], [2, 3, 2], [0, 0, 5]])
    inside = [False, True, True, False, True, False]
    np.testing.assert_array_equal(toy_space.in_volume(ijk), inside)
    corners = [bool(toy_space.mask[0, 0, 0]), bool(toy_space.mask[5, 6, 4])]
    expected = [False, *corners, False, True, False]
    np.testing.assert_array_equal(toy_space.in_mask(ijk), expected)
    assert toy_space.in_mask(toy_space.ijk).all()


def test_values_at_reads_off_grid_rows_as_fill(toy_space):
    labels = np.arange(np.prod(toy_space.shape)).reshape(toy_space.shape) + 1
    ijk = np.array([[-1, 0, 0], [0, 0, 0], [5, 6, 4], [6, 0, 0], [0, -40, 99]])
    np.testing.assert_array_equal(values_at(labels, ijk, 0),
                                  [0, labels[0, 0, 0], labels[5, 6, 4], 0, 0])


def test_volume_round_trip_and_fill(toy_space, rng):
    values = rng.integers(1, 100, toy_space.n_voxels)
    volume = toy_space.to_volume(values)
    assert volume.dtype == values.dtype
    assert np.all(volume[~toy_space.mask] == 0)
    np.testing.assert_array_equal(toy_space.from_volume(volume), values)
    with_nan = toy_space.to_volume(values, fill=np.nan)
    assert with_nan.dtype == np.float64 and np.isnan(with_nan[~toy_space.mask]).all()


def test_wrong_shapes_are_refused(toy_space):
    with pytest.raises(InputError, match="in-mask values"):
        toy_space.to_volume(np.zeros(toy_space.n_voxels + 1))
    with pytest.raises(InputError, match="volume of shape"):
        toy_space.from_volume(np.zeros((2, 2, 2)))


def test_from_image_refuses_other_space(toy_space):
    wrong_shape = nib.Nifti1Image(np.zeros((6, 7, 6), np.float32), toy_space.affine)
    with pytest.raises(InputError, match="not in the analysis space"):
        toy_space.from_image(wrong_shape)
    wrong_affine = nib.Nifti1Image(np.zeros(toy_space.shape, np.float32), np.eye(4))
    with pytest.raises(InputError, match="not in the analysis space"):
        toy_space.from_image(wrong_affine)
    four_d = nib.Nifti1Image(np.zeros((*toy_space.shape, 2), np.float32), toy_space.affine)
    with pytest.raises(InputError, match="3-D"):
        toy_space.from_image(four_d)


def test_from_image_reads_files(toy_space, tmp_path, rng):
    values = rng.standard_normal(toy_space.n_voxels).astype(np.float32)
    path = tmp_path / "map.nii.gz"
    toy_space.to_image(values).to_filename(path)
    np.testing.assert_array_equal(toy_space.from_image(path), values)


def test_space_pickles_for_dask_workers(toy_space):
    clone = pickle.loads(pickle.dumps(toy_space))
    assert clone == toy_space and hash(clone) == hash(toy_space)
