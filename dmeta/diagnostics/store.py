"""Replicate supports kept in a Zarr group as they finish, so sweeps resume.

Group ``stability/<name>``: ``support`` (replicate x packed voxel bits, one chunk per
replicate), ``iterations`` and ``precision`` (replicate: the Monte Carlo iterations of the
null the replicate was thresholded with, and the relative error of its cluster-size cut,
see :func:`dmeta.montecarlo.adaptive.relative_error`) and ``filled`` (replicate: 1 once
written, after the rest). Attributes hold the fingerprint of everything the supports depend
on and the root seed; a group written for other inputs is refused.
"""

import numpy as np

from dmeta.fingerprinted_group import open_fingerprinted_group


class SupportStore:
    """Supports of one resampling configuration (in memory when ``path`` is None)."""

    def __init__(self, group):
        self.group = group
        self.seed = int(group.attrs["seed"])
        self.n_voxels = int(group.attrs["n_voxels"])
        n_replicates = group["support"].shape[0]
        # Groups written before iterations were recorded get the arrays now (unknown: -1).
        if "iterations" not in group:
            group.create_array("iterations", shape=(n_replicates,), chunks=(1,), dtype="i4",
                               fill_value=-1)
        if "precision" not in group:
            group.create_array("precision", shape=(n_replicates,), chunks=(1,), dtype="f8",
                               fill_value=np.nan)

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

    @property
    def n_replicates(self):
        return int(self.group["support"].shape[0])

    def pending(self):
        """Replicates still to compute."""
        return np.flatnonzero(self.group["filled"][:] == 0)

    def write(self, replicates, packed, iterations=None, precision=None):
        """Keep finished replicates: packed supports and, per replicate, the iterations and
        the precision of the null they were thresholded with (0 and NaN for none)."""
        n = len(replicates)
        iterations = [0] * n if iterations is None else iterations
        precision = [np.nan] * n if precision is None else precision
        for r, row, its, prec in zip(replicates, packed, iterations, precision):
            self.group["support"][r] = row
            self.group["iterations"][r] = int(its)
            self.group["precision"][r] = float(prec)
            self.group["filled"][r] = 1

    def support(self, r):
        """Replicate ``r``'s support as a boolean vector over the in-mask voxels."""
        return np.unpackbits(self.group["support"][r], count=self.n_voxels).astype(bool)

    def supports(self):
        """Each replicate's support, one at a time."""
        for r in range(self.n_replicates):
            yield self.support(r)

    def stability(self):
        """Fraction of replicates in which each voxel is supported."""
        total = np.zeros(self.n_voxels)
        for support in self.supports():
            total += support
        return total / self.n_replicates

    def iterations(self):
        """Monte Carlo iterations behind each replicate's threshold (NaN: no null, or not
        recorded)."""
        iterations = self.group["iterations"][:].astype(np.float64)
        iterations[iterations <= 0] = np.nan
        return iterations

    def precision(self):
        """Relative error of each replicate's cluster-size cut (NaN: none or unknown)."""
        return self.group["precision"][:].astype(np.float64)
