"""Shared parameter documentation: fill_doc fills placeholders, indented; stray ones fail."""

import pytest

import dmeta
from dmeta.docstrings import docdict, fill_doc


def test_entry_is_indented_to_its_placeholder():
    @fill_doc
    def f(seed=None):
        """Summary, 12% of it.

        Parameters
        ----------
        %(seed)s
        """

    first, *rest = docdict["seed"].splitlines()
    assert f"\n        {first}\n" in f.__doc__
    assert all(f"\n        {line}" in f.__doc__ for line in rest)
    assert "12% of it" in f.__doc__


def test_unknown_and_inline_placeholders_fail_at_decoration():
    def unknown():
        """%(no_such_parameter)s"""

    def inline():
        """See %(seed)s here."""

    with pytest.raises(KeyError, match="no_such_parameter"):
        fill_doc(unknown)
    with pytest.raises(ValueError, match="line of its own"):
        fill_doc(inline)


def test_fill_doc_keeps_an_object_without_docstring():
    def bare():
        pass

    assert fill_doc(bare) is bare and bare.__doc__ is None


@pytest.mark.parametrize("name", [n for n in dmeta.__all__ if n not in ("datasets", "io")])
def test_public_docstrings_are_filled(name):
    assert "%(" not in (getattr(dmeta, name).__doc__ or "")
