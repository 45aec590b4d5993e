"""Workflows: the reference example's arguments, NiMARE's corrected-map and table names."""

import warnings

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta.errors import InputError
from toy_sets import toy_cset


class RecordingDiagnostic:
    """Stands in for FocusCounter/Jackknife: records targets and adds one table per target."""

    def __init__(self, target_image="z", voxel_thresh=None, cluster_threshold=None):
        self.target_image = target_image
        self.voxel_thresh = voxel_thresh
        self.cluster_threshold = cluster_threshold

    def transform(self, result):
        out = result.copy()
        out.estimator = result.estimator
        out.add_tables({f"{self.target_image}_tab-clust": pd.DataFrame(
            {"cluster_threshold": [self.cluster_threshold], "voxel_thresh": [self.voxel_thresh]})})
        return out


@pytest.fixture(scope="module")
def groups(toy_space):
    rng = np.random.default_rng(11)
    return toy_cset(toy_space, rng, 6, "a", "g1.txt"), toy_cset(toy_space, rng, 5, "b", "g2.txt")


def test_pairwise_fdr_names_as_in_reference(client, toy_space, groups):
    workflow = dmeta.PairwiseCBMAWorkflow(
        estimator=dmeta.ALESubtraction(n_iters=20, seed=1, mask=toy_space.mask_img),
        corrector="fdr",
        diagnostics=RecordingDiagnostic(voxel_thresh=0.01),
    )
    result = workflow.fit(*groups)
    targets = [f"z_desc-{d}_corr-FDR_method-indep"
               for d in ("group1MinusGroup2", "group1", "group2")]
    for name in targets:
        assert name in result.maps
        table = result.tables[f"{name}_tab-clust"]
        # Explicit settings kept; the workflow's cluster_threshold fills the default.
        assert table["voxel_thresh"][0] == 0.01 and table["cluster_threshold"][0] == 10
    assert "p_desc-group1MinusGroup2_corr-FDR_method-indep" in result.maps


def test_single_group_montecarlo_diagnoses_mass_map(client, toy_space, groups, tmp_path):
    workflow = dmeta.CBMAWorkflow(
        estimator=dmeta.ALE(mask=toy_space.mask_img),
        corrector=dmeta.FWECorrector(n_iters=10, seed=1),
        diagnostics=[RecordingDiagnostic()],
        output_dir=tmp_path,
    )
    result = workflow.fit(groups[0])
    clust = [name for name in result.tables if name.endswith("_tab-clust")]
    assert clust == ["z_desc-mass_level-cluster_corr-FWE_method-montecarlo_tab-clust"]
    assert (tmp_path / "z_desc-mass_level-cluster_corr-FWE_method-montecarlo.nii.gz").exists()
    assert (tmp_path / "boilerplate.txt").read_text().startswith("An activation")


