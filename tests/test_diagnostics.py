"""FocusCounter and Jackknife: parity with NiMARE 0.22.1 on pain (target "z", z > 3.1, no
randomness), cluster tables and label maps named as NiMARE names them, results independent
of voxel blocking. Both get every focus, including the 26 outside the mask.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta import ma_blocks
from dmeta.diagnostics.tables import peak_map_name

nimare = pytest.importorskip("nimare")
import nimare.diagnostics as nd  # noqa: E402
from nimare.meta.cbma import ALE as NiMAREALE  # noqa: E402

from nimare_reference import nimare_dataset  # noqa: E402

THRESH = 3.1


@pytest.fixture(scope="module")
def nimare_pain(pain_ale):
    space = pain_ale.space
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dset = nimare_dataset("pain", space)
        return NiMAREALE(mask=space.mask_img).fit(dset)


@pytest.mark.parametrize("name", ["FocusCounter", "Jackknife"])
def test_tables_match_nimare(pain_ale, nimare_pain, name):
    ours = getattr(dmeta, name)(target_image="z", voxel_thresh=THRESH).transform(pain_ale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(nd, name)(target_image="z", voxel_thresh=THRESH).transform(
            copy.deepcopy(nimare_pain))
    pd.testing.assert_frame_equal(ours.tables["z_tab-clust"], theirs.tables["z_tab-clust"],
                                  check_dtype=False)
    assert len(ours.tables["z_tab-clust"]) > 20
    # NiMARE 0.22.1 drops the target's first entity from the label map name.
    np.testing.assert_array_equal(ours.get_map("label_z_tail-positive", "array"),
                                  theirs.get_map("label_tail-positive", return_type="array"))
    key = f"z_diag-{name}_tab-counts_tail-positive"
    a, b = ours.tables[key], theirs.tables[key]
    assert list(a.columns) == list(b.columns) and list(a["id"]) == list(b["id"])
    values, expected = a.iloc[:, 1:].to_numpy(float), b.iloc[:, 1:].to_numpy(float)
    if name == "FocusCounter":
        np.testing.assert_array_equal(values, expected)
    else:
        np.testing.assert_allclose(values, expected, rtol=0, atol=1e-4)


def test_jackknife_does_not_depend_on_voxel_blocks(client, pain_ale):
    whole = dmeta.Jackknife(target_image="z", voxel_thresh=THRESH).transform(pain_ale)
    blocked = dmeta.Jackknife(target_image="z", voxel_thresh=THRESH, chunk_voxels=700)
    key = "z_diag-Jackknife_tab-counts_tail-positive"
    pd.testing.assert_frame_equal(blocked.transform(pain_ale).tables[key], whole.tables[key],
                                  check_exact=False, rtol=0, atol=1e-12)


def test_jackknife_of_a_set_built_on_the_workers(client, pain_ale, monkeypatch):
    """No MA matrix in this process (a set above MA_DASK_MIN): blocks of analyses rebuild
    their rows on the workers; the table is the one from the matrix."""
    whole = dmeta.Jackknife(target_image="z", voxel_thresh=THRESH).transform(pain_ale)
    monkeypatch.setattr(pain_ale.estimator.ma_, "_matrix", None)
    monkeypatch.setattr(ma_blocks, "MA_BLOCK", 6)
    blocks = dmeta.Jackknife(target_image="z", voxel_thresh=THRESH).transform(pain_ale)
    assert pain_ale.estimator.ma_._matrix is None  # nothing was brought here
    key = "z_diag-Jackknife_tab-counts_tail-positive"
    pd.testing.assert_frame_equal(blocks.tables[key], whole.tables[key],
                                  check_exact=False, rtol=1e-6, atol=1e-12)


def test_no_clusters_gives_an_empty_table_and_a_warning(pain_ale):
    with pytest.warns(UserWarning, match="no clusters"):
        out = dmeta.FocusCounter(target_image="z", voxel_thresh=50).transform(pain_ale)
    assert out.tables["z_tab-clust"].empty
    assert not any(name.startswith("label_") for name in out.maps)


def test_bad_target_is_a_clear_input_error(pain_ale):
    with pytest.raises(dmeta.InputError, match="not in the result; available maps: stat"):
        dmeta.Jackknife(target_image="zz").transform(pain_ale)


@pytest.mark.parametrize("target, peaks", [
    ("z_desc-size_level-cluster_corr-FWE_method-montecarlo", "z"),
    ("z_desc-mass_level-cluster_corr-FWE_method-montecarlo", "z"),
    ("z_desc-group1MinusGroup2Size_level-cluster_corr-FWE_method-montecarlo",
     "z_desc-group1MinusGroup2"),
])
def test_peaks_of_cluster_corrected_maps_come_from_the_uncorrected_map(target, peaks):
    assert peak_map_name(target) == peaks


def test_pairwise_tails_follow_nimare_groups(client):
    """Subtraction: group 1's analyses for the positive tail, group 2's for the negative one
    (only with display_second_group); a leave-one-out contribution equals a refit's."""
    knowledge = dmeta.datasets.load_example("semantic_knowledge")
    related = dmeta.datasets.load_example("semantic_relatedness")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dmeta.ALESubtraction(n_iters=50, seed=1).fit(knowledge, related)
        target = "z_desc-group1MinusGroup2"
        both = dmeta.Jackknife(target_image=target, voxel_thresh=1.0,
                               display_second_group=True).transform(result)
        first = dmeta.FocusCounter(target_image=target, voxel_thresh=1.0).transform(result)
        key = f"{target}_diag-Jackknife_tab-counts_tail-negative"
        assert list(both.tables[key]["id"]) == list(related.ids)
        assert f"{target}_diag-FocusCounter_tab-counts_tail-negative" not in first.tables
        # Leaving out group 2's first analysis, refitted the slow way.
        labels = both.get_map(f"label_{target}_tail-negative", "array")
        stat = result.get_map("stat_desc-group1MinusGroup2", "array")
        ale2 = dmeta.ALE().fit(related.select(related.ids[1:])).get_map("stat", "array")
        ale1 = dmeta.ALE().fit(knowledge).get_map("stat", "array")
    inside = labels == 1
    expected = np.mean(1 - (ale1[inside] - ale2[inside].astype(float)) / stat[inside])
    column = both.tables[key].columns[1]
    np.testing.assert_allclose(both.tables[key][column][0], expected, atol=1e-4)
