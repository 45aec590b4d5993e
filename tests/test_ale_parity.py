"""ALE statistic and approximate-null z agree with NiMARE 0.22.1 on the bundled data.

NiMARE keeps foci that fall outside the mask; dmeta leaves them out (with a warning), so
NiMARE is given the same in-mask foci.
"""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.datasets import example_path

DATA = example_path("pain").parent

nimare = pytest.importorskip("nimare")
from nimare.io import convert_sleuth_to_dataset  # noqa: E402
from nimare.meta.cbma import ALE as NiMAREALE  # noqa: E402
from nimare.meta.kernel import ALEKernel  # noqa: E402
from nimare.studyset import Studyset  # noqa: E402


def _nimare_dataset(name):
    if name == "pain":
        return Studyset(str(example_path("pain")), target="mni152_2mm").to_dataset()
    return convert_sleuth_to_dataset(str(example_path(name)))


def _in_mask_only(dset, space):
    ijk = space.mm_to_ijk(dset.coordinates[["x", "y", "z"]].to_numpy())
    kept = dset.copy()
    kept.coordinates = dset.coordinates[space.in_mask(ijk)].reset_index(drop=True)
    return kept


def _fit_both(name, **kwargs):
    cset = dmeta.datasets.load_example(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dmeta.ALE(**kwargs).fit(cset)
        nimare_kwargs = {}
        if "kernel_fwhm" in kwargs:
            nimare_kwargs["kernel_transformer"] = ALEKernel(fwhm=kwargs["kernel_fwhm"])
        if "sample_size" in kwargs:
            nimare_kwargs["kernel_transformer"] = ALEKernel(sample_size=kwargs["sample_size"])
        dset = _in_mask_only(_nimare_dataset(name), ours.space)
        theirs = NiMAREALE(mask=ours.space.mask_img, **nimare_kwargs).fit(dset)
    return ours, theirs


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("semantic_knowledge", {}),
        ("semantic_relatedness", {}),
        ("pain", {}),
        ("semantic_knowledge", {"sample_size": 20}),
        ("pain", {"kernel_fwhm": 12.0}),
    ],
)
def test_stat_and_z_match_nimare(name, kwargs):
    ours, theirs = _fit_both(name, **kwargs)
    for map_name, tol in (("stat", 1e-6), ("z", 1e-4), ("logp", 1e-4)):
        np.testing.assert_allclose(
            ours.get_map(map_name, "array"), theirs.get_map(map_name, return_type="array"),
            rtol=0, atol=tol, err_msg=map_name,
        )


def test_parquet_studyset_with_talairach_foci_matches_nimare():
    path = DATA / "neurostore_parquet_studyset"
    cset = dmeta.io.load(path)
    assert (cset.foci["space"] == "TAL").any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dmeta.ALE(sample_size=20).fit(cset)
        dset = Studyset(str(path), target="mni152_2mm").to_dataset()
        theirs = NiMAREALE(kernel_transformer=ALEKernel(sample_size=20), mask=ours.space.mask_img).fit(
            _in_mask_only(dset, ours.space)
        )
    for map_name, tol in (("stat", 1e-6), ("z", 1e-4)):
        np.testing.assert_allclose(
            ours.get_map(map_name, "array"), theirs.get_map(map_name, return_type="array"),
            rtol=0, atol=tol, err_msg=map_name,
        )
