"""Replicate supports kept in a Zarr group as they finish, so sweeps resume.

Group ``stability/<name>``: ``support`` (replicate x packed voxel bits, one chunk per
replicate) and ``filled`` (replicate: 1 once written, after the support). Attributes hold
the fingerprint of everything the supports depend on and the root seed; a group written
for other inputs is refused.
"""

import numpy as np

from dmeta.fingerprinted_group import open_fingerprinted_group


class SupportStore:
    """Supports of one resampling configuration (in memory when ``path`` is None)."""

    def __init__(self, group):
        self.group = group
        self.seed = int(group.attrs["seed"])

    @classmethod
    def open(cls, path, name, fingerprint, seed, n_replicates, n_voxels):
        def build(group):
            n_bytes = -(-n_voxels // 8)
            group.create_array("support", shape=(n_replicates, n_bytes), chunks=(1, n_bytes),
                               dtype="u1", fill_value=0)
            group.create_array("filled", shape=(n_replicates,), chunks=(1,), dtype="i1",
                               fill_value=0)
            return {"n_voxels": int(n_voxels)}

        return cls(open_fingerprinted_group(path, "stability", name, fingerprint, seed, build,
                                            f"stability replicates {name!r}"))

    def pending(self):
        """Replicates still to compute."""
        return np.flatnonzero(self.group["filled"][:] == 0)

    def write(self, replicates, packed):
        for r, row in zip(replicates, packed):
            self.group["support"][r] = row
            self.group["filled"][r] = 1

    def stability(self):
        """Fraction of replicates in which each voxel is supported."""
        n_voxels = int(self.group.attrs["n_voxels"])
        support = self.group["support"]
        total = np.zeros(n_voxels)
        for r in range(support.shape[0]):
            total += np.unpackbits(support[r], count=n_voxels)
        return total / support.shape[0]
