"""Relabellings of the pooled analyses, and the uncorrected test they give, as Dask work.

With the pooled analyses' L = log(1 - MA) and a relabelling's group-1 indicator row P, group
1's log(1 - ALE) is ``a = P @ L`` and group 2's is ``T - a`` (T: every analysis). The
difference ALE1 - ALE2 = exp(T - a) - exp(a) falls as ``a`` grows, so "permuted difference >=
observed" is "a <= a threshold" fixed per voxel before any permutation runs: the hot loop
(``dmeta.subtraction._kernel``) is sums and comparisons. Thresholds are found once by
bisection on the difference exactly as NiMARE evaluates it (float64), against whichever
observed difference the caller gives: the same float64 arithmetic applied to the observed
grouping's own sum (a relabelling reproducing it ties, and counts in both tails), or
NiMARE's float32 map (ties fall on the side NiMARE counts them).

Relabelling ``i`` comes from a generator seeded with ``(seed, i)``; a voxel's sum runs over
its analyses in a fixed order. Counts are therefore the same for any block sizes and workers.
"""

import hashlib

import numpy as np
from scipy import sparse

from dmeta.compute import run_blocks
from dmeta.errors import InputError
from dmeta.montecarlo.adaptive import STEP, StoppingRule
from dmeta.seeds import settle_seed
from dmeta.subtraction._kernel import group_sums, tail_counts
from dmeta.validation import check_positive_int

DEFAULT_CHUNK_ITERS = 500


def relabellings(seed, start, stop, n_total, n_group1):
    """Group-1 indicators (analysis x permutation, uint8 0/1) of relabellings start:stop.

    Stored analysis-major so the hot loop reads one analysis's row over contiguous
    permutations; bytes rather than floats, so a row is an eighth of the memory traffic (20%
    faster on the reference pair; 1 x value is value, so the sums are the same bits).
    """
    out = np.zeros((n_total, stop - start), dtype=np.uint8)
    for col, it in enumerate(range(start, stop)):
        members = np.random.default_rng([seed, it]).permutation(n_total)[:n_group1]
        out[members, col] = 1
    return out


class LogComplement:
    """log(1 - MA) of the pooled analyses on some voxels, voxel-major (CSC) for the loops.

    Parameters
    ----------
    ma_csr : scipy.sparse.csr_matrix
        Pooled (analysis x in-mask voxel) MA values, group 1 first.
    voxels : array of int, optional
        In-mask voxels to keep (default: all).
    """

    def __init__(self, ma_csr, voxels=None):
        block = ma_csr.tocsc() if voxels is None else ma_csr[:, voxels].tocsc()
        block.sort_indices()
        self.indptr = block.indptr.astype(np.int64)
        self.indices = block.indices.astype(np.int64)
        # float32 log1p, as NiMARE and dmeta.ale take it, then summed in float64.
        self.data = np.log1p(-block.data.astype(np.float32)).astype(np.float64)
        self.n_analyses, self.n_voxels = block.shape
        self.voxels = np.arange(self.n_voxels) if voxels is None else np.asarray(voxels)
        every = np.ones((self.n_analyses, 1))
        self.total = group_sums(every, self.indptr, self.indices, self.data)[:, 0]
        # No difference exceeds the pooled ALE (the margin covers float64 rounding).
        self.bound = -np.expm1(self.total) + 1e-15

    def sums(self, indicators):
        """(voxel x column) group-1 log(1 - ALE) of given indicator columns."""
        return group_sums(indicators, self.indptr, self.indices, self.data)

    def fingerprint(self):
        """Hash of the values and voxels, for stores of nulls computed from them."""
        digest = hashlib.sha256()
        for array in (self.indptr, self.indices, self.data, self.voxels):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def _permuted_counts(seed, start, stop, n_group1, lc, upper_thresh, lower_thresh):
    indicators = relabellings(seed, start, stop, lc.n_analyses, n_group1)
    return tail_counts(indicators, lc.indptr, lc.indices, lc.data, upper_thresh, lower_thresh,
                       lc.total, lc.bound)


