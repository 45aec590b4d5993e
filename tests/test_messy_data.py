"""Real exports are messy: every usable focus is used as NiMARE uses it, with one readable
warning per kind of problem and the full lists kept as tables."""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.errors import InputError
from dmeta.modeled_activation import OUTSIDE_TABLE
from dmeta.space import Space
from neurostore_export import BEYOND_EDGE, FAR_AWAY, NO_SAMPLE_SIZE, SPACES, VENTRICLES


def _caught(action):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = action()
    return value, [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def export(neurostore_export):
    (cset, messages) = _caught(lambda: dmeta.io.load(neurostore_export))
    return cset, messages


@pytest.fixture(scope="module")
def fitted(export):
    return _caught(lambda: dmeta.ALE(sample_size=20).fit(export[0]))


def test_loading_warns_once_per_kind(export):
    cset, messages = export
    assert len(messages) == 2
    spaces, skipped = messages
    n_unknown = int((~cset.foci["space"].isin(["MNI", "TAL"])).sum())
    assert f"{n_unknown} foci in unrecognised spaces are used as given" in spaces
    assert "in OTHER" in spaces and "in UNKNOWN" in spaces and "in (no label)" in spaces
    assert "imageonly-1" in skipped
    assert (cset.foci["space"] == "TAL").sum() == (cset.foci["id"] == "pain_12.nidm-1").sum()
    assert set(SPACES) and "far-1" in cset.ids and "imageonly-1" not in cset.ids


def test_fit_keeps_every_focus_and_tables_the_outside_ones(export, fitted):
    cset, _ = export
    result, messages = fitted
    outside, left_out = messages
    table = result.tables[OUTSIDE_TABLE]
    assert f"{len(table)} of {len(cset.foci)} foci lie outside the mask" in outside
    assert "and 3" in outside or "more" in outside  # a few examples, not the full list
    assert len(outside) < 600
    assert "far-1" in left_out
    # ventricle foci and foci beyond the edge of the volume are kept, and reach the mask
    analyses = result.tables["analyses"]
    assert analyses.loc["ventricles-1", "n_foci"] == len(VENTRICLES)
    assert analyses.loc["edge-1", "n_foci"] == len(BEYOND_EDGE)
    assert "far-1" not in analyses.index
    assert (~table["in_volume"]).sum() == 2 + len(FAR_AWAY)
    assert {"ventricles-1", "edge-1", "far-1", "pain_01.nidm-1"} <= set(table["id"])
    ma = result.estimator.ma_
    edge = ma.ids.index("edge-1")
    assert ma.matrix[edge].nnz > 0
    assert result.estimator.ma_.foci.counts.sum() == len(cset.foci) - len(FAR_AWAY)


def test_outside_table_survives_zarr(fitted, tmp_path):
    result, _ = fitted
    result.to_zarr(tmp_path / "run.zarr")
    back = dmeta.open_result(tmp_path / "run.zarr")
    assert back.tables[OUTSIDE_TABLE][["id", "x", "y", "z"]].equals(
        result.tables[OUTSIDE_TABLE][["id", "x", "y", "z"]])


def test_missing_sample_sizes_name_the_analyses_and_the_fix(export):
    with pytest.raises(InputError) as excinfo, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dmeta.ALE().fit(export[0])
    message = str(excinfo.value)
    for index in NO_SAMPLE_SIZE:
        assert f"pain_{index + 1:02d}.nidm-1" in message
    assert "--sample-size" in message and "sample_size=" in message


def test_focus_filter_drops_foci_outside_the_mask(export):
    cset, _ = export
    filtered, messages = _caught(lambda: dmeta.FocusFilter().transform(cset))
    mask = Space.from_mask()  # FocusFilter's default, the bundled MNI mask
    inside = mask.in_mask(mask.mm_to_ijk(cset.foci[["x", "y", "z"]].to_numpy()))
    assert len(filtered.foci) == inside.sum()
    assert "far-1" not in filtered.ids and "ventricles-1" not in filtered.ids
    assert len(messages) == 1 and "far-1" in messages[0] and "ventricles-1" in messages[0]
    result, messages = _caught(lambda: dmeta.ALE(sample_size=20).fit(filtered))
    assert OUTSIDE_TABLE not in result.tables and not messages


def test_fewer_than_two_usable_analyses_is_an_error(export):
    cset, _ = export
    with pytest.raises(InputError, match="at least two"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dmeta.ALE(sample_size=20).fit(cset.select(["far-1", "pain_01.nidm-1"]))


def test_monte_carlo_draws_foci_inside_the_mask_for_every_focus(fitted):
    from dmeta.montecarlo import NullPlan

    result, _ = fitted
    plan = NullPlan(result.estimator.ma_, thresh=0.01)
    draws = plan.draws(seed=3, start=0, stop=2)
    assert draws.shape == (2, result.estimator.ma_.foci.counts.sum())
    assert np.all((draws >= 0) & (draws < result.space.n_voxels))


def test_subtraction_uses_the_analyses_each_group_kept(client, export):
    """An analysis left out of group 1 (no kernel reaches the mask) shifts no relabelling."""
    cset, _ = export
    group1 = cset.select(["far-1", *[f"pain_{i:02d}.nidm-1" for i in range(1, 9)]])
    group2 = cset.select([f"pain_{i:02d}.nidm-1" for i in range(9, 17)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dmeta.ALESubtraction(sample_size=20, n_iters=40, seed=1).fit(group1, group2)
    assert "far-1" not in result.tables["analyses_desc-group1"].index
    assert len(result.tables["analyses_desc-group1"]) == 8
    assert "outside_mask_desc-group1" in result.tables
    assert "from 8 experiments (group 1)" in result.description
