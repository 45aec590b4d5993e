"""Tests for dmeta.results: MetaResult behaviour and its Zarr / NIfTI round trips."""

import json
import os
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dmeta.errors import InputError
from dmeta.results import MetaResult, open_result
from dmeta.results import store as results


@pytest.fixture
def result(toy_space, rng):
    n = toy_space.n_voxels
    maps = {
        "stat": rng.random(n),
        "z": rng.standard_normal(n).astype(np.float32),
        "p": rng.random(n),
        "count": rng.integers(0, 5, n).astype(np.int32),
    }
    clusters = pd.DataFrame(
        {
            "Cluster ID": ["PositiveTail 1", "PositiveTail 2"],
            "X": [-42.0, 36.0],
            "Peak Stat": [5.1, np.nan],
        }
    )
    counts = pd.DataFrame(
        {"PositiveTail 1": [1.0, 0.25], "label": ["a", None]},
        index=pd.Index(["study1-1", "study2-1"], name="id"),
    )
    return MetaResult(
        maps,
        toy_space,
        tables={"z_tab-clust": clusters, "z_diag-Jackknife_tab-counts": counts},
        description="An ALE (Eickhoff et al., 2012) was run.",
        nulls={"max_stat": rng.random(50), "max_size": rng.integers(0, 40, 50)},
        attrs={"estimator": {"kernel_fwhm": None, "n_iters": 50}, "seed": 7},
    )


def assert_results_equal(got: MetaResult, expected: MetaResult):
    assert got.space == expected.space
    assert list(got.maps) == list(expected.maps)
    for name in expected.maps:
        a, b = got.get_map(name, "array"), expected.get_map(name, "array")
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    xr.testing.assert_identical(got.maps, expected.maps)
    assert list(got.tables) == list(expected.tables)
    for name, table in expected.tables.items():
        pd.testing.assert_frame_equal(got.tables[name], table)
    if expected.nulls is None:
        assert got.nulls is None
    else:
        xr.testing.assert_identical(got.nulls, expected.nulls)
    assert got.description == expected.description
    assert got.attrs == expected.attrs


def store_paths(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- in-memory behaviour --------------------------------------------------------------------


def test_maps_behave_like_nimare_dict(result):
    assert "z" in result.maps and "nope" not in result.maps
    assert list(result.maps) == ["stat", "z", "p", "count"]
    assert result.maps["z"].dims == ("voxel",)


def test_get_map_array_and_image_agree(result, toy_space):
    values = result.get_map("z", return_type="array")
    assert isinstance(values, np.ndarray) and values.dtype == np.float32
    img = result.get_map("z")
    assert isinstance(img, nib.Nifti1Image)
    assert img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(img.affine, toy_space.affine)
    np.testing.assert_array_equal(toy_space.from_image(img), values)
    assert np.all(img.get_fdata()[~toy_space.mask] == 0)


def test_get_map_errors(result):
    with pytest.raises(KeyError, match="Did you mean: stat"):
        result.get_map("stats")
    with pytest.raises(KeyError, match="Available maps: stat, z, p, count"):
        result.get_map("unrelated")
    with pytest.raises(ValueError, match="return_type"):
        result.get_map("z", return_type="vector")


def test_maps_accept_dataset_and_images(toy_space, rng):
    values = rng.random(toy_space.n_voxels)
    from_dataset = MetaResult(xr.Dataset({"a": ("voxel", values)}), toy_space)
    from_image = MetaResult({"a": toy_space.to_image(values)}, toy_space)
    np.testing.assert_array_equal(from_dataset.get_map("a", "array"), values)
    np.testing.assert_array_equal(from_image.get_map("a", "array"), values.astype(np.float32))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"maps": {"z": np.zeros(3)}}, "in-mask values"),
        ({"maps": {"a/b": None}}, "invalid map name"),
        ({"maps": {"voxel": None}}, "invalid map name"),
        ({"maps": [1, 2]}, "dict or an xarray.Dataset"),
        ({"maps": {}, "tables": {"t": [1, 2]}}, "pandas DataFrame"),
        ({"maps": {}, "nulls": xr.Dataset({"m": ("x", [1.0])})}, "iteration"),
    ],
)
def test_invalid_inputs_are_refused(toy_space, kwargs, match):
    with pytest.raises(InputError, match=match):
        MetaResult(space=toy_space, **kwargs)


