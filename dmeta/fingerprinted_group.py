"""Zarr groups that belong to one set of inputs: opened again only for the same inputs.

A group ``<kind>/<name>`` records in its attributes the ``fingerprint`` of everything its
contents depend on and the root ``seed`` they were computed with. Reopening it with another
fingerprint, or with a seed other than the recorded one, is refused rather than mixing
results of different inputs.
"""

import zarr

from dmeta.errors import InputError
from dmeta.seeds import check_seed, settle_seed


def open_fingerprinted_group(path, kind, name, fingerprint, seed, build, holds,
                             elsewhere="store"):
    """Open group ``kind/name`` of the Zarr store at ``path`` (in memory when None), or create it.

    Parameters
    ----------
    path : str, os.PathLike or None
        The Zarr store; None for a new in-memory one.
    kind, name : str
        Parent group (created if missing) and the group's name in it.
    fingerprint : str
        Identity of the inputs the group's contents depend on.
    seed : int or None
        Root seed; None accepts a group's recorded seed, or draws a fresh one for a new group.
    build : callable
        ``build(group)`` creates the arrays of a new group and returns a dict of further
        attributes; the attributes (fingerprint, seed, then those) are written after it.
    holds, elsewhere : str
        What the group holds and where else to write, for the refusal's message.

    Returns
    -------
    zarr.Group
        The group; its ``attrs["seed"]`` is the root seed to use.
    """
    if seed is not None:
        seed = check_seed(seed)
    root = zarr.open_group(zarr.storage.MemoryStore() if path is None else str(path), mode="a")
    parent = root.require_group(kind)
    if name in parent:
        group = parent[name]
        recorded = group.attrs.get("seed")
        if group.attrs.get("fingerprint") != fingerprint or (
            seed is not None and recorded != seed
        ):
            raise InputError(
                f"{path}: holds {holds} computed from other inputs or parameters "
                f"(seed {recorded}); use another {elsewhere} or delete it"
            )
        return group
    seed = settle_seed(seed)
    group = parent.create_group(name)
    extra = build(group)
    group.attrs.update({"fingerprint": fingerprint, "seed": seed, **extra})
    return group
