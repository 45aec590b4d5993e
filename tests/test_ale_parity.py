"""ALE statistic and approximate-null z agree with NiMARE 0.22.1 with default settings.

Both get every focus, unfiltered: the bundled data (with foci outside the mask) and a
NeuroStore-shaped export (unknown spaces, foci in the ventricles and beyond the volume,
analyses without sample sizes).
"""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.datasets import example_path

nimare = pytest.importorskip("nimare")
from nimare.meta.cbma import ALE as NiMAREALE  # noqa: E402
from nimare.meta.kernel import ALEKernel  # noqa: E402

from nimare_reference import nimare_dataset  # noqa: E402


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
        dset = nimare_dataset(name, ours.space)
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
    cset = dmeta.io.load(example_path("pain").parent / "neurostore_parquet_studyset")
    assert (cset.foci["space"] == "TAL").any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dmeta.ALE(sample_size=20).fit(cset)
        theirs = NiMAREALE(kernel_transformer=ALEKernel(sample_size=20),
                           mask=ours.space.mask_img).fit(nimare_dataset("parquet", ours.space))
    for map_name, tol in (("stat", 1e-6), ("z", 1e-4)):
        np.testing.assert_allclose(
            ours.get_map(map_name, "array"), theirs.get_map(map_name, return_type="array"),
            rtol=0, atol=tol, err_msg=map_name,
        )


def test_neurostore_shaped_export_matches_nimare(neurostore_export):
    """Unknown spaces, ventricles, foci beyond the volume, no sample sizes: NiMARE's numbers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warnings are checked in test_messy_data
        cset = dmeta.io.load(neurostore_export)
        ours = dmeta.ALE(sample_size=20).fit(cset)
        theirs = NiMAREALE(kernel_transformer=ALEKernel(sample_size=20),
                           mask=ours.space.mask_img).fit(nimare_dataset(neurostore_export))
    for map_name, tol in (("stat", 1e-6), ("z", 1e-4)):
        np.testing.assert_allclose(
            ours.get_map(map_name, "array"), theirs.get_map(map_name, return_type="array"),
            rtol=0, atol=tol, err_msg=map_name,
        )
