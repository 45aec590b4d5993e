"""Atomic write or replace of a directory store.

The new directory is built in a hidden sibling on the same filesystem and renamed into
place, so the target path never holds a half-written store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_directory_atomically"]


def write_directory_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Build a directory with ``write`` and rename it into place at ``path``.

    Parameters
    ----------
    path : pathlib.Path
        Where the directory ends up; whatever is there is replaced (callers check first
        that it may be).
    write : callable
        Called with a fresh staging path (which does not exist yet) to create the
        directory's contents there.

    Notes
    -----
    If ``write`` or the rename fails, ``path`` is left as it was and the staging
    directory is removed. If the process is killed mid-write, a hidden
    ``.NAME.tmp-*`` sibling may be left behind.
    """
    staging = _sibling(path, "tmp")
    try:
        write(staging)
        _swap_into_place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sibling(path: Path, tag: str) -> Path:
    """A hidden, unique sibling on the same filesystem, so renames are atomic."""
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:12]}")


def _swap_into_place(staging: Path, path: Path) -> None:
    """Rename ``staging`` to ``path``; an old ``path`` is moved aside and restored on failure."""
    if not os.path.lexists(path):
        os.rename(staging, path)
        return
    backup = _sibling(path, "old")
    os.rename(path, backup)
    try:
        os.rename(staging, path)
    except BaseException:
        os.rename(backup, path)
        raise
    shutil.rmtree(backup, ignore_errors=True)