def permutation_tail_counts(lc, n_group1, upper_thresh, lower_thresh, n_iters, seed=None,
                            chunk_iters=None):
    """Tail counts per voxel and maximum absolute difference per relabelling, as Dask tasks.

    One task per block of relabellings (over every voxel: a task of a few tens of
    milliseconds already pays its scheduling); counts are added up as tasks finish. The
    log(1 - MA) values and the thresholds go to the workers once.

    With a :class:`~dmeta.montecarlo.adaptive.StoppingRule`, blocks are added to the counts
    in index order only (a block finished ahead of a gap waits for it), and the rule looks
    at the maxima of the relabellings added so far at each of its checkpoints: the counts
    stop at the first checkpoint where the rule is met, and the blocks beyond it are
    cancelled (or dropped, if already finished). Where it stops depends on the seed alone.

    Parameters
    ----------
    lc : LogComplement
    n_group1 : int
        Analyses in group 1.
    upper_thresh, lower_thresh : (n_voxels,) float
        From :func:`tail_thresholds`.
    n_iters : int or StoppingRule
        Relabellings, or the rule (watching ``max_stat``) that decides how many.
    seed : int, optional
        Root seed; None draws one.
    chunk_iters : int, optional
        Relabellings per task (default up to 500; with a rule, 100, and it must divide 100).

    Returns
    -------
    upper, lower : (n_voxels,) int64
        Relabellings whose difference is >= / <= the observed one.
    max_abs : (n,) float64
        Each relabelling's maximum absolute difference (the voxel-level FWE null), for the
        ``n`` relabellings counted.
    seed : int
        The root seed used.
    """
    rule = n_iters if isinstance(n_iters, StoppingRule) else None
    if rule is None:
        check_positive_int("n_iters", n_iters)
    budget = rule.max_iters if rule else n_iters
    chunk_iters = chunk_iters or (STEP if rule else min(DEFAULT_CHUNK_ITERS, n_iters))
    check_positive_int("chunk_iters", chunk_iters)
    if rule:
        rule.check_block(chunk_iters, "chunk_iters")
    seed = settle_seed(seed)
    tasks = {start: (seed, start, min(start + chunk_iters, budget), n_group1, lc,
                     upper_thresh, lower_thresh)
             for start in range(0, budget, chunk_iters)}
    tally = _Tally(lc.n_voxels, budget, rule)

    def add(start, result):
        if tally.add(start, result):
            return [s for s in tasks if s >= tally.n_iters]
        return ()

    run_blocks(_permuted_counts, tasks, add, shared=(lc, upper_thresh, lower_thresh),
               desc="Permutations", in_order=rule is not None)
    n = tally.n_iters if rule else budget
    return tally.counts[0], tally.counts[1], tally.max_abs[:n], seed


class _Tally:
    """Blocks of relabellings added up: as they arrive, or (with a rule) in index order up to
    the checkpoint where the rule stops the run."""

    def __init__(self, n_voxels, budget, rule):
        self.counts = np.zeros((2, n_voxels), dtype=np.int64)
        self.max_abs = np.zeros(budget)
        self.rule = rule
        self.held = {}        # blocks finished beyond the contiguous prefix
        self.prefix = 0       # relabellings added without a gap
        self.n_iters = None   # where the rule stopped the run

    def add(self, start, result):
        """Add one finished block; True once the rule stops the run."""
        if self.rule is None:
            self._take(start, result)
            return False
        if self.n_iters is not None:
            return False
        self.held[start] = result
        while self.prefix in self.held:
            looked = self.prefix
            self.prefix += self._take(looked, self.held.pop(looked))
            stop = self.rule.stop({"max_stat": self.max_abs}, self.prefix, looked)
            if stop is not None:
                # Blocks divide the checkpoints' spacing: a checkpoint is a block's end.
                assert stop == self.prefix
                self.n_iters = stop
                self.held.clear()
                return True
        return False

    def _take(self, start, result):
        """Add a block's counts and maxima; returns its number of relabellings."""
        block, maxima = result
        self.counts += block
        self.max_abs[start:start + maxima.size] = maxima
        return maxima.size


def pooled_csr(ma1, ma2):
    """Stack two groups' MA matrices (group 1 first) after checking they share a space."""
    if ma1.space != ma2.space:
        raise InputError(
            f"the two groups are in different spaces ({ma1.space!r} vs {ma2.space!r}); "
            "fit both with the same mask"
        )
    return sparse.vstack([ma1.matrix, ma2.matrix], format="csr")
