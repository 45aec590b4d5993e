"""The example notebooks run end to end (with ``DMETA_QUICK=1``): a failing cell fails here.

Each notebook runs in a fresh kernel of this interpreter, in a temporary folder, so the
files it writes (the HTML report of the first one) do not land in the checkout.
"""

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
STABILITY = "z_desc-size_level-cluster_corr-FWE_method-montecarlo_diag-ResampledStability"
#: What each notebook shows as it runs: snippets each found in one result's HTML summary
#: (with its count of inline figures), and printed estimator reprs.
SHOWN = {
    "01": {"html": [(["MetaResult: ALE", "Null distribution: 200 iterations",
                      "voxels p&nbsp;&lt;&nbsp;0.05</td>"], 1)],
           "stdout": []},
    "02": {"html": [(["MetaResult: ALE", "Null distribution: 50 iterations",
                      "voxels p&nbsp;&lt;&nbsp;0.05</td>"], 1),
                    ([f"<code>{STABILITY}</code></td><td>stable voxels: ",
                      "<td>leave_1_out</td>"], 2)],
           "stdout": ["ResampledStability(resampling_policy='leave_1_out', random_state=42)\n",
                      "ResampledStability(resampling_policy='leave_k_out', k=3, n_resamples=8, "
                      "random_state=42)\n"]},
}


def test_both_reference_examples_are_notebooks():
    assert [nb.name for nb in NOTEBOOKS] == [
        "01_two_sample_ale.ipynb", "02_jackknife_vs_resampled_stability.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DMETA_QUICK", "1")
    # The kernel spec runs "python": make that this interpreter, whatever PATH says.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on failure
    images = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if "image/png" in output.get("data", {})]
    assert len(images) == {"01": 2, "02": 5}[path.name[:2]]
    # A result ending a cell shows its HTML summary (its inline figures are no image/png
    # outputs); an estimator prints its parameters.
    html = ["".join(output["data"]["text/html"]) for cell in notebook.cells
            for output in cell.get("outputs", []) if "text/html" in output.get("data", {})]
    summaries = [text for text in html if 'class="dmeta-result"' in text]
    for snippets, n_figures in SHOWN[path.name[:2]]["html"]:
        assert any(all(s in text for s in snippets)
                   and text.count("data:image/png;base64,") == n_figures
                   for text in summaries), snippets
    stdout = "".join(output.get("text", "") for cell in notebook.cells
                     for output in cell.get("outputs", []) if output.get("name") == "stdout")
    assert all(text in stdout for text in SHOWN[path.name[:2]]["stdout"])
    # Every focus is used and the user is told so: no warning is silenced.
    code = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "filterwarnings" not in code and "simplefilter" not in code
    stderr = "".join(output.get("text", "") for cell in notebook.cells
                     for output in cell.get("outputs", []) if output.get("name") == "stderr")
    assert "lie outside the mask" in stderr
