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
    thresh : float or None
        Cluster-forming ALE threshold (clusters are voxels with ALE above it); None skips
        cluster statistics, and every iteration's max cluster size and mass are 0.
    bins : array of float, optional
        Histogram bin centres of a voxelwise null to accumulate; None skips it, and a
        block's histogram is empty (``n_bins`` is 0).

    Attributes
    ----------
    clusters, histogram : bool
        Whether the kernel computes cluster statistics and the voxelwise histogram.
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
        self.clusters = thresh is not None
        self.thresh = float(thresh) if self.clusters else None
        self.histogram = bins is not None
        self.n_bins = len(bins) if self.histogram else 0
        self.inv_step = 1.0 / (bins[1] - bins[0]) if self.histogram else 0.0
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
        return run_kernel(self, self.draws(seed, start, stop), self.starts, self.kernel_index)


def run_kernel(plan, draws, starts, kernel_index):
    """The compiled kernel on ``draws`` (iteration x focus, rows of ``plan.mask_ijk``) for
    the analyses laid out by ``starts`` and ``kernel_index``, everything else from ``plan``.

    Returns the per-iteration maxima (n, 3) and the histogram (length ``plan.n_bins``).
    """
    hist = np.zeros(plan.n_bins, dtype=np.int64)
    values = null_iterations(
        draws, plan.mask_ijk, starts, kernel_index, plan.radii, plan.log_kernels, plan.shape,
        plan.mask_flat, plan.thresh if plan.clusters else np.nan, plan.clusters, hist,
        plan.histogram, plan.inv_step,
    )
    return values, hist
