"""The HTML summary Jupyter shows for a result (``MetaResult._repr_html_``).

It must say what the result holds (maps, suprathreshold voxel counts, tables, nulls,
corrections) for a fresh result and one read back from Zarr, and escape every name and
text it takes from the result.
"""

import numpy as np
import pytest

import dmeta
from dmeta.results import MetaResult, open_result
from dmeta.results.display import CORRECTED_Z, UNCORRECTED_Z

CLUSTER_Z = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


@pytest.fixture(scope="module")
def fwe_result(client, knowledge_ale):
    return dmeta.FWECorrector(n_iters=20, seed=1).transform(knowledge_ale)


def _count(result, name, threshold):
    return f"{int((result.get_map(name, return_type='array') > threshold).sum()):,} voxels z"


def test_ale_result(knowledge_ale):
    html = knowledge_ale._repr_html_()
    assert html.count('class="dmeta-result"') == 1
    assert "MetaResult: ALE" in html and "null_method=approximate" in html
    for name in ("stat", "p", "z", "logp", "analyses", "outside_mask"):
        assert f"<code>{name}</code>" in html
    assert _count(knowledge_ale, "z", UNCORRECTED_Z) in html
    assert "21 rows &times; 3 columns" in html  # the analyses table's shape
    assert "Null distribution" not in html and "Corrections" not in html
    assert "data:image/png;base64," in html


def test_fwe_result_and_its_zarr_copy(fwe_result, tmp_path):
    fwe_result.to_zarr(tmp_path / "run.zarr")
    for result in (fwe_result, open_result(tmp_path / "run.zarr")):
        html = result._repr_html_()
        for name in fwe_result.maps.data_vars:
            assert f"<code>{name}</code>" in html
        assert _count(result, CLUSTER_Z, CORRECTED_Z) in html
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
    maps = {f"{kind}_desc-group1MinusGroup2": z for kind in ("stat", "z")}
    html = MetaResult(maps, toy_space, attrs={"estimator": "ALESubtraction"})._repr_html_()
    assert "MetaResult: ALESubtraction" in html and "desc-group1MinusGroup2</td>" in html
    assert "3 voxels z&nbsp;&gt;&nbsp;3.1, 2 z&nbsp;&lt;&nbsp;&minus;3.1" in html
