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
    assert len(err) == 1 and "other inputs or parameters" in err[0]


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
