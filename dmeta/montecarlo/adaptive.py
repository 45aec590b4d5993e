"""Monte Carlo that stops at a stated precision instead of a fixed iteration count.

A result uses a null through a few critical values, upper quantiles of its columns (the 95th
percentile of the maximum statistic, of the largest cluster's size and mass). After ``n``
iterations, the order statistics ``X_(l) <= X_(u)`` with ``l`` and ``u`` taken from the
Binomial(n, q) distribution bracket the true q-quantile with probability at least 95%,
whatever the null's distribution (the distribution-free interval for a quantile: the count
of iterations below the quantile is Binomial(n, q)). A run stops at the first checkpoint
where every critical value's interval has a half-width of at most ``precision`` times the
value (the value is known to within +-``precision``, relatively), or at ``max_iters``.

Checkpoints are multiples of :data:`STEP` iterations (and ``max_iters``), never block
boundaries, and the rule reads only the first ``n`` iterations: the stopping point and the
null depend on the seed alone, not on the block size, the number of workers or the order in
which blocks finish, and a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy import stats

from dmeta.errors import InputError
from dmeta.validation import check_p, check_positive_int

#: Iterations between two looks at the null; blocks of an adaptive run divide it.
STEP = 100
#: Coverage of the interval around each critical value.
CONFIDENCE = 0.95
#: Defaults of the public parameters.
PRECISION = 0.05
MAX_ITERS = 20_000


def quantile_interval(values, q, confidence=CONFIDENCE):
    """The q-quantile of ``values`` and a distribution-free interval around it.

    Returns ``(estimate, lower, upper)``: the linear-interpolation quantile (as
    ``numpy.quantile``) and the order statistics whose ranks come from the Binomial(n, q)
    quantiles at (1 - confidence) / 2 and (1 + confidence) / 2. When ``n`` is too small
    for an interval at this confidence, the missing bound is infinite.
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    tail = (1.0 - confidence) / 2.0
    low_rank = int(stats.binom.ppf(tail, n, q))        # 1-based rank of the lower bound
    high_rank = int(stats.binom.ppf(1.0 - tail, n, q)) + 1
    lower = x[low_rank - 1] if low_rank >= 1 else -np.inf
    upper = x[high_rank - 1] if high_rank <= n else np.inf
    return float(np.quantile(x, q)), float(lower), float(upper)


def relative_error(values, q, confidence=CONFIDENCE):
    """Half-width of :func:`quantile_interval` over ``|estimate|``: the relative Monte Carlo
    error of the quantile (0 for an interval of one value, such as a column always 0)."""
    estimate, lower, upper = quantile_interval(values, q, confidence)
    half_width = (upper - lower) / 2.0
    if half_width == 0:
        return 0.0
    return float(half_width / abs(estimate)) if estimate else np.inf


