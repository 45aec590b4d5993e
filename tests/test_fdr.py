"""FDRCorrector equals NiMARE's FDR maps exactly when given the same uncorrected maps."""

import numpy as np
import pytest

import dmeta
from dmeta.errors import InputError

nimare = pytest.importorskip("nimare")
from nimare.correct import FDRCorrector as NiMAREFDR  # noqa: E402
from nimare.meta.cbma import ALE as NiMAREALE  # noqa: E402
from nimare.results import MetaResult as NiMAREResult  # noqa: E402


def _nimare_fdr(result, method):
    maps = {name: result.get_map(name, "array") for name in result.maps.data_vars}
    theirs = NiMAREResult(NiMAREALE(), mask=result.space.mask_img, maps=maps)
    return NiMAREFDR(method=method, alpha=0.05).transform(theirs)


def _pairwise_like(knowledge_ale):
    """A result with a signed z and subtraction names, from real ALE p values."""
    p = knowledge_ale.get_map("p", "array")
    sign = np.where(np.arange(p.size) % 3 == 0, -1.0, 1.0).astype(np.float32)
    maps = {"p_desc-group1MinusGroup2": p,
            "z_desc-group1MinusGroup2": knowledge_ale.get_map("z", "array") * sign,
            "logp_desc-group1MinusGroup2": knowledge_ale.get_map("logp", "array"),
            "p_desc-group1": p, "z_desc-group1": knowledge_ale.get_map("z", "array")}
    return dmeta.MetaResult(maps, space=knowledge_ale.space)


@pytest.mark.parametrize("method", ["indep", "negcorr"])
@pytest.mark.parametrize("kind", ["ale", "pairwise"])
def test_equals_nimare_exactly(knowledge_ale, method, kind):
    result = knowledge_ale if kind == "ale" else _pairwise_like(knowledge_ale)
    ours = dmeta.FDRCorrector(method=method).transform(result)
    theirs = _nimare_fdr(result, method)
    new = sorted(set(theirs.maps) - set(result.maps.data_vars))
    assert new and set(new) == set(ours.maps.data_vars) - set(result.maps.data_vars)
    for name in new:
        assert name.endswith(f"_corr-FDR_method-{method}")
        np.testing.assert_array_equal(ours.get_map(name, "array"),
                                      np.asarray(theirs.maps[name], dtype=np.float32),
                                      err_msg=name)


def test_names_for_ale(knowledge_ale):
    ours = dmeta.FDRCorrector().transform(knowledge_ale)
    assert {"p_corr-FDR_method-indep", "z_corr-FDR_method-indep",
            "logp_corr-FDR_method-indep"} <= set(ours.maps)
    assert "p_corr-FDR_method-indep" not in knowledge_ale.maps


def test_bad_method(knowledge_ale):
    with pytest.raises(InputError, match="method"):
        dmeta.FDRCorrector(method="bonferroni").transform(knowledge_ale)


def test_records_every_correction_apart_from_the_estimator(knowledge_ale):
    once = dmeta.FDRCorrector(method="indep", alpha=0.01).transform(knowledge_ale)
    twice = dmeta.FDRCorrector(method="negcorr").transform(once)
    assert twice.attrs["corrections"] == {
        "corr-FDR_method-indep": {"name": "FDRCorrector", "method": "indep", "alpha": 0.01},
        "corr-FDR_method-negcorr": {"name": "FDRCorrector", "method": "negcorr", "alpha": 0.05},
    }
    assert twice.attrs["params"] == knowledge_ale.attrs["params"]
    assert "corrections" not in knowledge_ale.attrs and "versions" in twice.attrs
