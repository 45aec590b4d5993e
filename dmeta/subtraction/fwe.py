"""Family-wise error nulls of an ALE difference, without holding (relabelling x voxel).

NiMARE keeps every relabelling's difference map on disk to take the cluster-forming threshold
(a quantile of the absolute difference over relabellings and voxels) and then label each map.
Here the relabellings run twice, each time regenerated from its seed: a first pass counts
absolute differences in a histogram of float32 bins (2**12 per octave) from which the
quantile is read; a second labels each relabelling's clusters above it. Both passes are Monte
Carlo blocks (``dmeta.montecarlo.run_null``), so they resume from a store like any null; more
relabellings extend the histogram pass, but move the threshold, so the cluster pass runs
again. The quantile's bin is at most 2.4e-4 of its value wide, far below its Monte Carlo
error.
"""

import hashlib
import json
from dataclasses import replace

import numpy as np

from dmeta.clusters import signed_clusters
from dmeta.montecarlo import run_null
from dmeta.montecarlo.adaptive import StoppingRule
from dmeta.montecarlo.store import NULL_NAMES
from dmeta.stats import null_to_p, p_to_logp, p_to_z
from dmeta.subtraction._kernel import HIST_SHIFT, histogram_key, null_block, tail_thresholds
from dmeta.subtraction.permutation import relabellings

DESC = "desc-group1MinusGroup2"
#: Relabellings of the pilot that places the histogram's lowest bin (not part of any null).
PILOT_ITERS = 32
PILOT_SEED = 0


class DifferenceNullPlan:
    """Constants of one pass over the relabellings, in :func:`run_null`'s plan interface.

    Parameters
    ----------
    lc : dmeta.subtraction.permutation.LogComplement
        Pooled log(1 - MA) on the voxels tested.
    n_group1 : int
    flat : array of int
        Each voxel's index in the C-ordered volume of ``shape``.
    shape : tuple of int
    level : float, optional
        With ``histogram``: the lowest absolute difference counted. Without: the cluster-forming
        threshold. None: only each relabelling's maximum absolute difference.
    histogram : bool
    """

    def __init__(self, lc, n_group1, flat, shape, level=None, histogram=False):
        self.lc = lc
        self.n_group1 = n_group1
        self.flat = np.asarray(flat, dtype=np.int64)
        self.shape = np.asarray(shape, dtype=np.int64)
        self.level = -1.0 if level is None else float(level)
        # Sums past the cuts have absolute difference >= level; voxels whose pooled ALE is below
        # the level never get there, and need no cut.
        self.cut_up, self.cut_lo = np.full(lc.n_voxels, -np.inf), np.full(lc.n_voxels, np.inf)
        if level is not None:
            reach = np.flatnonzero(lc.bound >= self.level)
            t, d = lc.total[reach], np.full(reach.size, self.level)
            self.cut_up[reach] = tail_thresholds(t, d)[0]
            self.cut_lo[reach] = tail_thresholds(t, -d)[1]
        scratch = np.empty(1, dtype=np.float32)
        self.base_key = int(histogram_key(np.float32(max(self.level, 0.0)), scratch))
        self.n_bins = (int(histogram_key(np.float32(1.0), scratch)) - self.base_key + 1
                       if histogram else 0)
        self._identity = {"values": lc.fingerprint(), "n_group1": int(n_group1),
                          "level": self.level, "n_bins": self.n_bins}

    def fingerprint(self):
        """Hash of everything a stored null depends on besides the seed."""
        return hashlib.sha256(json.dumps(self._identity, sort_keys=True).encode()).hexdigest()

    def run(self, seed, start, stop):
        """Relabellings ``start:stop``: (n, 3) maxima and the block's histogram."""
        lc = self.lc
        indicators = relabellings(seed, start, stop, lc.n_analyses, self.n_group1)
        return null_block(indicators, lc.indptr, lc.indices, lc.data, lc.total, lc.bound,
                          self.level, self.cut_up, self.cut_lo, self.base_key, self.n_bins,
                          self.flat, self.shape)

    def bin_edges(self):
        """Lower edge of every histogram bin, and the upper edge of the last."""
        keys = (self.base_key + np.arange(self.n_bins + 1)).astype(np.int32) << HIST_SHIFT
        return keys.view(np.float32).astype(np.float64)


def quantile_from_histogram(hist, edges, n_values, q):
    """NiMARE's (linear) quantile ``q`` of ``n_values`` values, the top ones in ``hist``.

    Values below the histogram's lowest bin are not counted in it; returns None when the
    quantile falls among them. Inside a bin, ranks are spread evenly across its width.
    """
    position = (n_values - 1) * q
    below = n_values - hist[1:].sum()  # bin 0 also holds values rounded under its edge
    cum = below + np.concatenate([[0], np.cumsum(hist[1:])])

    def value(rank):
        if rank < below:
            return None
        j = int(np.searchsorted(cum, rank, side="right"))  # rank falls in bin j
        lo, hi = edges[j], edges[j + 1]
        return lo + (rank - cum[j - 1] + 0.5) / hist[j] * (hi - lo)

    r0 = int(np.floor(position))
    low, high = value(r0), value(min(r0 + 1, n_values - 1))
    if low is None or high is None:
        return None
    return low + (position - r0) * (high - low)