def test_space_must_be_a_space():
    with pytest.raises(InputError, match="Space"):
        MetaResult({}, space="mask.nii.gz")


def test_copy_is_independent(result, toy_space):
    clone = result.copy()
    clone.add_maps({"new": np.ones(toy_space.n_voxels)})
    clone.add_tables({"extra": pd.DataFrame({"a": [1]})})
    clone.maps["z"].values[0] = 99
    clone.tables["z_tab-clust"].loc[0, "X"] = 0.0
    clone.nulls["max_stat"].values[0] = -1
    clone.attrs["estimator"]["n_iters"] = 1
    assert "new" not in result.maps and "extra" not in result.tables
    assert result.maps["z"].values[0] != 99
    assert result.tables["z_tab-clust"].loc[0, "X"] == -42.0
    assert result.nulls["max_stat"].values[0] != -1
    assert result.attrs["estimator"]["n_iters"] == 50


def test_constructor_does_not_mutate_caller_dataset(toy_space):
    dataset = xr.Dataset({"a": ("voxel", np.zeros(toy_space.n_voxels))})
    MetaResult(dataset, toy_space).add_maps({"b": np.ones(toy_space.n_voxels)})
    assert list(dataset) == ["a"]


def test_add_maps_replaces_and_validates(result, toy_space):
    result.add_maps({"z": np.zeros(toy_space.n_voxels)})
    assert not result.get_map("z", "array").any()
    with pytest.raises(InputError):
        result.add_maps({"bad": np.zeros(2)})


# -- Zarr round trip -------------------------------------------------------------------------


def test_zarr_round_trip(result, tmp_path):
    path = tmp_path / "run.zarr"
    assert result.to_zarr(path) == path
    assert_results_equal(open_result(path), result)
    assert store_paths(tmp_path) == ["run.zarr"]


def test_zarr_round_trip_mni_space(space, rng, tmp_path):
    original = MetaResult({"z": rng.standard_normal(space.n_voxels)}, space)
    original.to_zarr(tmp_path / "mni.zarr")
    assert_results_equal(open_result(tmp_path / "mni.zarr"), original)


def test_zarr_layout(result, tmp_path):
    path = result.to_zarr(tmp_path / "run.zarr")
    root = zarr.open_group(path, mode="r")
    assert sorted(root.group_keys()) == ["maps", "nulls", "space", "tables"]
    assert root.attrs["dmeta"]["kind"] == "result"
    assert root.attrs["dmeta"]["space_fingerprint"] == result.space.fingerprint()
    assert root["space"]["mask"].dtype == np.uint8
    np.testing.assert_array_equal(root["space"].attrs["affine"], result.space.affine)
    maps = xr.open_zarr(path, group="maps", consolidated=False)
    np.testing.assert_array_equal(maps["p"].values, result.get_map("p", "array"))


def test_numpy_attrs_are_stored_as_json(toy_space, tmp_path):
    original = MetaResult({}, toy_space, attrs={"seed": np.int64(3), "fwhm": np.array([1.5, 2.0])})
    original.to_zarr(tmp_path / "a.zarr")
    assert open_result(tmp_path / "a.zarr").attrs == {"seed": 3, "fwhm": [1.5, 2.0]}
    with pytest.raises(TypeError, match="JSON-serialisable"):
        MetaResult({}, toy_space, attrs={"x": object()}).to_zarr(tmp_path / "b.zarr")


def test_unstorable_table_is_refused(toy_space, tmp_path):
    mixed = pd.DataFrame({"a": pd.Series([1, object()], dtype=object)})
    with pytest.raises(InputError, match="table 'mixed' cannot be stored"):
        MetaResult({}, toy_space, tables={"mixed": mixed}).to_zarr(tmp_path / "t.zarr")
    assert store_paths(tmp_path) == []


MAP_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.uint8, np.bool_]

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=1, max_size=12)
names = names.filter(lambda s: not s.startswith("__") and s != "voxel")
short_text = st.text(max_size=8)

# Cell strategies and the dtype a column of them gets, one per kind of table column.
COLUMN_KINDS = {
    "int": (st.integers(-(2**62), 2**62), "int64"),
    "float": (st.floats(), "float64"),
    "str": (st.none() | short_text, "str"),
    "bool": (st.booleans(), "bool"),
    "object": (st.none() | st.just(np.nan) | short_text, "object"),
    "category": (st.sampled_from("abc"), pd.CategoricalDtype(["a", "b", "c"])),
}


