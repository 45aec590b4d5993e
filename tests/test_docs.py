"""The documentation builds with warnings as errors, and documents every public name."""

import subprocess
import sys
from pathlib import Path

import pytest

import dmeta

DOCS = Path(__file__).resolve().parent.parent / "docs"

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")


def test_docs_build_without_warnings(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr
    for page in ("index", "api", "nimare", "clusters", "guide/zarr"):
        assert (tmp_path / "html" / f"{page}.html").exists()


def test_api_reference_lists_every_public_name():
    api = (DOCS / "api.rst").read_text()
    missing = [name for name in dmeta.__all__ if name not in api]
    assert missing == []