def pilot_level(lc, n_group1, voxel_thresh):
    """A absolute difference safely below the cluster-forming threshold, from a few relabellings.

    Only relabellings above it need an exp in the histogram pass. The pilot's relabellings
    are fixed, and the threshold does not depend on the level as long as it is below it.
    """
    n = PILOT_ITERS
    a = lc.sums(relabellings(PILOT_SEED, 0, n, lc.n_analyses, n_group1))
    with np.errstate(over="ignore"):
        d = np.abs((1.0 - np.exp(a)) - (1.0 - np.exp(lc.total[:, None] - a)))
    return float(np.quantile(d, max(0.0, 1.0 - 8.0 * voxel_thresh))) / 2.0


def difference_nulls(lc, n_group1, flat, shape, n_iters, voxel_thresh, vfwe_only, seed=None,
                     chunk_iters=None, store=None):
    """Voxel- and (unless ``vfwe_only``) cluster-level FWE nulls of an ALE difference.

    ``n_iters`` may be a :class:`~dmeta.montecarlo.adaptive.StoppingRule` (its columns are
    ignored): the histogram pass then stops on its own once the maximum absolute difference's
    critical value is known to the rule's precision, and the threshold is read from the
    relabellings it used; the cluster pass stops once the critical values of the maximum, of
    the cluster size and of the cluster mass all are (it never stops before the histogram
    pass, whose maxima it repeats). Its nulls record the histogram pass's relabellings
    (``attrs["threshold_iters"]``) and precision (``attrs["threshold_adaptive"]``).

    Returns
    -------
    nulls : xarray.Dataset
        ``max_stat`` (maximum absolute difference), ``max_cluster_size``, ``max_cluster_mass``
        (0 with ``vfwe_only``) over ``iteration``; ``attrs["seed"]``.
    thresh : float or None
        The cluster-forming absolute difference: NiMARE's quantile 1 - ``voxel_thresh`` of
        absolute difference over every relabelling and voxel.
    """
    rule = n_iters if isinstance(n_iters, StoppingRule) else None

    def budget(columns):
        return replace(rule, columns=tuple(columns)) if rule else n_iters

    if vfwe_only:
        plan = DifferenceNullPlan(lc, n_group1, flat, shape)
        return run_null(plan, budget(NULL_NAMES[:1]), seed, chunk_iters, store,
                        "subtraction-voxel")[0], None
    thresh = None
    for level in (pilot_level(lc, n_group1, voxel_thresh), 0.0):
        plan = DifferenceNullPlan(lc, n_group1, flat, shape, level, histogram=True)
        first, hist = run_null(plan, budget(NULL_NAMES[:1]), seed, chunk_iters, store,
                               f"subtraction-histogram-{float(level)!r}")
        seed = int(first.attrs["seed"])
        thresh = quantile_from_histogram(hist, plan.bin_edges(),
                                         first.sizes["iteration"] * lc.n_voxels,
                                         1.0 - voxel_thresh)
        if thresh is not None:
            break
    thresh = thresh or 0.0  # even the full histogram: the quantile is among the zeros
    # More relabellings move the threshold: the cluster pass of another one is another null.
    plan = DifferenceNullPlan(lc, n_group1, flat, shape, thresh)
    nulls, _ = run_null(plan, budget(NULL_NAMES), seed, chunk_iters, store,
                        f"subtraction-cluster-{float(thresh)!r}")
    if rule:
        nulls.attrs.update(threshold_iters=int(first.sizes["iteration"]),
                           threshold_adaptive=first.attrs["adaptive"])
    return nulls, float(thresh)


def subtraction_fwe_maps(result, nulls, thresh, tested, suffix):
    """p, z and logp maps of the difference's voxel- and cluster-level FWE, NiMARE's names.

    z is two-sided with the sign of the uncorrected z (0 where that is 0: outside the
    inference maps). ``thresh`` None (voxel-level null only) gives the voxel-level maps.
    """
    space = result.space
    stat = result.get_map(f"stat_{DESC}", "array").astype(np.float64)
    sign = np.sign(result.get_map(f"z_{DESC}", "array"))
    untested = np.ones(space.n_voxels, bool)
    untested[tested] = False
    stat[untested] = 0.0
    p = {f"{DESC}_level-voxel": null_to_p(np.abs(stat), nulls["max_stat"].values)}
    if thresh is not None:
        labels, sizes, masses = signed_clusters(space.to_volume(stat), thresh)
        labels = space.from_volume(labels)
        for name, values, null in (("Size", sizes, "max_cluster_size"),
                                   ("Mass", masses, "max_cluster_mass")):
            p[f"{DESC}{name}_level-cluster"] = null_to_p(values, nulls[null].values)[labels]
    maps = {}
    for name, values in p.items():
        maps[f"p_{name}_{suffix}"] = values.astype(np.float32)
        maps[f"z_{name}_{suffix}"] = (p_to_z(values, tail="two") * sign).astype(np.float32)
        maps[f"logp_{name}_{suffix}"] = p_to_logp(values).astype(np.float32)
    return maps