@dataclass(frozen=True)
class StoppingRule:
    """When an adaptive Monte Carlo run has enough iterations.

    Parameters
    ----------
    precision : float
        Largest accepted half-width of a critical value's interval, relative to the value,
        in (0, 1).
    max_iters : int
        Iterations at which the run stops whatever its precision.
    columns : tuple of str
        Null columns (``max_stat``, ``max_cluster_size``, ``max_cluster_mass``) whose
        critical values the result uses.
    q : float
        Quantile the critical values sit at (1 - alpha).
    min_iters : int
        Iterations before the first look (rounded up to a multiple of :data:`STEP`), for a
        result that needs more than its critical values: a permutation p-value, for one,
        cannot fall below 1 / n.
    """

    precision: float = PRECISION
    max_iters: int = MAX_ITERS
    columns: tuple = ("max_stat",)
    q: float = 0.95
    min_iters: int = STEP
    #: Whether the rule reads each block's histogram (the engine then keeps them for it).
    reads_histograms: ClassVar[bool] = False

    def checkpoints(self, start=0):
        """Iteration counts the rule looks at, after ``start``."""
        first = max(STEP, -(-self.min_iters // STEP) * STEP)
        points = list(range(first, self.max_iters, STEP)) + [self.max_iters]
        return [n for n in points if n > start]

    def achieved(self, nulls, n):
        """Relative error of each watched column's critical value over the first ``n``
        iterations (:func:`relative_error`)."""
        return {c: relative_error(nulls[c][:n], self.q) for c in self.columns}

    def info(self, nulls, n):
        """What a null stopped by this rule records (``attrs["adaptive"]``)."""
        achieved = self.achieved(nulls, n)
        return {"precision": self.precision, "max_iters": self.max_iters, "quantile": self.q,
                "min_iters": self.checkpoints()[0], "achieved": achieved,
                "converged": max(achieved.values()) <= self.precision}

    def stop(self, nulls, available, after=0):
        """The first checkpoint in ``(after, available]`` where the rule is met, else None.

        ``nulls`` maps column names to arrays holding at least ``available`` iterations.
        """
        for n in self.checkpoints(after):
            if n > available:
                return None
            if n == self.max_iters or max(self.achieved(nulls, n).values()) <= self.precision:
                return n
        return None

    def check_block(self, chunk_iters, where="the store"):
        """InputError unless blocks of ``chunk_iters`` land on every checkpoint."""
        if STEP % chunk_iters:
            raise InputError(
                f"n_iters='auto' needs blocks of a divisor of {STEP} iterations, so that the "
                f"run can stop at every multiple of {STEP}; {where} has blocks of {chunk_iters} "
                "(set chunk_iters, or use another store)")
        if self.max_iters < chunk_iters:
            raise InputError(f"max_iters must be at least one block ({chunk_iters} "
                             f"iterations), got {self.max_iters}")


def iteration_budget(n_iters, precision=PRECISION, max_iters=MAX_ITERS, columns=("max_stat",),
                     q=0.95):
    """``n_iters`` checked: a positive int, or for ``"auto"`` a :class:`StoppingRule`."""
    if isinstance(n_iters, str) and n_iters == "auto":
        check_p("precision", precision)
        check_positive_int("max_iters", max_iters)
        return StoppingRule(float(precision), int(max_iters), tuple(columns), float(q))
    if not (isinstance(n_iters, (int, np.integer)) and not isinstance(n_iters, bool)
            and n_iters > 0):
        raise InputError(f"n_iters must be a positive integer or 'auto', got {n_iters!r}")
    return int(n_iters)


@dataclass(frozen=True)
class PooledQuantileRule(StoppingRule):
    """When a voxelwise null (a histogram pooling every null value of every iteration) has
    enough iterations for its upper ``q``-quantile.

    Values within an iteration are correlated (neighbouring voxels), so a binomial interval
    over all pooled values would be overconfident. Iterations are independent, though: each
    batch of :data:`STEP` consecutive iterations gives its own quantile, read from the sum of
    its blocks' histograms (blocks divide :data:`STEP`), and the batch quantiles are
    independent draws. The interval is the distribution-free interval of their median
    (:func:`quantile_interval` at 0.5), its half-width taken relative to the pooled quantile,
    the value the result uses. At least 6 batches are needed for a finite interval.

    Parameters
    ----------
    precision, max_iters : as :class:`StoppingRule`
    q : float
        Quantile of the pooled null (1 - the uncorrected p whose critical value is watched).
    bins : array of float
        Bin centres of the histogram (``ALE.bins_``).
    """

    columns: tuple = ()
    q: float = 0.999
    bins: object = field(default=None, compare=False, repr=False)
    reads_histograms: ClassVar[bool] = True

    #: Name of the one critical value in ``achieved``.
    NAME = "pooled_quantile"

    def threshold(self, hist):
        """The statistic whose upper-tail share of ``hist`` first falls to 1 - q."""
        from dmeta.approximate_null import hist_to_threshold

        return float(hist_to_threshold(hist, np.asarray(self.bins), 1.0 - self.q))

    def achieved(self, nulls, n):
        """Relative half-width of the batch quantiles' median interval over the first ``n``
        iterations, against the pooled quantile.

        ``nulls`` holds ``hist``, each block's histogram (block x bin), and ``chunk_iters``,
        the block size, as the engine keeps them.
        """
        hist, chunk = np.asarray(nulls["hist"]), nulls["chunk_iters"]
        blocks, per_batch, n_batches = -(-n // chunk), STEP // chunk, n // STEP
        batches = hist[: n_batches * per_batch].reshape(n_batches, per_batch, -1).sum(axis=1)
        quantiles = [self.threshold(b) for b in batches]
        pooled = self.threshold(hist[:blocks].sum(axis=0))
        if not quantiles:
            return {self.NAME: np.inf}
        _, lower, upper = quantile_interval(quantiles, 0.5)
        half_width = (upper - lower) / 2.0
        if half_width == 0:
            return {self.NAME: 0.0}
        return {self.NAME: float(half_width / pooled) if pooled else np.inf}


def describe(info, n_iters, unit="iterations", watched=None):
    """One methods sentence on where an adaptive run stopped ("" for a fixed count).

    ``info`` is a null's ``attrs["adaptive"]``; ``watched`` names the critical values in
    words (default: the null's percentiles).
    """
    if not info:
        return ""
    watched = watched or (f"every critical value ({info['quantile'] * 100:g}th percentiles of "
                          "the null)")
    reached = max(info["achieved"].values())
    start = info.get("min_iters", STEP)
    first = f"first multiple of {STEP}" + (f" from {start}" if start > STEP else "")
    if info["converged"]:
        return (f" The number of {unit} was set adaptively: the run stopped at {n_iters}, the "
                f"{first} at which the {CONFIDENCE:.0%} order-statistic "
                f"interval of {watched} had a half-width of at most {info['precision']:.0%} of "
                f"the value ({reached:.3f}).")
    return (f" The number of {unit} was set adaptively but reached its limit of "
            f"{info['max_iters']}, where the {CONFIDENCE:.0%} interval of {watched} had a "
            f"relative half-width of {reached:.3f}, above the {info['precision']:g} asked for.")


def summary(record, unit="iterations"):
    """"stopped at 2300 iterations (limit 20000): relative precision 0.048 <= 0.05" from a
    record with :func:`adaptive_record`'s keys and ``n_iters``; None for a fixed count."""
    if not record or record.get("n_iters_requested") != "auto":
        return None
    reached, asked = record["achieved_precision"], record["precision"]
    if record["converged"]:
        return (f"stopped at {record['n_iters']} {unit} (limit {record['max_iters']}): "
                f"relative precision {reached:.3f} <= {asked:g}")
    return (f"reached its limit of {record['n_iters']} {unit}: relative precision "
            f"{reached:.3f} > {asked:g} asked for")


def threshold_record(record):
    """A subtraction FWE record's histogram pass (the cluster-forming threshold) as a record
    of its own, or None when it has none."""
    if not record or record.get("threshold_n_iters") is None:
        return None
    return {**record, "n_iters": record["threshold_n_iters"],
            "achieved_precision": record["threshold_achieved_precision"],
            "converged": record["threshold_converged"]}


def adaptive_record(nulls):
    """What a corrector records of an adaptive null (nothing for a fixed one)."""
    info = nulls.attrs.get("adaptive")
    if not info:
        return {}
    return {"n_iters_requested": "auto", "precision": info["precision"],
            "max_iters": info["max_iters"],
            "achieved_precision": float(max(info["achieved"].values())),
            "converged": bool(info["converged"])}
