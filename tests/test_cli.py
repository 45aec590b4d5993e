"""The command line: a run that lands in a Zarr store, and one-line errors with exit 2."""

import subprocess
import sys

import numpy as np
import pytest

import dmeta
from dmeta.cli import main
from dmeta.datasets import example_path


def _run_ale(tmp_path, *extra):
    out = tmp_path / "run.zarr"
    code = main(["ale", str(example_path("semantic_knowledge")), "--out", str(out),
                 "--n-iters", "20", "--chunk-iters", "5", *extra])
    return code, out


def test_ale_writes_a_result_store_and_nifti(client, tmp_path, capsys):
    code, out = _run_ale(tmp_path, "--seed", "3", "--nifti", str(tmp_path / "maps"))
    assert code == 0
    result = dmeta.open_result(out)
    assert "z_desc-size_level-cluster_corr-FWE_method-montecarlo" in result.maps
    assert result.nulls.sizes["iteration"] == 20
    assert (tmp_path / "maps" / "z_level-voxel_corr-FWE_method-montecarlo.nii.gz").exists()
    assert str(out) in capsys.readouterr().out


def test_rerun_resumes_and_other_seed_is_refused(client, tmp_path, capsys):
    _run_ale(tmp_path, "--seed", "3")
    first = dmeta.open_result(tmp_path / "run.zarr").nulls
    assert _run_ale(tmp_path, "--seed", "3")[0] == 0
    assert dmeta.open_result(tmp_path / "run.zarr").nulls.identical(first)
    capsys.readouterr()
    assert _run_ale(tmp_path, "--seed", "4")[0] == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dmeta: error:") and "other inputs or parameters" in err[-1]
    assert all(line.startswith("dmeta: warning:") for line in err[:-1])


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "not found"),
        ("// Reference=MNI\n// study\n// Subjects=10\n1 2\n", "line 4"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, content, expected):
    path = tmp_path / "bad.txt"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "dmeta.cli", "ale", str(path), "--out", str(tmp_path / "o.zarr")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "bad.txt" in lines[0] and expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_demo_runs_quickly_on_bundled_data(client, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DMETA_QUICK", "1")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 0
    printed = capsys.readouterr().out
    assert str(tmp_path / "demo") in printed
    result = dmeta.open_result(tmp_path / "demo" / "semantic_knowledge.zarr")
    assert np.isfinite(result.get_map("stat", "array")).all()
    subtraction = tmp_path / "demo" / "subtraction"
    assert (subtraction / "z_desc-group1MinusGroup2_corr-FDR_method-indep.nii.gz").exists()
    assert (tmp_path / "demo" / "conjunction.nii.gz").exists()
    assert "minus" in printed and "conjunction" in printed


def test_non_positive_iteration_count_is_bad_input(tmp_path, capsys):
    code = main(["ale", str(example_path("semantic_knowledge")), "--out",
                 str(tmp_path / "run.zarr"), "--n-iters", "0"])
    assert code == 2
    assert "n_iters must be a positive integer" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.strip() == f"dmeta {dmeta.__version__}"


def _ids_file(path, ids):
    path.write_text("# analyses to use\n" + "\n".join(ids) + "\n\n")
    return path


def test_real_export_missing_sample_sizes_say_which_flag(neurostore_export, tmp_path, capsys):
    code = main(["ale", str(neurostore_export), "--out", str(tmp_path / "run.zarr"),
                 "--n-iters", "10"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("dmeta: error:") and "pain_03.nidm-1" in err[-1]
    assert "--sample-size" in err[-1]
    assert all(line.startswith("dmeta: warning:") for line in err[:-1])


def test_real_export_with_sample_size_ids_and_filter(client, neurostore_export, tmp_path,
                                                      capsys):
    ids = ["pain_01.nidm-1", "pain_02.nidm-1", "pain_04.nidm-1", "ventricles-1", "edge-1"]
    out = tmp_path / "run.zarr"
    code = main(["ale", str(neurostore_export), "--out", str(out), "--n-iters", "10",
                 "--sample-size", "20", "--ids", str(_ids_file(tmp_path / "ids.txt", ids))])
    assert code == 0
    result = dmeta.open_result(out)
    assert list(result.tables["analyses"].index) == ids
    assert "outside_mask" in result.tables
    assert "lie outside the mask" in capsys.readouterr().err

    code = main(["ale", str(neurostore_export), "--out", str(tmp_path / "kept.zarr"),
                 "--n-iters", "10", "--kernel-fwhm", "10", "--drop-outside-mask",
                 "--ids", str(tmp_path / "ids.txt")])
    assert code == 0
    result = dmeta.open_result(tmp_path / "kept.zarr")
    assert "outside_mask" not in result.tables
    assert "ventricles-1" not in result.tables["analyses"].index
    assert np.allclose(result.tables["analyses"]["kernel_fwhm"], 10)


@pytest.mark.parametrize("extra, fragments", [
    (["--unknown-space", "error"], ["neurostore_studyset.json", "unrecognised spaces"]),
    (["--ids", "IDS"], ["ids.txt", "unknown analysis id", "'nope-1'"]),
    (["--sample-size", "20", "--kernel-fwhm", "9"], ["not both"]),
])
def test_input_options_bad_input(neurostore_export, tmp_path, capsys, extra, fragments):
    ids = _ids_file(tmp_path / "ids.txt", ["pain_01.nidm-1", "nope-1"])
    extra = [str(ids) if value == "IDS" else value for value in extra]
    code = main(["ale", str(neurostore_export), "--out", str(tmp_path / "run.zarr"),
                 "--sample-size", "20", *extra] if "--sample-size" not in extra else
                ["ale", str(neurostore_export), "--out", str(tmp_path / "run.zarr"), *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert all(fragment in err for fragment in fragments), err
    assert not (tmp_path / "run.zarr").exists()


def test_subtract_two_groups_of_one_studyset(client, neurostore_export, tmp_path, capsys):
    first = [f"pain_{i:02d}.nidm-1" for i in range(1, 11)]
    second = [f"pain_{i:02d}.nidm-1" for i in range(11, 22)]
    argv = ["subtract", str(neurostore_export), "--ids1",
            str(_ids_file(tmp_path / "g1.txt", first)), "--ids2",
            str(_ids_file(tmp_path / "g2.txt", second)), "--out", str(tmp_path / "sub.zarr"),
            "--n-iters", "50", "--seed", "2", "--sample-size", "20"]
    assert main(argv) == 0
    result = dmeta.open_result(tmp_path / "sub.zarr")
    assert list(result.tables["analyses_desc-group1"].index) == first
    assert list(result.tables["analyses_desc-group2"].index) == second
    assert result.attrs["params"]["tie_handling"] == "exact"
    assert "g1.txt minus g2.txt" in capsys.readouterr().out
    assert main(argv[:3] + argv[5:]) == 2  # --ids1 without --ids2
    assert "--ids1 and --ids2" in capsys.readouterr().err


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out


def _examples():
    return [str(example_path(name)) for name in ("semantic_knowledge", "semantic_relatedness")]


def test_ale_predictive_alone_or_beside_the_monte_carlo_null(client, tmp_path, capsys):
    suffix = "corr-FWE_method-predictive"
    assert main(["ale", _examples()[0], "--out", str(tmp_path / "p.zarr"), "--predictive"]) == 0
    result = dmeta.open_result(tmp_path / "p.zarr")
    assert f"z_desc-size_level-cluster_{suffix}" in result.maps
    assert result.nulls is None and not any("montecarlo" in name for name in result.maps)
    assert "voxels in clusters of at least" in capsys.readouterr().out

    code, out = _run_ale(tmp_path, "--predictive", "--seed", "1")
    assert code == 0
    result = dmeta.open_result(out)
    assert set(result.attrs["corrections"]) == {suffix, "corr-FWE_method-montecarlo"}
    assert result.nulls.sizes["iteration"] == 20


@pytest.mark.parametrize("argv, fragments", [
    (["--predictive", "--seed", "3"], ["--seed", "add --n-iters"]),
    (["--predictive", "--sample-size", "20"], ["--predictive:", "pain_03.nidm-1", "have none"]),
])
def test_ale_predictive_bad_input(neurostore_export, tmp_path, capsys, argv, fragments):
    out = tmp_path / "run.zarr"
    assert main(["ale", str(neurostore_export), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dmeta: error:") and all(f in err for f in fragments), err
    assert not out.exists()


def test_subtract_fwe_keeps_its_nulls_in_the_run_store(client, tmp_path, capsys):
    import zarr

    out = tmp_path / "sub.zarr"
    argv = ["subtract", *_examples(), "--out", str(out), "--fwe", "--fwe-target", "all",
            "--n-iters", "30", "--chunk-iters", "10", "--seed", "2"]
    assert main(argv) == 0
    result = dmeta.open_result(out)
    for desc in ("group1MinusGroup2_level-voxel", "group1MinusGroup2Size_level-cluster",
                 "group1MinusGroup2Mass_level-cluster", "group1_level-voxel",
                 "group2Mass_level-cluster"):
        assert f"z_desc-{desc}_corr-FWE_method-montecarlo" in result.maps
    assert result.nulls["max_cluster_size"].values.any()
    stored = set(zarr.open_group(out, mode="r")["montecarlo"].group_keys())
    assert {"fwe-group1", "fwe-group2"} <= stored
    assert any(name.startswith("subtraction-cluster") for name in stored)
    printed = capsys.readouterr().out
    assert "z_desc-group1Size_level-cluster_corr-FWE_method-montecarlo:" in printed

    assert main(argv) == 0  # resumes: every null is read back from the store
    assert dmeta.open_result(out).nulls.identical(result.nulls)


def test_subtract_fwe_options_need_fwe(tmp_path, capsys):
    argv = ["subtract", *_examples(), "--out", str(tmp_path / "s.zarr"), "--vfwe-only"]
    assert main(argv) == 2
    assert "--vfwe-only set the FWE correction; add --fwe" in capsys.readouterr().err


def test_contrast_of_two_inputs(client, tmp_path, capsys):
    out = tmp_path / "contrast.zarr"
    assert main(["contrast", *_examples(), "--out", str(out), "--n-iters", "20", "--seed", "1",
                 "--alpha", "0.01", "--nifti", str(tmp_path / "maps")]) == 0
    result = dmeta.open_result(out)
    for name in ("z_desc-group1MainEffect", "z_desc-conjunction", "logp_desc-contrast"):
        assert name in result.maps
    assert result.tables["contrast_tab-metadata"]["alpha"].iloc[0] == 0.01
    assert (tmp_path / "maps" / "boilerplate.txt").exists()
    assert "contrast at p <= 0.01" in capsys.readouterr().out


def test_contrast_of_two_groups_with_monte_carlo_main_effects(client, neurostore_export,
                                                               tmp_path):
    ids = [_ids_file(tmp_path / f"g{g}.txt", [f"pain_{i:02d}.nidm-1" for i in numbers])
           for g, numbers in ((1, range(1, 11)), (2, range(11, 22)))]
    out = tmp_path / "contrast.zarr"
    assert main(["contrast", str(neurostore_export), "--ids1", str(ids[0]), "--ids2",
                 str(ids[1]), "--out", str(out), "--corrector", "montecarlo", "--n-iters",
                 "20", "--seed", "1", "--sample-size", "20"]) == 0
    assert dmeta.open_result(out).tables["contrast_tab-metadata"]["corrector"].iloc[0] == \
        "FWECorrector"


@pytest.mark.parametrize("extra, fragments", [
    (["--ids1", "MISSING", "--ids2", "MISSING"], ["missing.txt", "ids file not found"]),
    (["--alpha", "2"], ["alpha must be a number in (0, 1)", "2.0"]),
])
def test_contrast_bad_input(neurostore_export, tmp_path, capsys, extra, fragments):
    extra = [str(tmp_path / "missing.txt") if value == "MISSING" else value for value in extra]
    inputs = [str(neurostore_export)] if "--ids1" in extra else _examples()
    out = tmp_path / "contrast.zarr"
    assert main(["contrast", *inputs, "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("dmeta: error:") and all(f in err for f in fragments), err
    assert not out.exists()


def test_scale_against_a_base_rate_and_its_report(client, tmp_path, capsys):
    out = tmp_path / "scale.zarr"
    argv = ["scale", _examples()[0], "--base-rate", str(example_path("pain")), "--out",
            str(out), "--n-iters", "20", "--seed", "1"]
    assert main(argv) == 0
    result = dmeta.open_result(out)
    assert result.attrs["estimator"] == "SCALE" and result.nulls.sizes["iteration"] == 20
    assert "against a base rate of" in capsys.readouterr().out
    assert main(["report", str(out), "--html", str(tmp_path / "html")]) == 0
    assert "Langner, R." in (tmp_path / "html" / "index.html").read_text()

    argv[argv.index("--base-rate") + 1] = str(tmp_path / "nowhere.json")
    assert main(argv) == 2
    assert "--base-rate" in capsys.readouterr().err