def test_focus_counter_in_pairwise_workflow(client, knowledge):
    relatedness = dmeta.datasets.load_example("semantic_relatedness")
    workflow = dmeta.PairwiseCBMAWorkflow(
        estimator=dmeta.ALESubtraction(n_iters=200, seed=0),
        corrector="fdr",
        diagnostics=dmeta.FocusCounter(voxel_thresh=0.01, display_second_group=True),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = workflow.fit(knowledge, relatedness)
    target = "z_desc-group1MinusGroup2_corr-FDR_method-indep"
    assert f"{target}_tab-clust" in result.tables
    counts = [n for n in result.tables if n.startswith(f"{target}_diag-FocusCounter_tab-counts")]
    for name in counts:
        assert set(result.tables[name]["id"]) <= set(knowledge.ids) | set(relatedness.ids)


@pytest.mark.parametrize("kwargs, match", [
    ({"estimator": "mkdachi2"}, "estimator 'mkdachi2'"),
    ({"corrector": "bonferroni"}, "corrector 'bonferroni'"),
    ({"estimator": dmeta.ALE()}, "estimator must be ALESubtraction"),
    ({"diagnostics": object()}, "transform"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        dmeta.PairwiseCBMAWorkflow(**kwargs)


# -- ContrastWorkflow ----------------------------------------------------------------------

CONTRAST_ITERS = 100


@pytest.fixture(scope="module")
def contrasts(client):
    """dmeta's and NiMARE 0.22.1's ContrastWorkflow on knowledge vs relatedness (FDR)."""
    pytest.importorskip("nimare")
    from nimare.meta.cbma import ALE as NiMAREALE
    from nimare.meta.cbma import ALESubtraction as NiMAREALESubtraction
    from nimare.workflows.cbma import ContrastWorkflow as NiMAREContrastWorkflow

    from nimare_reference import nimare_dataset

    names = ("semantic_knowledge", "semantic_relatedness")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dmeta.ContrastWorkflow(pairwise_estimator=dmeta.ALESubtraction(
            n_iters=CONTRAST_ITERS, seed=1, tie_handling="nimare")).fit(
            *(dmeta.datasets.load_example(n) for n in names))
        mask = ours.space.mask_img
        theirs = NiMAREContrastWorkflow(
            main_estimator=NiMAREALE(mask=mask),
            pairwise_estimator=NiMAREALESubtraction(n_iters=CONTRAST_ITERS, mask=mask),
        ).fit(*(nimare_dataset(n, ours.space) for n in names))
    return ours, theirs


def test_contrast_main_effects_equal_nimare(contrasts):
    """Same corrected main effects, hence the same gates and conjunction, bit for bit."""
    ours, theirs = contrasts
    for name in ("z_desc-group1MainEffect", "z_desc-group2MainEffect", "z_desc-conjunction"):
        np.testing.assert_array_equal(ours.get_map(name, "array"),
                                      np.asarray(theirs.maps[name], dtype=np.float32))
    assert (ours.get_map("z_desc-conjunction", "array") > 0).sum() > 100


def test_contrast_is_tested_where_nimare_tests_it(contrasts):
    """The gated region, from NiMARE's main effects and difference: outside it dmeta's
    p = 1 and z = 0, inside it z has the gate's direction; the thresholded contrast stays
    inside (its p-values are Monte Carlo estimates, each tool with its own relabellings)."""
    ours, theirs = contrasts
    diff = np.asarray(theirs.maps["stat_desc-group1MinusGroup2"])
    up = (np.asarray(theirs.maps["z_desc-group1MainEffect"]) > 0) & (diff > 0)
    down = (np.asarray(theirs.maps["z_desc-group2MainEffect"]) > 0) & (diff < 0)
    p = ours.get_map("p_desc-group1MinusGroup2", "array")
    z = ours.get_map("z_desc-group1MinusGroup2", "array")
    assert up.any() and down.any()
    assert (p[~(up | down)] == 1).all() and (z[~(up | down)] == 0).all()
    assert (z[up] >= 0).all() and (z[down] <= 0).all() and (p[up | down] < 1).mean() > 0.9
    contrast = ours.get_map("z_desc-contrast", "array") != 0
    assert contrast.any() and not (contrast & ~(up | down)).any()
    p = ours.get_map("p_desc-contrast", "array")
    assert (p[contrast] <= 0.05).all() and (p[~contrast] == 1).all()
    assert set(ours.tables["contrast_tab-metadata"].columns) == {
        "alpha", "main_estimator", "pairwise_estimator", "corrector"}


def test_contrast_bad_alpha():
    with pytest.raises(InputError, match="alpha must be a number in"):
        dmeta.ContrastWorkflow(alpha=1.5)


def test_thresholded_main_effect_prefers_cluster_fwe():
    """NiMARE's order: cluster size before mass before voxel level; FWE before FDR; a z map
    is thresholded by its p twin, or its logp twin (>= -log10 alpha)."""
    from dmeta.space import Space
    from dmeta.workflows import thresholded_main_effect

    space = Space(np.ones((2, 2, 1), bool), np.eye(4))
    z = np.array([3.0, 2.0, 1.0, 0.5], np.float32)
    maps = {"z": z,
            "z_desc-size_level-cluster_corr-FWE_method-montecarlo": z,
            "logp_desc-size_level-cluster_corr-FWE_method-montecarlo": np.array(
                [3, 1.5, 1.0, 0], np.float32),
            "z_corr-FDR_method-indep": z * 2,
            "p_corr-FDR_method-indep": np.array([0.01, 0.01, 0.01, 0.01], np.float32)}
    gate = thresholded_main_effect(dmeta.MetaResult(maps, space), 0.05)
    np.testing.assert_array_equal(gate, [3.0, 2.0, 0.0, 0.0])
