"""Monte Carlo nulls kept block by block in a Zarr group, so runs resume and extend.

Layout of group ``montecarlo/<name>``: ``values`` (iteration x 3: max ALE, max cluster
size, max cluster mass), ``hist`` (block x bin, the voxelwise-null histogram of each
block), and ``filled`` (block: how many iterations of the block are written). A block's
values are written before its ``filled`` entry, and Zarr writes each chunk file
atomically, so a run killed at any point leaves a readable store whose ``filled`` entries
describe exactly what is there. The group's attributes record the plan fingerprint, the
seed and the block size; a store written for other inputs is refused, never mixed.
"""

import numpy as np
import xarray as xr

from dmeta.fingerprinted_group import open_fingerprinted_group
from dmeta.messages import warn

NULL_NAMES = ("max_stat", "max_cluster_size", "max_cluster_mass")


class NullStore:
    """Blocks of one Monte Carlo null in a Zarr group (in memory when ``path`` is None)."""

    def __init__(self, group, seed, chunk_iters):
        self.group = group
        self.seed = seed
        self.chunk_iters = chunk_iters

    @classmethod
    def open(cls, path, name, plan, seed, chunk_iters, default_chunk_iters=None):
        """Open (or create) the null ``name`` for ``plan``; refuse a mismatched one.

        A new null has ``chunk_iters`` iterations per block (None: ``default_chunk_iters``);
        an existing one keeps its own, with a warning if another was asked for.
        """
        def build(group):
            size = chunk_iters or default_chunk_iters
            group.create_array("values", shape=(0, 3), chunks=(size, 3), dtype="f8")
            group.create_array("hist", shape=(0, plan.n_bins), chunks=(1, plan.n_bins),
                               dtype="i8")
            group.create_array("filled", shape=(0,), chunks=(1,), dtype="i8", fill_value=0)
            return {"chunk_iters": size}

        group = open_fingerprinted_group(path, "montecarlo", name, plan.fingerprint(), seed,
                                         build, "a Monte Carlo null", "--out/store")
        kept = group.attrs["chunk_iters"]
        if chunk_iters is not None and chunk_iters != kept:
            warn(f"{path}: the Monte Carlo null {name!r} keeps its block size of {kept} "
                 f"iterations; chunk_iters={chunk_iters} ignored (use another store to change it)")
        return cls(group, int(group.attrs["seed"]), kept)

    def _blocks(self, n_iters):
        c = self.chunk_iters
        return [(b, b * c, min((b + 1) * c, n_iters)) for b in range(-(-n_iters // c))]

    def pending(self, n_iters):
        """(start, stop) of the blocks still to compute for the first ``n_iters``."""
        blocks = self._blocks(n_iters)
        if self.group["filled"].shape[0] < len(blocks):
            self.group["values"].resize((len(blocks) * self.chunk_iters, 3))
            self.group["hist"].resize((len(blocks), self.group["hist"].shape[1]))
            self.group["filled"].resize((len(blocks),))
        filled = self.group["filled"][:]
        return [(a, b) for n, a, b in blocks if filled[n] != b - a]

    def write(self, start, stop, values, hist):
        """Store one finished block; its ``filled`` entry goes last."""
        block = start // self.chunk_iters
        self.group["values"][start:stop] = values
        self.group["hist"][block] = hist
        self.group["filled"][block] = stop - start

    def columns(self, n_iters):
        """The first ``n_iters`` iterations of each null column, by name."""
        values = self.group["values"][:n_iters]
        return {name: values[:, n] for n, name in enumerate(NULL_NAMES)}

    def read(self, n_iters):
        """The null of the first ``n_iters`` iterations and their summed histogram."""
        blocks = self._blocks(n_iters)
        values = self.group["values"][:n_iters]
        hist = self.group["hist"][: len(blocks)].sum(axis=0)
        nulls = xr.Dataset(
            {name: ("iteration", values[:, n]) for n, name in enumerate(NULL_NAMES)},
            coords={"iteration": np.arange(n_iters)},
            attrs={"seed": self.seed, "n_iters": n_iters},
        )
        return nulls, hist
