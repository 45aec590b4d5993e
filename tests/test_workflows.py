"""Workflows: the reference example's arguments, NiMARE's corrected-map and table names."""

import warnings

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta.errors import InputError
from test_subtraction import _cset


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
    return _cset(toy_space, rng, 6, "a", "g1.txt"), _cset(toy_space, rng, 5, "b", "g2.txt")


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
