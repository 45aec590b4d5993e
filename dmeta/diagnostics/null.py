"""The Monte Carlo null of a resampling diagnostic, and thresholds on the ALE grid.

NiMARE's ResampledStability forms clusters at approximate-null z > Phi^-1(1 - p) and keeps
those larger than the (1 - alpha) quantile of the largest cluster in random-foci datasets of
the replicates' size, with foci drawn from grey matter by default. The plan below runs such
datasets on dmeta's Monte Carlo kernel: random analysis subsets, random foci in a sample
space.
"""

import functools
import hashlib
import json

import numpy as np
from scipy import ndimage
from scipy.stats import norm

from dmeta.approximate_null import hist_to_p
from dmeta.errors import InputError
from dmeta.montecarlo.plan import NullPlan, run_kernel
from dmeta.stats import p_to_z
from dmeta.validation import check_choice

COVERAGES = ("gm", "brain")


@functools.lru_cache(maxsize=4)
def sample_space(space, coverage="gm", gm_threshold=0.1):
    """In-mask voxel subscripts random foci are drawn from: grey matter or the whole mask.

    Cached per space, since resampling the grey-matter template takes seconds; nilearn is
    imported here so that workers, which only need the plan, never import it.
    """
    from nilearn.datasets import load_mni152_gm_template
    from nilearn.image import resample_to_img

    check_choice("mask_coverage", coverage, COVERAGES)
    keep = space.mask
    if coverage == "gm":
        gm = resample_to_img(load_mni152_gm_template(resolution=2), space.mask_img,
                             interpolation="continuous", force_resample=True,
                             copy_header=True)
        keep = keep & (np.asanyarray(gm.dataobj) > gm_threshold)
    ijk = np.argwhere(keep).astype(np.int64)
    ijk.flags.writeable = False
    return ijk


def z_cut(voxel_thresh):
    """The z a voxel must exceed for uncorrected p < ``voxel_thresh`` (NiMARE's rule)."""
    if not 0 < voxel_thresh < 1:
        raise InputError(f"voxel_thresh must be a p-value in (0, 1), got {voxel_thresh!r}")
    return norm.ppf(1 - voxel_thresh)


def _z_passes(stat, weights, bins, voxel_thresh):
    return p_to_z(hist_to_p(stat, weights, bins)) > z_cut(voxel_thresh)


def stat_cut(weights, bins, voxel_thresh):
    """ALE above which :func:`passes` holds: half a bin below the first passing bin centre.

    None when no bin passes: a value's p is its bin's, so then no ALE value passes either.
    """
    ok = np.flatnonzero(_z_passes(bins, weights, bins, voxel_thresh))
    return None if ok.size == 0 else float(bins[ok[0]] - 0.5 * (bins[1] - bins[0]))


def passes(stat, weights, bins, voxel_thresh):
    """Whether each ALE value's approximate-null z exceeds the cluster-forming threshold.

    The exact test runs only on values within a bin of :func:`stat_cut`'s threshold or
    above it; every other voxel fails it.
    """
    out = np.zeros(np.shape(stat), dtype=bool)
    cut = stat_cut(weights, bins, voxel_thresh)
    if cut is None:
        return out
    near = stat > cut - (bins[1] - bins[0])
    out[near] = _z_passes(stat[near], weights, bins, voxel_thresh)
    return out


class ResamplingNullPlan(NullPlan):
    """A Monte Carlo null plan with foci drawn from ``sample_ijk`` and, per iteration, a
    random subset of ``target_n`` analyses (all of them when None).

    Iteration ``i`` draws every focus from a generator seeded with ``(seed, i)`` and its
    subset from one seeded with ``(seed, i, 1)``, so blocks stay chunking-independent. The
    foci of analyses left out are parked on a voxel whose kernel cannot reach the mask, so a
    whole block still runs as one call of the compiled kernel; a mask that leaves no such
    voxel runs its iterations one by one, each on its subset's own layout.

    ``thresh`` is a cluster-forming ALE threshold, or None for no cluster statistics (what
    :func:`stat_cut` gives when no value can pass). The plan keeps no histogram.
    """

    def __init__(self, ma, thresh, sample_ijk, target_n=None):
        super().__init__(ma, thresh)
        self.target_n = target_n
        self._counts = np.diff(self.starts)
        self._n_sample = len(sample_ijk)
        self.parking = _parking_voxel(ma.space.mask, int(self.radii.max()))
        rows = [sample_ijk] if self.parking is None else [sample_ijk, [self.parking]]
        self.mask_ijk = np.ascontiguousarray(np.concatenate(rows), dtype=np.int64)
        self._extra = {
            "sample_space": hashlib.sha256(np.ascontiguousarray(sample_ijk).tobytes()).hexdigest(),
            "target_n": target_n,
        }

    def fingerprint(self):
        text = super().fingerprint() + json.dumps(self._extra, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def _subset(self, seed, it):
        rng = np.random.default_rng([seed, it, 1])
        return np.sort(rng.permutation(self._counts.size)[: self.target_n])

    def _foci(self, seed, it):
        """Sample-space row of every focus of iteration ``it``, all analyses kept."""
        return np.random.default_rng([seed, it]).integers(self._n_sample, size=self.n_foci)

    def draws(self, seed, start, stop):
        out = np.stack([self._foci(seed, it) for it in range(start, stop)])
        if self._subsetting:
            for row, it in zip(out, range(start, stop)):
                kept = np.zeros(self._counts.size, dtype=bool)
                kept[self._subset(seed, it)] = True
                row[~np.repeat(kept, self._counts)] = self._n_sample
        return out

    @property
    def _subsetting(self):
        return self.target_n is not None and self.target_n < self._counts.size

    def run(self, seed, start, stop):
        if not self._subsetting or self.parking is not None:
            return super().run(seed, start, stop)
        rows = []
        for it in range(start, stop):
            chosen = self._subset(seed, it)
            foci = self._foci(seed, it)
            kept = np.concatenate([foci[self.starts[a]:self.starts[a + 1]] for a in chosen])
            starts = np.concatenate([[0], np.cumsum(self._counts[chosen])]).astype(np.int64)
            rows.append(run_kernel(self, kept[None, :], starts, self.kernel_index[chosen])[0])
        return np.concatenate(rows), np.zeros(self.n_bins, dtype=np.int64)


def _parking_voxel(mask, radius):
    """A grid voxel farther than ``radius`` voxels (per axis) from the mask, or None."""
    outside = ndimage.distance_transform_cdt(~mask, metric="chessboard")
    far = np.argwhere(outside > radius)
    return None if far.size == 0 else far[0]
