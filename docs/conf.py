"""Sphinx configuration for dmeta's documentation (built with warnings as errors)."""

import dmeta  # installed (pip install -e .), so autodoc documents what users import

project = "dmeta"
author = "dmeta developers"
release = dmeta.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]

# numpydoc-style docstrings, read by napoleon.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
autodoc_typehints = "none"
autosummary_generate = False  # the API page lists names itself; nothing is written to docs/

myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path = []
