"""What one Monte Carlo block needs, built once per analysis and shipped to workers once.

Random foci for iteration ``i`` come from a generator seeded with ``(seed, i)``, so an
iteration's numbers do not depend on which block, worker or thread computes it.
"""

import hashlib
import json

import numpy as np

from dmeta.montecarlo._kernel import null_iterations, padded_rows


class NullPlan:
    """Constants of a Monte Carlo null for one fitted ALE.

    Parameters
    ----------
    ma : dmeta.modeled_activation.ModeledActivation
        Foci layout, kernels and space of the fit.
    thresh : float
        Cluster-forming ALE threshold (clusters are voxels with ALE above it).
    bins : array of float, optional
        Histogram bin centres of a voxelwise null to accumulate; None to skip it.
    """

    def __init__(self, ma, thresh, bins=None):
        space = ma.space
        self.shape = np.array(space.shape, dtype=np.int64)
        self.mask_ijk = np.ascontiguousarray(space.ijk, dtype=np.int64)
        self.mask_flat = np.ascontiguousarray(space.mask.ravel(), dtype=np.uint8)
        self.starts = ma.foci.starts.astype(np.int64)
        self.kernel_index = ma.kernels.index.astype(np.int64)
        self.log_kernels = padded_rows(np.log1p(-ma.kernels.stack()).astype(np.float32))
        self.radii = np.array([k.shape[0] // 2 for k in ma.kernels.kernels], dtype=np.int64)
        self.thresh = float(thresh)
        self.n_bins = 1 if bins is None else len(bins)
        self.inv_step = 0.0 if bins is None else 1.0 / (bins[1] - bins[0])
        self._identity = {
            "space": space.fingerprint(),
            "foci_per_analysis": ma.foci.counts.tolist(),
            "kernel_fwhm": ma.kernels.fwhms.tolist(),
            "thresh": self.thresh,
            "n_bins": self.n_bins,
        }

    @property
    def n_foci(self):
        return int(self.starts[-1])

    def fingerprint(self):
        """Hash of everything a stored null depends on besides the seed."""
        text = json.dumps(self._identity, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def draws(self, seed, start, stop):
        """In-mask voxel numbers of the random foci of iterations ``start:stop``."""
        n_mask = self.mask_ijk.shape[0]
        return np.stack([
            np.random.default_rng([seed, it]).integers(n_mask, size=self.n_foci)
            for it in range(start, stop)
        ])

    def run(self, seed, start, stop):
        """Iterations ``start:stop``: per-iteration maxima (n, 3) and the block's histogram."""
        hist = np.zeros(self.n_bins, dtype=np.int64)
        values = null_iterations(
            self.draws(seed, start, stop), self.mask_ijk, self.starts, self.kernel_index,
            self.radii, self.log_kernels, self.shape, self.mask_flat, self.thresh, hist,
            self.inv_step,
        )
        return values, hist
