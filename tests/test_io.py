"""Tests for the coordinate readers, CoordinateSet and the bundled example data."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import dmeta.datasets
from dmeta.coordinates import CoordinateSet
from dmeta.datasets import default_mask_path, example_path, load_example
from dmeta.errors import InputError
from dmeta.io import (
    load,
    read_nimare_json,
    read_parquet_studyset,
    read_sleuth,
    read_studyset_json,
    tal2mni,
)

DATA = Path(dmeta.datasets.__file__).parent / "data"
KNOWLEDGE = DATA / "semantic_knowledge_children.txt"
RELATEDNESS = DATA / "semantic_relatedness_children.txt"
PAIN_STUDYSET = DATA / "nidm_pain_studyset.json"
PAIN_DSET = DATA / "nidm_pain_dset.json"
PARQUET = DATA / "neurostore_parquet_studyset"


# --------------------------------------------------------------------------- helpers
def _write(tmp_path, name, text, newline="\n"):
    path = tmp_path / name
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def _sleuth(*experiments, reference="// Reference=MNI"):
    return "\n".join([reference, *experiments]) + "\n"


def _nimads(studies):
    return json.dumps({"id": "test", "name": "", "studies": studies})


def _point(x, y, z, space="MNI"):
    return {"space": space, "coordinates": [x, y, z]}


def _assert_error(excinfo, *fragments):
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def _assert_same_as_nimare(cset, ids, coordinates, sizes):
    """Compare ids, sample sizes and per-analysis foci (as sets of rows, 1e-6 mm)."""
    ids = [str(i) for i in ids]
    assert sorted(cset.ids) == sorted(ids)
    assert len(cset.ids) == len(ids)
    expected_sizes = pd.Series(np.asarray(sizes, dtype=float), index=ids)
    np.testing.assert_array_equal(
        cset.sample_sizes.loc[ids].to_numpy(), expected_sizes.loc[ids].to_numpy()
    )
    foci = cset.foci
    assert len(foci) == len(coordinates)
    for analysis_id in ids:
        ours = foci.loc[foci["id"] == analysis_id, ["x", "y", "z"]].to_numpy()
        theirs = coordinates.loc[coordinates["id"] == analysis_id, ["x", "y", "z"]]
        theirs = theirs.to_numpy(dtype=float)
        ours, theirs = (a[np.lexsort(a.T[::-1])] for a in (ours, theirs))
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- NiMARE parity
def _nimare_sleuth(path):
    from nimare.io import convert_sleuth_to_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dset = convert_sleuth_to_dataset(str(path))
    sizes = dset.metadata.set_index("id")["sample_sizes"].apply(np.mean)
    return dset.ids, dset.coordinates, sizes.loc[dset.ids]


def _nimare_studyset(path):
    from nimare.studyset import Studyset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        studyset = Studyset(str(path), target="mni152_2mm")
        return studyset.ids, studyset.coordinates, studyset.sample_sizes()


@pytest.mark.parametrize("path", [KNOWLEDGE, RELATEDNESS])
def test_sleuth_matches_nimare(path):
    _assert_same_as_nimare(read_sleuth(path), *_nimare_sleuth(path))


def test_sleuth_ids_follow_nimare_naming():
    cset = read_sleuth(KNOWLEDGE)
    assert cset.ids[:3] == [
        "arnoldussen2006nc-analysis_1",
        "arnoldussen2006rm-analysis_1",
        "backes2002-analysis_1",
    ]
    row = cset.analyses.loc["backes2002-analysis_1"]
    assert (row["study_id"], row["analysis_id"], row["sample_size"]) == (
        "backes2002",
        "analysis_1",
        8.0,
    )


def test_talairach_sleuth_matches_nimare(tmp_path):
    text = KNOWLEDGE.read_text().replace("// Reference=MNI", "// Reference=Talairach")
    path = _write(tmp_path, "tal.txt", text)
    cset = read_sleuth(path)
    assert set(cset.foci["space"]) == {"TAL"}
    _assert_same_as_nimare(cset, *_nimare_sleuth(path))
    # the conversion moved the foci
    original = read_sleuth(KNOWLEDGE).foci[["x", "y", "z"]].to_numpy()
    assert np.abs(cset.foci[["x", "y", "z"]].to_numpy() - original).max() > 1


def test_sleuth_experiment_names_match_nimare(tmp_path):
    experiments = [
        "// Smith et al., 2010: faces > houses\n// Subjects=12\n1 2 3",
        "// Jones 2012\n// visual; auditory\n// Subjects=14\n4 5 6\n7 8 9",
        "// NoYear; condition A\n// Subjects=9\n1 1 1",
        "// Journal: Brain; Lee 2001: words\n// Subjects=20\n2 2 2",
        "// Kim 1999\n// Subjects=11\n3 3 3",
        "// Kim 1999 : second\n// Subjects=11\n3 3 4",
    ]
    path = _write(tmp_path, "names.txt", _sleuth(*experiments))
    cset = read_sleuth(path)
    assert cset.ids == [
        "Smith et al., 2010-faces > houses",
        "Jones 2012 visual-auditory",
        "NoYear-condition A",
        "Journal: Brain; Lee 2001-words",
        "Kim 1999-analysis_1",
        "Kim 1999-second",
    ]
    _assert_same_as_nimare(cset, *_nimare_sleuth(path))


def test_nimads_json_matches_nimare():
    cset = read_studyset_json(PAIN_STUDYSET)
    assert cset.ids[0] == "pain_01.nidm-1"
    _assert_same_as_nimare(cset, *_nimare_studyset(PAIN_STUDYSET))


def test_nimads_json_spaces_and_study_level_sizes_match_nimare(tmp_path):
    studies = [
        {
            "id": "s1",
            "metadata": {"sample_size": 30},
            "analyses": [
                {"id": "a", "points": [_point(10, 20, 30, "TAL"), _point(-10, 0, 5, "TAL")]},
                {
                    "id": "b",
                    "metadata": {"sample_sizes": [10, 15]},
                    "points": [_point(1, 2, 3), _point(30, -40, 50, "TAL")],
                },
            ],
        },
        {"id": "s2", "analyses": [{"id": "c", "points": [_point(5, 5, 5)]}]},
    ]
    path = _write(tmp_path, "mixed.json", _nimads(studies))
    cset = read_studyset_json(path)
    np.testing.assert_array_equal(cset.sample_sizes.to_numpy(), [30.0, 12.5, np.nan])
    assert cset.foci["space"].tolist() == ["TAL", "TAL", "MNI", "TAL", "MNI"]
    _assert_same_as_nimare(cset, *_nimare_studyset(path))


def test_nimare_dataset_json_matches_nimare():
    from nimare.dataset import Dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dset = Dataset(str(PAIN_DSET))
    sizes = dset.metadata.set_index("id")["sample_sizes"].apply(np.mean).loc[dset.ids]
    cset = read_nimare_json(PAIN_DSET)
    assert cset.ids[0] == "pain_01.nidm-1"
    _assert_same_as_nimare(cset, dset.ids, dset.coordinates, sizes)


def test_parquet_studyset_matches_nimare():
    cset = read_parquet_studyset(PARQUET)
    assert len(cset) == 8 and len(cset.foci) == 47
    assert set(cset.foci["space"]) == {"TAL", "MNI"}
    assert cset.sample_sizes.isna().all()
    _assert_same_as_nimare(cset, *_nimare_studyset(PARQUET))


def test_parquet_sample_sizes_match_nimare(tmp_path):
    directory = shutil.copytree(PARQUET, tmp_path / "studyset")
    ids = pd.read_parquet(directory / "analyses.parquet")["id"].tolist()
    sample_sizes = [[10, 20], None, [7], None, [12], [9, 11, 13], None, None]
    sample_size = [None, 25.0, None, None, None, None, 40.0, None]
    pd.DataFrame({"id": ids, "sample_sizes": sample_sizes, "sample_size": sample_size}).to_parquet(
        directory / "metadata.parquet"
    )
    cset = read_parquet_studyset(directory)
    expected = [15.0, 25.0, 7.0, np.nan, 12.0, 11.0, 40.0, np.nan]
    np.testing.assert_array_equal(cset.sample_sizes.loc[ids].to_numpy(), expected)
    _assert_same_as_nimare(cset, *_nimare_studyset(directory))


@pytest.mark.parametrize("n", [1, 3, 50])
def test_tal2mni_matches_nimare(n):
    from nimare.utils import tal2mni as nimare_tal2mni

    xyz = np.random.default_rng(n).uniform(-90, 90, size=(n, 3))
    np.testing.assert_allclose(tal2mni(xyz), nimare_tal2mni(xyz), rtol=0, atol=1e-6)


def test_tal2mni_rejects_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        tal2mni(np.zeros((3, 4)))


# --------------------------------------------------------------------------- Sleuth variants
def test_sleuth_line_endings_separators_and_blank_lines(tmp_path):
    reference = read_sleuth(KNOWLEDGE)
    text = KNOWLEDGE.read_text()
    messy = "\n".join(
        "  " + line.replace("\t", "   ") + " \t" if line else "   " for line in text.split("\n")
    )
    path = _write(tmp_path, "messy.txt", messy, newline="\r\n")
    cset = read_sleuth(path)
    assert cset.ids == reference.ids
    pd.testing.assert_frame_equal(
        cset.foci.drop(columns="line"), reference.foci.drop(columns="line")
    )
    pd.testing.assert_series_equal(cset.sample_sizes, reference.sample_sizes)
    assert cset.foci["line"].tolist() == reference.foci["line"].tolist()


def test_sleuth_line_numbers_and_layout(tmp_path):
    path = _write(
        tmp_path,
        "small.txt",
        "// Reference=MNI\n\n// a2001\n// Subjects=10\n1,2,3\n4, 5, 6\n\n\n// b2002\n"
        "// Subjects=12\n7\t8 9\n",
        newline="\r\n",
    )
    cset = read_sleuth(path)
    assert cset.ids == ["a2001-analysis_1", "b2002-analysis_1"]
    assert cset.foci["line"].tolist() == [5, 6, 11]
    assert cset.foci[["x", "y", "z"]].to_numpy().tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert cset.analyses["source"].tolist() == [str(path)] * 2


@pytest.mark.parametrize(
    "reference, space",
    [
        ("// Reference=MNI", "MNI"),
        ("//reference = mni", "MNI"),
        ("// Reference=TAL", "TAL"),
        ("// Reference=talairach", "TAL"),
    ],
)
def test_sleuth_reference_spellings(tmp_path, reference, space):
    path = _write(
        tmp_path, "ref.txt", _sleuth("// a2001\n// Subjects=10\n10 20 30", reference=reference)
    )
    cset = read_sleuth(path)
    assert cset.foci["space"].tolist() == [space]
    expected = tal2mni([[10, 20, 30]]) if space == "TAL" else [[10, 20, 30]]
    np.testing.assert_allclose(cset.foci[["x", "y", "z"]].to_numpy(), expected)


def test_sleuth_bom_and_latin1(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf// Reference=MNI\n// a2001\n// Subjects=10\n1 2 3\n")
    assert read_sleuth(path).ids == ["a2001-analysis_1"]
    path.write_bytes("// Reference=MNI\n// Müller 2001\n// Subjects=10\n1 2 3\n".encode("latin-1"))
    assert read_sleuth(path).ids == ["Müller 2001-analysis_1"]


# --------------------------------------------------------------------------- Sleuth errors
EXP_A = "// a2001\n// Subjects=10\n1 2 3"

SLEUTH_ERRORS = {
    "two numbers": (
        _sleuth("// a2001\n// Subjects=10\n1 2 3\n1 2"),
        ["line 5", "a2001", "3 coordinates"],
    ),
    "four numbers": (_sleuth("// a2001\n// Subjects=10\n1 2 3 4"), ["line 4", "a2001", "found 4"]),
    "missing reference": ("// a2001\n// Subjects=10\n1 2 3\n", ["line 1", "Reference="]),
    "non-numeric": (
        _sleuth("// a2001\n// Subjects=10\n1 2 abc"),
        ["line 4", "a2001", "non-numeric"],
    ),
    "non-finite": (
        _sleuth("// a2001\n// Subjects=10\n1 nan 3"),
        ["line 4", "a2001", "non-finite"],
    ),
    "no foci, then next experiment": (
        _sleuth("// a2001\n// Subjects=10\n", "// b2002\n// Subjects=12\n1 2 3"),
        ["line 3", "a2001", "no foci"],
    ),
    "no foci at end": (
        _sleuth(EXP_A, "", "// b2002\n// Subjects=12"),
        ["line 7", "b2002", "no foci"],
    ),
    "duplicate ids": (
        _sleuth(EXP_A, "", "// a2001\n// Subjects=12\n4 5 6"),
        ["line 6", "a2001-analysis_1", "duplicate", "line 2"],
    ),
    "missing subjects": (_sleuth("// a2001\n1 2 3", EXP_A), ["line 2", "a2001", "Subjects="]),
    "non-numeric subjects": (
        _sleuth("// a2001\n// Subjects=ten\n1 2 3"),
        ["line 3", "a2001", "'ten'"],
    ),
    "empty subjects": (
        _sleuth("// a2001\n// Subjects=\n1 2 3"),
        ["line 3", "a2001", "not a number"],
    ),
    "zero subjects": (_sleuth("// a2001\n// Subjects=0\n1 2 3"), ["line 3", "a2001", "positive"]),
    "fractional subjects": (
        _sleuth("// a2001\n// Subjects=7.5\n1 2 3"),
        ["line 3", "a2001", "whole"],
    ),
    "coordinates before header": (_sleuth("1 2 3", EXP_A), ["line 2", "coordinates before"]),
    "no name": (_sleuth("// Subjects=10\n1 2 3"), ["line 2", "no '// name'"]),
    "concatenated files": (
        _sleuth(EXP_A, "// Reference=MNI\n// b2002\n// Subjects=4\n1 1 1"),
        ["line 5", "Reference="],
    ),
    "only a reference line": (_sleuth(), ["no experiments"]),
    "empty file": ("", ["empty"]),
    "blank file": ("\n  \n\t\n", ["empty"]),
}


@pytest.mark.parametrize("case", list(SLEUTH_ERRORS))
def test_sleuth_errors_name_file_and_line(tmp_path, case):
    text, fragments = SLEUTH_ERRORS[case]
    path = _write(tmp_path, "bad.txt", text)
    with pytest.raises(InputError) as excinfo:
        read_sleuth(path)
    _assert_error(excinfo, str(path), *fragments)
    with pytest.raises(InputError):
        load(path)


def test_missing_file_is_input_error(tmp_path):
    for reader in (read_sleuth, read_studyset_json, read_nimare_json, read_parquet_studyset, load):
        with pytest.raises(InputError) as excinfo:
            reader(tmp_path / "nope.txt")
        _assert_error(excinfo, "nope.txt", "not found")


# --------------------------------------------------------------------------- JSON errors
def _pain_document():
    return json.loads(PAIN_STUDYSET.read_text())


def test_nimads_without_studies(tmp_path):
    path = _write(tmp_path, "nostudies.json", json.dumps({"id": "x"}))
    with pytest.raises(InputError) as excinfo:
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "'studies'")
    with pytest.raises(InputError) as excinfo:
        load(path)
    _assert_error(excinfo, str(path), "'studies'", "contrasts")


@pytest.mark.parametrize(
    "point, fragments",
    [
        ({"space": "MNI"}, ["no coordinates"]),
        ({"space": "MNI", "coordinates": [1, 2]}, ["3 numbers"]),
        ({"space": "MNI", "coordinates": [1, "a", 2]}, ["3 numbers"]),
        ({"space": "MNI", "coordinates": [1, None, 2]}, ["3 numbers"]),
    ],
)
def test_nimads_bad_point(tmp_path, point, fragments):
    document = _pain_document()
    document["studies"][2]["analyses"][0]["points"][1] = point
    path = _write(tmp_path, "badpoint.json", json.dumps(document))
    with pytest.raises(InputError) as excinfo:
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "pain_03.nidm-1", "point 1", *fragments)


def test_nimads_invalid_sample_size(tmp_path):
    document = _pain_document()
    document["studies"][4]["analyses"][0]["metadata"] = {"sample_sizes": ["many"]}
    path = _write(tmp_path, "badsize.json", json.dumps(document))
    with pytest.raises(InputError) as excinfo:
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "pain_05.nidm-1", "sample_sizes", "'many'")


def test_nimads_duplicate_ids(tmp_path):
    document = _pain_document()
    document["studies"][1]["id"] = "pain_01.nidm"
    path = _write(tmp_path, "dup.json", json.dumps(document))
    with pytest.raises(InputError) as excinfo:
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "duplicate", "pain_01.nidm-1", "studies[1].analyses[0]")


def test_nimads_analysis_without_points_is_skipped(tmp_path):
    document = _pain_document()
    document["studies"][0]["analyses"][0]["points"] = []
    path = _write(tmp_path, "nopoints.json", json.dumps(document))
    with pytest.warns(UserWarning, match="pain_01.nidm-1"):
        cset = read_studyset_json(path)
    assert len(cset) == 20 and "pain_01.nidm-1" not in cset.ids


def test_nimads_without_any_points(tmp_path):
    path = _write(
        tmp_path, "empty.json", _nimads([{"id": "s", "analyses": [{"id": "a", "points": []}]}])
    )
    with pytest.raises(InputError) as excinfo, pytest.warns(UserWarning):
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "no analyses with foci")


def test_nimads_missing_ids_get_nimare_positional_ids(tmp_path):
    studies = [
        {"analyses": [{"points": [_point(1, 2, 3)]}, {"id": "x", "points": [_point(4, 5, 6)]}]}
    ]
    path = _write(tmp_path, "noids.json", _nimads(studies))
    assert read_studyset_json(path).ids == ["study-0-analysis-0", "study-0-x"]
    assert read_studyset_json(path).ids == list(_nimare_studyset(path)[0])


# --------------------------------------------------------------------------- spaces
def _other_space_documents(tmp_path):
    """The same three foci, one in an unrecognised space, in each input format."""
    sleuth = _write(tmp_path, "other.txt", "// Reference=OTHER\n// a2001\n// Subjects=10\n1 2 3\n")
    studies = [{"id": "s", "analyses": [
        {"id": "a", "points": [_point(1, 2, 3), _point(4, 5, 6, "OTHER")]},
        {"id": "b", "points": [{"coordinates": [7, 8, 9], "space": None}]},
    ]}]
    nimads = _write(tmp_path, "other.json", _nimads(studies))
    dset = json.loads(PAIN_DSET.read_text())
    _contrast(dset)["coords"]["space"] = "UNKNOWN"
    nimare = _write(tmp_path, "dset.json", json.dumps(dset))
    return sleuth, nimads, nimare


@pytest.mark.parametrize("which", [0, 1, 2])
def test_unknown_spaces_are_kept_untransformed_with_one_counting_warning(tmp_path, which):
    path = _other_space_documents(tmp_path)[which]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cset = load(path)
    messages = [str(w.message) for w in caught if "unrecognised spaces" in str(w.message)]
    assert len(messages) == 1 and "as NiMARE does" in messages[0]
    assert caught[0].filename == __file__  # attributed to the caller, not to dmeta
    unknown = ~cset.foci["space"].isin(["MNI", "TAL"])
    assert f"{unknown.sum()} foci" in messages[0]
    if which == 1:
        assert "1 in OTHER" in messages[0] and "1 in (no label)" in messages[0]
        assert cset.foci["space"].tolist() == ["MNI", "OTHER", ""]
        np.testing.assert_array_equal(cset.foci[["x", "y", "z"]],
                                      [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


def test_unknown_space_drop_and_error(tmp_path):
    sleuth, nimads, _ = _other_space_documents(tmp_path)
    with pytest.warns(UserWarning, match="2 foci in unrecognised spaces are left out"):
        cset = load(nimads, unknown_space="drop")
    assert cset.ids == ["s-a"] and cset.foci["space"].tolist() == ["MNI"]
    with pytest.raises(InputError) as excinfo:
        load(nimads, unknown_space="error")
    _assert_error(excinfo, str(nimads), "unrecognised", "1 in OTHER", "analysis 's-a'")
    with pytest.raises(InputError) as excinfo:
        read_sleuth(sleuth, unknown_space="error")
    _assert_error(excinfo, str(sleuth), "1 in OTHER", "a2001")
    message = "unknown_space must be one of 'keep', 'drop', 'error', got 'ignore'"
    with pytest.raises(InputError, match=message):
        load(nimads, unknown_space="ignore")


@pytest.mark.parametrize("label, space", [
    ("MNI", "MNI"), ("mni152_2mm", "MNI"), ("MNI 152", "MNI"), ("ICBM152", "MNI"),
    ("ale_2mm", "MNI"), ("TAL", "TAL"), ("Talairach", "TAL"), ("talairach-tournoux", "TAL"),
    ("OTHER", None), ("UNKNOWN", None), ("", None), (None, None), (float("nan"), None),
])
def test_recognised_space_labels(label, space):
    from dmeta.io.spaces import parse_space

    assert parse_space(label) == space


def test_unknown_space_parquet_rows(parquet_copy):
    _edit_coordinates(parquet_copy, "space", 20, "OTHER")
    with pytest.warns(UserWarning, match=r"1 foci in unrecognised spaces .*1 in OTHER"):
        cset = read_parquet_studyset(parquet_copy)
    assert (cset.foci["space"] == "OTHER").sum() == 1


def test_invalid_json(tmp_path):
    path = _write(tmp_path, "broken.json", '{"studies": [\n  {"id": 1,}\n]}')
    with pytest.raises(InputError) as excinfo:
        load(path)
    _assert_error(excinfo, str(path), "line 2", "invalid JSON")


def test_empty_json(tmp_path):
    path = _write(tmp_path, "empty.json", "")
    with pytest.raises(InputError) as excinfo:
        read_studyset_json(path)
    _assert_error(excinfo, str(path), "empty")


def _contrast(document):
    return document["pain_02.nidm"]["contrasts"]["1"]


def _drop_contrasts(document):
    del document["pain_02.nidm"]["contrasts"]


def _shorten_x(document):
    _contrast(document)["coords"]["x"].pop()


def _drop_z(document):
    del _contrast(document)["coords"]["z"]


def _text_coordinate(document):
    _contrast(document)["coords"]["y"][3] = "a"


def _negative_size(document):
    _contrast(document)["metadata"]["sample_sizes"] = [-3]


@pytest.mark.parametrize(
    "change, fragments",
    [
        (_drop_contrasts, ["pain_02.nidm", "contrasts"]),
        (_shorten_x, ["pain_02.nidm-1", "lengths"]),
        (_drop_z, ["pain_02.nidm-1", "'z'"]),
        (_text_coordinate, ["pain_02.nidm-1", "focus 3"]),
        (_negative_size, ["pain_02.nidm-1", "-3"]),
    ],
)
def test_nimare_json_errors(tmp_path, change, fragments):
    document = json.loads(PAIN_DSET.read_text())
    change(document)
    path = _write(tmp_path, "dset.json", json.dumps(document))
    with pytest.raises(InputError) as excinfo:
        read_nimare_json(path)
    _assert_error(excinfo, str(path), *fragments)


def test_nimare_json_reader_rejects_nimads(tmp_path):
    with pytest.raises(InputError) as excinfo:
        read_nimare_json(PAIN_STUDYSET)
    _assert_error(excinfo, str(PAIN_STUDYSET), "study 'id'")


# --------------------------------------------------------------------------- parquet errors
@pytest.fixture
def parquet_copy(tmp_path):
    return shutil.copytree(PARQUET, tmp_path / "studyset")


@pytest.mark.parametrize("table", ["coordinates", "analyses"])
def test_parquet_missing_table(parquet_copy, table):
    (parquet_copy / f"{table}.parquet").unlink()
    with pytest.raises(InputError) as excinfo:
        read_parquet_studyset(parquet_copy)
    _assert_error(excinfo, str(parquet_copy), f"missing {table}.parquet")


def _edit_coordinates(directory, column, row, value):
    """Set one cell of coordinates.parquet; return the edited table."""
    path = directory / "coordinates.parquet"
    table = pd.read_parquet(path)
    table[column] = table[column].astype(object)
    table.loc[row, column] = value
    table.to_parquet(path)
    return table


def test_parquet_missing_column(parquet_copy):
    path = parquet_copy / "coordinates.parquet"
    pd.read_parquet(path).drop(columns="z").to_parquet(path)
    with pytest.raises(InputError) as excinfo:
        read_parquet_studyset(parquet_copy)
    _assert_error(excinfo, str(parquet_copy), "coordinates.parquet", "lacks column(s) z")


@pytest.mark.parametrize(
    "column, value, fragments",
    [
        ("y", None, ["row 20", "'22iyhNgni5Du-hzpLkdj5mGWX'", "no coordinates"]),
        ("id", "ghost-1", ["row 20", "'ghost-1'", "not in analyses.parquet"]),
    ],
)
def test_parquet_bad_coordinate_row(parquet_copy, column, value, fragments):
    _edit_coordinates(parquet_copy, column, 20, value)
    with pytest.raises(InputError) as excinfo:
        read_parquet_studyset(parquet_copy)
    _assert_error(excinfo, str(parquet_copy), *fragments)


def test_parquet_unreadable_table(parquet_copy):
    (parquet_copy / "analyses.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError) as excinfo:
        read_parquet_studyset(parquet_copy)
    _assert_error(excinfo, str(parquet_copy), "cannot read analyses.parquet")


def test_parquet_path_is_a_file():
    with pytest.raises(InputError) as excinfo:
        read_parquet_studyset(KNOWLEDGE)
    _assert_error(excinfo, str(KNOWLEDGE), "directory")


def test_parquet_manifest_table_names(parquet_copy):
    (parquet_copy / "coordinates.parquet").rename(parquet_copy / "foci.parquet")
    manifest = json.loads((parquet_copy / "studyset.json").read_text())
    manifest["tables"]["coordinates"] = "foci.parquet"
    (parquet_copy / "studyset.json").write_text(json.dumps(manifest))
    assert len(read_parquet_studyset(parquet_copy).foci) == 47


# --------------------------------------------------------------------------- load()
def test_load_detects_formats(tmp_path):
    assert load(KNOWLEDGE).ids == read_sleuth(KNOWLEDGE).ids
    assert load(str(PAIN_STUDYSET)).ids == read_studyset_json(PAIN_STUDYSET).ids
    assert load(PAIN_DSET).ids == read_nimare_json(PAIN_DSET).ids
    assert load(PARQUET).ids == read_parquet_studyset(PARQUET).ids
    other_suffix = _write(tmp_path, "knowledge.sleuth", KNOWLEDGE.read_text())
    assert load(other_suffix).ids == read_sleuth(KNOWLEDGE).ids


def test_load_rejects_unknown_inputs(tmp_path):
    csv = _write(tmp_path, "foci.csv", "x,y,z\n1,2,3\n")
    with pytest.raises(InputError) as excinfo:
        load(csv)
    _assert_error(excinfo, str(csv), "unknown format")
    with pytest.raises(InputError) as excinfo:
        load(tmp_path)
    _assert_error(excinfo, str(tmp_path), "studyset.json")
    neither = _write(tmp_path, "list.json", "[1, 2]")
    with pytest.raises(InputError) as excinfo:
        load(neither)
    _assert_error(excinfo, str(neither), "neither")


# --------------------------------------------------------------------------- CoordinateSet
@pytest.fixture
def knowledge():
    return read_sleuth(KNOWLEDGE)


def test_coordinate_set_contract(knowledge):
    analyses, foci = knowledge.analyses, knowledge.foci
    assert analyses.index.name == "id"
    assert list(analyses.columns) == ["study_id", "analysis_id", "sample_size", "source"]
    assert analyses["sample_size"].dtype == np.float64
    assert list(foci.columns) == ["id", "x", "y", "z", "space", "line"]
    assert isinstance(foci.index, pd.RangeIndex)
    assert all(foci[axis].dtype == np.float64 for axis in "xyz")
    assert foci["line"].dtype == "Int64"
    assert len(knowledge) == 21 and len(foci) == 262
    assert knowledge.ids == analyses.index.tolist()
    assert knowledge.source == str(KNOWLEDGE)
    assert knowledge.sample_sizes.index.tolist() == knowledge.ids
    assert repr(knowledge) == f"CoordinateSet(21 analyses, 262 foci, source='{KNOWLEDGE}')"
    # foci grouped by analysis, in analysis order
    first_rows = foci.drop_duplicates("id")
    assert first_rows["id"].tolist() == knowledge.ids
    assert first_rows.index.is_monotonic_increasing


def test_non_text_formats_have_no_line_numbers():
    assert read_studyset_json(PAIN_STUDYSET).foci["line"].isna().all()


def test_select(knowledge):
    ids = ["wu2016-analysis_1", "backes2002-analysis_1"]
    subset = knowledge.select(ids)
    assert subset.ids == ids
    assert subset.foci.drop_duplicates("id")["id"].tolist() == ids
    full = knowledge.foci
    assert len(subset.foci) == full["id"].isin(ids).sum()
    assert subset.sample_sizes.tolist() == [30.0, 8.0]
    assert knowledge.select("wu2016-analysis_1").ids == ["wu2016-analysis_1"]
    assert len(knowledge) == 21


def test_select_unknown_or_repeated_id(knowledge):
    with pytest.raises(InputError) as excinfo:
        knowledge.select(["backes2002-analysis_1", "nobody1999-analysis_1"])
    _assert_error(excinfo, "'nobody1999-analysis_1'", str(KNOWLEDGE))
    with pytest.raises(InputError, match="more than once"):
        knowledge.select(["backes2002-analysis_1", "backes2002-analysis_1"])


def test_tables_are_copies(knowledge):
    foci, analyses = knowledge.foci, knowledge.analyses
    foci.loc[0, "x"] = 999.0
    analyses.loc["backes2002-analysis_1", "sample_size"] = 1.0
    assert knowledge.foci.loc[0, "x"] != 999.0
    assert knowledge.sample_sizes["backes2002-analysis_1"] == 8.0


def _tables():
    analyses = pd.DataFrame(
        {"id": ["s1-a", "s2-a"], "study_id": ["s1", "s2"], "analysis_id": ["a", "a"]}
    )
    foci = pd.DataFrame(
        {"id": ["s2-a", "s1-a", "s2-a"], "x": [1, 2, 3], "y": [0.0] * 3, "z": [0.0] * 3}
    )
    return analyses, foci


def test_constructor_defaults_and_grouping():
    cset = CoordinateSet(*_tables())
    assert cset.source is None
    assert cset.sample_sizes.isna().all()
    assert cset.foci["id"].tolist() == ["s1-a", "s2-a", "s2-a"]
    assert cset.foci["x"].tolist() == [2.0, 1.0, 3.0]
    assert cset.foci["space"].tolist() == ["MNI"] * 3
    assert cset.foci["line"].isna().all()
    assert repr(cset) == "CoordinateSet(2 analyses, 3 foci)"


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda a, f: (a.drop(columns="study_id"), f), "study_id"),
        (lambda a, f: (a, f.drop(columns="z")), "column(s) z"),
        (lambda a, f: (a.assign(id=["s1-a", "s1-a"]), f), "duplicate analysis id 's1-a'"),
        (lambda a, f: (a, f.assign(id=["s2-a", "s3-a", "s2-a"])), "unknown analysis 's3-a'"),
        (lambda a, f: (a, f.assign(id=["s2-a", "s2-a", "s2-a"])), "'s1-a' has no foci"),
        (lambda a, f: (a, f.assign(x=[1, np.nan, 3])), "non-finite"),
        (lambda a, f: (a.assign(sample_size=[10, -1]), f), "positive"),
    ],
)
def test_constructor_validation(edit, fragment):
    analyses, foci = edit(*_tables())
    with pytest.raises(InputError) as excinfo:
        CoordinateSet(analyses, foci, source="here.txt")
    _assert_error(excinfo, "here.txt", fragment)


# --------------------------------------------------------------------------- bundled data
@pytest.mark.parametrize(
    "name, n_analyses, n_foci",
    [("semantic_knowledge", 21, 262), ("semantic_relatedness", 16, 201), ("pain", 21, 267)],
)
def test_load_example(name, n_analyses, n_foci):
    cset = load_example(name)
    assert (len(cset), len(cset.foci)) == (n_analyses, n_foci)
    assert cset.source == str(example_path(name))
    assert not cset.sample_sizes.isna().any()


def test_unknown_example():
    with pytest.raises(InputError) as excinfo:
        load_example("faces")
    _assert_error(excinfo, "'faces'", "semantic_knowledge")


def test_default_mask():
    img = nib.load(default_mask_path())
    assert img.shape == (91, 109, 91)
    assert int((np.asarray(img.dataobj) > 0).sum()) == 228483
    np.testing.assert_allclose(np.diag(img.affine)[:3], [-2, 2, 2])


def test_bundled_files_present():
    names = {p.name for p in DATA.iterdir()}
    assert {
        "PROVENANCE.md",
        "MNI152_2x2x2_brainmask.nii.gz",
        "nidm_pain_dset.json",
        "nidm_pain_studyset.json",
        "semantic_knowledge_children.txt",
        "semantic_relatedness_children.txt",
        "neurostore_parquet_studyset",
    } <= names
    assert (PARQUET / "studyset.json").is_file()
