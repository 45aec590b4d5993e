"""Example data bundled with dmeta (see ``data/PROVENANCE.md`` for sources and licences)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from dmeta.coordinates import CoordinateSet
from dmeta.errors import InputError
from dmeta.io import load

__all__ = ["default_mask_path", "example_path", "load_example"]

_EXAMPLES = {
    "semantic_knowledge": "semantic_knowledge_children.txt",
    "semantic_relatedness": "semantic_relatedness_children.txt",
    "pain": "nidm_pain_studyset.json",
}
_MASK = "MNI152_2x2x2_brainmask.nii.gz"


def _data_path(name: str) -> Path:
    return Path(str(files(__name__).joinpath("data", name)))


def example_path(name: str) -> Path:
    """Path of a bundled example file.

    Parameters
    ----------
    name : {"semantic_knowledge", "semantic_relatedness", "pain"}
        Which example.

    Returns
    -------
    pathlib.Path
    """
    if name not in _EXAMPLES:
        raise InputError(f"unknown example '{name}'; choose from {', '.join(_EXAMPLES)}")
    return _data_path(_EXAMPLES[name])


def load_example(name: str) -> CoordinateSet:
    """Load a bundled example data set.

    Parameters
    ----------
    name : {"semantic_knowledge", "semantic_relatedness", "pain"}
        ``"semantic_knowledge"`` (21 experiments) and ``"semantic_relatedness"``
        (16 experiments) are the Sleuth files of Enge et al. (2021); ``"pain"`` is the
        21-study NIDM pain studyset (NIMADS JSON).

    Returns
    -------
    CoordinateSet
    """
    return load(example_path(name))


def default_mask_path() -> Path:
    """Path of the bundled MNI152 2 mm brain mask (91 x 109 x 91), dmeta's default space."""
    return _data_path(_MASK)
