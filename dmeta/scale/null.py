"""The SCALE null as a Monte Carlo plan: the engine runs, stores and resumes it.

A :class:`ScalePlan` is a :class:`~dmeta.montecarlo.plan.NullPlan` whose foci are drawn
from base-rate coordinates instead of in-mask voxels, and whose blocks return, in place of
a histogram of null ALE values, one bin per in-mask voxel: how many of the block's
iterations reach the observed ALE there. Summed over blocks (as the engine and
:class:`~dmeta.montecarlo.store.NullStore` sum histograms), these are the exceedance counts
of the whole null, so :func:`~dmeta.montecarlo.run_null` gives SCALE its Dask blocks, its
resumable and extendable Zarr store and its (seed, iteration) seeding unchanged.
"""

import hashlib

import numpy as np

from dmeta.montecarlo import NullPlan
from dmeta.montecarlo._kernel import MAX_STAT
from dmeta.scale._kernel import exceedance_iterations, log_complement_volume


def digest(array):
    """Hex digest of an integer array (voxel subscripts), for fingerprints and provenance."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.int64).tobytes()).hexdigest()


def _ale32(log_complement):
    """ALE as NiMARE rounds it: float32 of 1 - exp(log(1 - ALE)) taken in float64."""
    return (1.0 - np.exp(np.asarray(log_complement, dtype=np.float64))).astype(np.float32)


def ale_cut(log_complement):
    """Per voxel, the largest float32 log(1 - ALE) whose ALE (:func:`_ale32`) is at least that
    of ``log_complement`` (float32, <= 0): 0 where that ALE is 0.

    NiMARE counts a null iteration at a voxel when its float32 ALE is at least the observed
    one, and 1 - exp(s) is monotone, so that is "null log(1 - ALE) <= this cut": the hot loop
    compares log values, with NiMARE's ties (and an ALE that rounds to 0 exceeded by every
    iteration). Bisection over the bit patterns of -log(1 - ALE), ordered as integers.
    """
    observed = np.asarray(log_complement, dtype=np.float32)
    target = _ale32(observed)
    hi = (-observed).view(np.int32).astype(np.int64)  # bits of a float32 >= 0: ordered
    lo = np.zeros_like(hi)  # ALE 0, below every positive target
    active = np.flatnonzero(target > 0)
    while active.size:
        mid = (lo[active] + hi[active]) // 2
        reaches = _ale32(-mid.astype(np.int32).view(np.float32)) >= target[active]
        hi[active] = np.where(reaches, mid, hi[active])
        lo[active] = np.where(reaches, lo[active], mid)
        active = active[hi[active] - lo[active] > 1]
    cut = -hi.astype(np.int32).view(np.float32)
    cut[target == 0] = 0.0
    return cut


class ScalePlan(NullPlan):
    """Constants of the SCALE null of one fitted ALE.

    Parameters
    ----------
    ma : dmeta.modeled_activation.ModeledActivation
        Foci layout, kernels and space of the fit.
    points : (n_points, 3) int64
        Voxel subscripts of the base-rate coordinates, on the grid or not.

    Attributes
    ----------
    cut : (prod(shape),) float32
        Per in-mask voxel of positive observed ALE, the log(1 - ALE) a null map must be at
        or below to count (see :func:`ale_cut`); -inf elsewhere, where none counts.
    unreached : (n_voxels,) bool
        In-mask voxels of observed ALE 0: every iteration counts there.
    """

    def __init__(self, ma, points):
        super().__init__(ma, thresh=None)
        space = ma.space
        self.points = np.ascontiguousarray(points, dtype=np.int64)
        self.flat_index = space.flat_index
        self.n_bins = space.n_voxels
        observed = log_complement_volume(ma.foci.ijk.astype(np.int64), self.starts,
                                         self.kernel_index, self.radii, self.log_kernels,
                                         self.shape)
        cut = ale_cut(observed[self.flat_index])
        self.unreached = cut == 0
        self.cut = np.full(observed.shape, -np.inf, dtype=np.float32)
        self.cut[self.flat_index[~self.unreached]] = cut[~self.unreached]
        self._identity.update(null="scale", n_bins=self.n_bins, base_rate=digest(points),
                              observed_foci=digest(ma.foci.ijk))

    def draws(self, seed, start, stop):
        """Rows of ``points`` the foci of iterations ``start:stop`` move to."""
        n_points = self.points.shape[0]
        return np.stack([
            np.random.default_rng([seed, it]).integers(n_points, size=self.n_foci)
            for it in range(start, stop)
        ])

    def run(self, seed, start, stop):
        """Iterations ``start:stop``: per-iteration maxima (n, 3; only the maximum ALE is
        filled) and, per in-mask voxel, the iterations whose ALE reaches the observed."""
        counts = np.zeros(self.mask_flat.shape[0], dtype=np.int32)
        values = np.zeros((stop - start, 3))
        values[:, MAX_STAT] = exceedance_iterations(
            self.draws(seed, start, stop), self.points, self.starts, self.kernel_index,
            self.radii, self.log_kernels, self.shape, self.mask_flat, self.cut, counts,
        )
        exceed = counts[self.flat_index].astype(np.int64)
        exceed[self.unreached] += stop - start
        return values, exceed
