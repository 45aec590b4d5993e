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
    # A result ending a cell shows its HTML summary (its inline figure is no image/png output).
    html = [output["data"]["text/html"] for cell in notebook.cells
            for output in cell.get("outputs", []) if "text/html" in output.get("data", {})]
    assert any('class="dmeta-result"' in "".join(text) for text in html)
    # Every focus is used and the user is told so: no warning is silenced.
    code = "".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "filterwarnings" not in code and "simplefilter" not in code
    stderr = "".join(output.get("text", "") for cell in notebook.cells
                     for output in cell.get("outputs", []) if output.get("name") == "stderr")
    assert "lie outside the mask" in stderr