@st.composite
def maps_strategy(draw, n_voxels):
    chosen = draw(st.lists(names, max_size=4, unique=True))
    return {name: draw(arrays(draw(st.sampled_from(MAP_DTYPES)), n_voxels)) for name in chosen}


@st.composite
def index_strategy(draw, n_rows):
    kind = draw(st.sampled_from(["range", "str", "int"]))
    if kind == "range":
        return pd.RangeIndex(n_rows)
    cells = short_text if kind == "str" else st.integers(-5, 5)
    values = draw(st.lists(cells, min_size=n_rows, max_size=n_rows))
    dtype = "str" if kind == "str" else "int64"
    return pd.Index(values, dtype=dtype, name=draw(st.none() | names))


@st.composite
def table_strategy(draw):
    n_rows = draw(st.integers(0, 6))
    index = draw(index_strategy(n_rows))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_KINDS)), max_size=4))
    columns = {}
    for position, kind in enumerate(kinds):
        cells, dtype = COLUMN_KINDS[kind]
        values = draw(st.lists(cells, min_size=n_rows, max_size=n_rows))
        columns[f"c{position}_{kind}"] = pd.Series(values, index=index, dtype=dtype)
    return pd.DataFrame(columns, index=index)


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda kids: st.lists(kids, max_size=3)
    | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_zarr_round_trip_is_lossless_for_random_content(toy_space, data):
    nulls = st.dictionaries(names, arrays(st.sampled_from([np.float64, np.int64]), 5), max_size=2)
    original = MetaResult(
        data.draw(maps_strategy(toy_space.n_voxels)),
        toy_space,
        tables=data.draw(st.dictionaries(names, table_strategy(), max_size=3)),
        description=data.draw(st.text(max_size=30)),
        nulls=data.draw(st.none() | nulls),
        attrs=data.draw(st.dictionaries(st.text(max_size=5), json_values, max_size=4)),
    )
    with tempfile.TemporaryDirectory() as tmp:
        original.to_zarr(Path(tmp) / "r.zarr")
        assert_results_equal(open_result(Path(tmp) / "r.zarr"), original)


# -- replacing stores safely -------------------------------------------------------------------


def test_existing_result_is_replaced(result, toy_space, tmp_path):
    path = tmp_path / "run.zarr"
    result.to_zarr(path)
    other = MetaResult({"only": np.zeros(toy_space.n_voxels)}, toy_space)
    other.to_zarr(path)
    assert_results_equal(open_result(path), other)
    assert store_paths(tmp_path) == ["run.zarr"]


def test_result_can_be_rewritten_to_the_store_it_came_from(result, tmp_path):
    path = result.to_zarr(tmp_path / "run.zarr")
    reopened = open_result(path)
    reopened.add_maps({"extra": reopened.get_map("p", "array") * 2})
    reopened.to_zarr(path)
    assert "extra" in open_result(path).maps


def write_montecarlo(path: Path, with_marker: bool):
    root = zarr.open_group(path, mode="a", zarr_format=3)
    if with_marker:
        root.attrs["dmeta"] = {"kind": "montecarlo"}
    group = root.create_group("montecarlo")
    group.create_array("max_stat", data=np.arange(10.0))
    group.attrs["seed"] = 3


@pytest.mark.parametrize("with_marker", [True, False])
def test_montecarlo_group_is_preserved_on_replace(result, tmp_path, with_marker):
    path = tmp_path / "run.zarr"
    write_montecarlo(path, with_marker)
    result.to_zarr(path)
    result.to_zarr(path)
    group = zarr.open_group(path, mode="r")["montecarlo"]
    np.testing.assert_array_equal(group["max_stat"][...], np.arange(10.0))
    assert group.attrs["seed"] == 3
    assert_results_equal(open_result(path), result)


def test_empty_directory_is_replaced(result, tmp_path):
    path = tmp_path / "run.zarr"
    path.mkdir()
    result.to_zarr(path)
    assert_results_equal(open_result(path), result)


def test_non_dmeta_paths_are_refused(result, tmp_path):
    folder = tmp_path / "analysis"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    plain_file = tmp_path / "file.zarr"
    plain_file.write_text("keep me")
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(foreign, mode="w", zarr_format=3).create_array("x", data=np.arange(3))
    for path in (folder, plain_file, foreign):
        with pytest.raises(InputError, match="not a dmeta Zarr store"):
            result.to_zarr(path)
    assert (folder / "notes.txt").read_text() == "keep me"
    assert plain_file.read_text() == "keep me"
    assert store_paths(tmp_path) == ["analysis", "file.zarr", "foreign.zarr"]


