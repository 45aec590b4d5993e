"""The HTML summary Jupyter shows for a result (``MetaResult._repr_html_``).

It must say what the result holds (maps, significant and stable voxel counts, tables,
nulls, corrections) for a fresh result and one read back from Zarr, count significant
voxels at the levels the HTML report uses, and escape every name and text it takes from
the result.
"""

import numpy as np
import pandas as pd
import pytest

import dmeta
from dmeta.reporting.contents import survey
from dmeta.results import MetaResult, open_result, thresholds
from dmeta.results.thresholds import CORRECTED_ALPHA, UNCORRECTED_ALPHA

CLUSTER_Z = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


@pytest.fixture(scope="module")
def fwe_result(client, knowledge_ale):
    return dmeta.FWECorrector(n_iters=20, seed=1).transform(knowledge_ale)


def _count(result, name, alpha):
    """The count cell of a one-tailed z map: voxels whose logp twin says p < alpha."""
    logp = result.get_map("logp" + name[1:], return_type="array")
    return f"{int((logp > -np.log10(alpha)).sum()):,} voxels p&nbsp;&lt;&nbsp;{alpha:g}</td>"


def test_ale_result(knowledge_ale):
    html = knowledge_ale._repr_html_()
    assert html.count('class="dmeta-result"') == 1
    assert "MetaResult: ALE" in html and "null_method=approximate" in html
    for name in ("stat", "p", "z", "logp", "analyses", "outside_mask"):
        assert f"<code>{name}</code>" in html
    assert _count(knowledge_ale, "z", UNCORRECTED_ALPHA) in html
    assert "21 rows &times; 3 columns" in html  # the analyses table's shape
    assert "Null distribution" not in html and "Corrections" not in html
    assert "data:image/png;base64," in html


def test_fwe_result_and_its_zarr_copy(fwe_result, tmp_path):
    fwe_result.to_zarr(tmp_path / "run.zarr")
    for result in (fwe_result, open_result(tmp_path / "run.zarr")):
        html = result._repr_html_()
        for name in fwe_result.maps.data_vars:
            assert f"<code>{name}</code>" in html
        assert _count(result, CLUSTER_Z, CORRECTED_ALPHA) in html
        assert "<code>corr-FWE_method-montecarlo</code>" in html and "n_iters=20" in html
        assert "Null distribution: 20 iterations" in html
        p95 = np.percentile(result.nulls["max_cluster_size"].values, 95)
        assert f"<code>max_cluster_size</code></td><td class='dmeta-num'>{p95:.4g}" in html


def test_text_from_the_result_is_escaped(knowledge_ale):
    result = knowledge_ale.copy()
    result.description = "ALE <script>alert('x')</script> & more"
    result.add_tables({"a<b&c_tab-clust": result.tables["analyses"].rename(columns={
        "n_foci": "<i>foci</i>"})})
    html = result._repr_html_()
    assert "<script>" not in html and "<i>" not in html
    assert "ALE &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "<code>a&lt;b&amp;c_tab-clust</code>" in html
    assert "&lt;i&gt;foci&lt;/i&gt;" in html  # a cluster-like table's first rows are shown


def test_subtraction_maps_count_both_tails(toy_space):
    z = np.zeros(toy_space.n_voxels)
    z[:3], z[3:5] = 4.0, -4.0
    fdr = "desc-group1MinusGroup2_corr-FDR_method-indep"
    maps = {f"{kind}_desc-group1MinusGroup2": z for kind in ("stat", "z")}
    maps |= {f"z_{fdr}": z, f"logp_{fdr}": np.abs(z) / 2}  # two-sided p = 1e-2 where |z| = 4
    html = MetaResult(maps, toy_space, attrs={"estimator": "ALESubtraction"})._repr_html_()
    assert "MetaResult: ALESubtraction" in html and "desc-group1MinusGroup2</td>" in html
    # No logp twin: |z| > Phi^-1(1 - 0.001) = 3.09, in either direction.
    assert ("5 voxels |z|&nbsp;&gt;&nbsp;3.09 (3 z&nbsp;&gt;&nbsp;0, 2 z&nbsp;&lt;&nbsp;0)"
            in html)
    # The logp twin of a two-sided test: both tails, at the corrected level.
    assert (f"<code>z_{fdr}</code></td><td>5 voxels p&nbsp;&lt;&nbsp;0.05 (3 z&nbsp;&gt;&nbsp;0, "
            "2 z&nbsp;&lt;&nbsp;0)</td>") in html


def test_display_and_report_share_their_levels(knowledge_ale, monkeypatch):
    monkeypatch.setattr(thresholds, "UNCORRECTED_ALPHA", 0.01)
    assert [(z.name, z.alpha) for z in survey(knowledge_ale).z_maps] == [("z", 0.01)]
    assert _count(knowledge_ale, "z", 0.01) in knowledge_ale._repr_html_()


def test_stability_maps_show_stable_voxels_and_a_histogram(toy_space):
    stability = np.zeros(toy_space.n_voxels)
    stability[:4], stability[4:6], stability[6] = 1.0, 0.5, 0.25
    name = f"{CLUSTER_Z}_diag-ResampledStability"
    summary = f"{name}_tab-summary"
    result = MetaResult({name: stability}, toy_space, tables={summary: pd.DataFrame(
        {"resampling_policy": ["leave_1_out"], "n_resamples": [21]})})
    html = result._repr_html_()
    assert (f"<code>{name}</code></td><td>stable voxels: 7 (&gt;0), 6 (&gt;=0.5), "
            "4 (&gt;=0.8); mean non-zero 0.75</td>") in html
    assert "leave_1_out" in html  # the summary table's first rows
    assert html.count("data:image/png;base64,") == 1  # no z map: the stability thumbnail