def test_failed_write_leaves_old_store_intact(result, toy_space, tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    result.to_zarr(path)

    def fail(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(results, "_write_tables", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        MetaResult({"x": np.zeros(toy_space.n_voxels)}, toy_space).to_zarr(path)
    assert_results_equal(open_result(path), result)
    assert store_paths(tmp_path) == ["run.zarr"]


def test_failed_swap_restores_old_store(result, toy_space, tmp_path, monkeypatch):
    path = tmp_path / "run.zarr"
    result.to_zarr(path)
    real_rename = os.rename

    def rename(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError("interrupted")
        real_rename(src, dst)

    monkeypatch.setattr(results.os, "rename", rename)
    with pytest.raises(OSError, match="interrupted"):
        MetaResult({"x": np.zeros(toy_space.n_voxels)}, toy_space).to_zarr(path)
    monkeypatch.undo()
    assert_results_equal(open_result(path), result)
    assert store_paths(tmp_path) == ["run.zarr"]


# -- opening ----------------------------------------------------------------------------------


def test_open_result_refuses_non_stores(tmp_path):
    (tmp_path / "plain").mkdir()
    for path in (tmp_path / "missing.zarr", tmp_path / "plain"):
        with pytest.raises(InputError, match="not a dmeta result"):
            open_result(path)


def test_open_result_explains_montecarlo_only_store(tmp_path):
    write_montecarlo(tmp_path / "run.zarr", with_marker=True)
    with pytest.raises(InputError, match="Monte Carlo nulls but no result"):
        open_result(tmp_path / "run.zarr")


def test_open_result_refuses_newer_format(result, tmp_path):
    path = result.to_zarr(tmp_path / "run.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["dmeta"]["format_version"] = results.FORMAT_VERSION + 1
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="newer"):
        open_result(path)


# -- NIfTI / TSV export ------------------------------------------------------------------------


def test_save_nifti_files_load_back_equal(result, tmp_path):
    out = tmp_path / "nested" / "out"
    written = result.save_nifti(out)
    assert sorted(p.name for p in written) == sorted(
        [f"{name}.nii.gz" for name in result.maps] + [f"{name}.tsv" for name in result.tables]
    )
    for name in result.maps:
        loaded = nib.load(out / f"{name}.nii.gz")
        np.testing.assert_array_equal(loaded.affine, result.space.affine)
        np.testing.assert_array_equal(loaded.get_fdata(), result.get_map(name).get_fdata())
    clusters = pd.read_csv(out / "z_tab-clust.tsv", sep="\t")
    pd.testing.assert_frame_equal(clusters, result.tables["z_tab-clust"])
    counts = pd.read_csv(out / "z_diag-Jackknife_tab-counts.tsv", sep="\t", index_col="id")
    pd.testing.assert_frame_equal(counts, result.tables["z_diag-Jackknife_tab-counts"])


def test_cluster_table_with_mixed_value_types_round_trips(space, tmp_path):
    """Cluster tables mix ids 1 and "1a" and sizes 848 and "" in one column (as NiMARE's)."""
    from dmeta.results import MetaResult, open_result

    table = pd.DataFrame({
        "Cluster ID": [1, "1a", 2],
        "X": [1.0, 2.0, 3.0],
        "Cluster Size (mm3)": [848, "", 16],
    })
    result = MetaResult({"z": np.zeros(space.n_voxels, dtype=np.float32)}, space=space,
                        tables={"z_tab-clust": table})
    back = open_result(result.to_zarr(tmp_path / "r.zarr")).tables["z_tab-clust"]
    pd.testing.assert_frame_equal(back, table)
    assert [type(v) for v in back["Cluster ID"]] == [int, str, int]


def test_copy_keeps_the_fitted_estimator_and_a_stored_result_has_none(toy_space, tmp_path):
    fitted = object()
    result = MetaResult({"z": np.zeros(toy_space.n_voxels)}, toy_space)
    result.estimator = fitted
    assert result.copy().estimator is fitted
    assert open_result(result.to_zarr(tmp_path / "r.zarr")).estimator is None
