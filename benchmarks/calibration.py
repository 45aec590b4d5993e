"""Calibration under true nulls: how often dmeta calls noise significant.

A p-value is only as good as its false-positive rate when nothing is there. Two nulls:

(a) ALE subtraction. Each bundled example named by ``--datasets`` (pain and
    semantic_knowledge, 21 analyses each) is split at random into two halves, ``--splits``
    seeded splits of each: both halves come from one population, so no voxel has a true
    difference. ``dmeta.ALESubtraction`` runs with ``tie_handling="exact"`` and ``"nimare"``
    (same seed, hence the same relabellings) and the table gives, per split and averaged
    over splits, the share of ALL in-mask voxels (as the issue measured it) with
    p < 0.05, 0.01, 0.001. A calibrated test stays near or below 5%, 1%, 0.1%; targets for
    "exact": at most 6% at p < 0.05 and 0.3% at p < 0.001 on average. ``reached`` is the
    share of in-mask voxels any analysis reaches; the others get p = 1 - 1/n in both modes.
(b) Monte Carlo FWE. ``--fwe-datasets`` meta-analyses of random foci: every analysis of the
    pain example keeps its number of foci and its sample size, and its foci fall uniformly
    on the in-mask voxels of the default mask (the model the Monte Carlo null itself draws
    from). Each is fitted with ``dmeta.ALE()`` and corrected with
    ``dmeta.FWECorrector(method="montecarlo", voxel_thresh=0.001)``; the table gives the
    share of meta-analyses with any voxel at FWE p < 0.05 at the voxel, cluster-size and
    cluster-mass levels, with Clopper-Pearson 95% intervals. A calibrated correction has
    5% inside each interval. ``--fwe-iters auto`` corrects with adaptive nulls
    (``--fwe-precision``) and also prints the iterations they used.

Run from the repository root (2 cores: 4-7 minutes with the defaults):

    python benchmarks/calibration.py
    python benchmarks/calibration.py --splits 3 --sub-iters 2000 --fwe-iters 500
    python benchmarks/calibration.py --skip fwe
    python benchmarks/calibration.py --skip subtraction --fwe-iters auto
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from dmeta.clusters import supra_threshold_clusters  # noqa: E402
from dmeta.compute import session  # noqa: E402
from dmeta.space import Space  # noqa: E402
from dmeta.stats import null_to_p  # noqa: E402
from dmeta.subtraction.estimator import TIE_HANDLING  # noqa: E402
from dmeta.subtraction.permutation import pooled_csr  # noqa: E402

ALPHAS = (0.05, 0.01, 0.001)
FWE_ALPHA = 0.05


# ---------------------------------------------------------------------------- (a) subtraction
def random_halves(cset, n_splits, seed):
    """``n_splits`` seeded random splits of ``cset`` into halves (the smaller one first)."""
    for split in range(n_splits):
        ids = np.random.default_rng([seed, split]).permutation(cset.ids).tolist()
        half = len(ids) // 2
        yield split, cset.select(ids[:half]), cset.select(ids[half:])


def significant_share(p, alphas=ALPHAS):
    """Share of ``p`` below each alpha.

    The p map is float32: comparing with float32(alpha) keeps a p exactly at alpha (such as
    2 x 25 / 5000 = 0.01) out, where a float64 alpha would let its rounding decide.
    """
    return {f"p<{a:g}": float(np.mean(p < np.float32(a))) for a in alphas}


def reached_share(estimator):
    """Share of in-mask voxels at least one analysis's kernel reaches."""
    ma = pooled_csr(estimator.ma1_, estimator.ma2_).tocsc()
    return float(np.mean(np.diff(ma.indptr) > 0))


def subtraction_rates(cset, n_splits, n_iters, seed, modes=TIE_HANDLING):
    """One row per (split, tie mode): the share of in-mask voxels below each alpha."""
    rows = []
    for split, half1, half2 in random_halves(cset, n_splits, seed):
        perm_seed = int(np.random.default_rng([seed, split, 1]).integers(2**31))
        for mode in modes:
            fit = dmeta.ALESubtraction(n_iters=n_iters, seed=perm_seed,
                                       tie_handling=mode).fit(half1, half2)
            rows.append({"split": split, "mode": mode, "reached": reached_share(fit.estimator),
                         **significant_share(fit.get_map("p_desc-group1MinusGroup2", "array"))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- (b) FWE
def random_foci_like(template, space, rng):
    """``template``'s analyses (ids, sample sizes, foci counts) with foci at random voxels.

    Foci fall uniformly on ``space``'s in-mask voxels, as the Monte Carlo null draws them.
    """
    counts = template.foci.groupby("id").size().reindex(template.ids).to_numpy()
    voxels = space.ijk[rng.integers(space.n_voxels, size=counts.sum())]
    foci = pd.DataFrame(space.ijk_to_mm(voxels), columns=["x", "y", "z"])
    foci.insert(0, "id", np.repeat(template.ids, counts))
    return dmeta.CoordinateSet(template.analyses, foci, source="random foci")


def familywise_p(corrected):
    """Smallest FWE p at each level: that of the largest statistic, cluster and mass.

    Computed as FWECorrector computes every voxel's (``null_to_p`` of the observed value
    against the per-iteration maxima), so "any voxel significant" is decided on the exact p,
    not on a z rounded from it.
    """
    nulls = corrected.nulls
    stat = corrected.get_map("stat", "array")
    _, sizes, masses = supra_threshold_clusters(corrected.space.to_volume(stat),
                                                nulls.attrs["cluster_forming_stat"])
    observed = {"voxel": (stat.max(), "max_stat"),
                "cluster-size": (sizes.max(), "max_cluster_size"),
                "cluster-mass": (masses.max(), "max_cluster_mass")}
    return {level: float(null_to_p(value, nulls[name].values))
            for level, (value, name) in observed.items()}


def fwe_rates(template, n_datasets, n_iters, seed, voxel_thresh=0.001, log=print,
              precision=0.05):
    """One row per random-foci meta-analysis: its smallest FWE p at each level (and the
    iterations its null used)."""
    space = Space.from_mask()
    rows = []
    start = time.perf_counter()
    for d in range(n_datasets):
        rng = np.random.default_rng([seed, d])
        cset = random_foci_like(template, space, rng)
        corrector = dmeta.FWECorrector(method="montecarlo", voxel_thresh=voxel_thresh,
                                       n_iters=n_iters, seed=int(rng.integers(2**31)),
                                       precision=precision)
        corrected = corrector.transform(dmeta.ALE().fit(cset))
        rows.append({**familywise_p(corrected),
                     "iterations": corrected.nulls.sizes["iteration"]})
        if (d + 1) % 25 == 0:
            log(f"  {d + 1}/{n_datasets} meta-analyses, "
                f"{(time.perf_counter() - start) / (d + 1):.2f} s each")
    return pd.DataFrame(rows)


def false_positive_summary(p_table, alpha=FWE_ALPHA):
    """Per level: meta-analyses with p < alpha, their share, Clopper-Pearson 95% interval,
    and the two-sided binomial test of a rate of ``alpha``."""
    rows = []
    for level in p_table.columns:
        k, n = int((p_table[level] < alpha).sum()), len(p_table)
        test = stats.binomtest(k, n, alpha)
        low, high = test.proportion_ci(0.95, method="exact")
        rows.append({"level": level, "significant": f"{k}/{n}", "rate": k / n,
                     "95% CI": f"[{low:.3f}, {high:.3f}]", "binomial p": test.pvalue,
                     f"{alpha:g} in CI": low <= alpha <= high})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- report
def _percent(x):
    return f"{100 * x:.3f}%"


def run_subtraction(args):
    """(a): per-split and mean shares of in-mask voxels below each alpha, per tie mode."""
    print(f"(a) ALE subtraction under the null: random halves, {args.splits} splits per "
          f"dataset, {args.sub_iters} permutations; shares of ALL in-mask voxels", flush=True)
    tables = []
    for name in args.datasets:
        start = time.perf_counter()
        table = subtraction_rates(dmeta.datasets.load_example(name), args.splits,
                                  args.sub_iters, args.seed)
        print(f"  {name}: {time.perf_counter() - start:.0f} s", flush=True)
        tables.append(table.assign(dataset=name))
    table = pd.concat(tables)
    shares = ["reached", *(f"p<{a:g}" for a in ALPHAS)]
    formats = dict.fromkeys(shares, _percent)
    print(table[["dataset", "split", "mode", *shares]].to_string(index=False,
                                                                  formatters=formats))
    print("\nmean over splits (targets for exact: p<0.05 <= 6%, p<0.001 <= 0.3%):")
    print(table.groupby(["dataset", "mode"])[shares].mean().to_string(formatters=formats))
    print("\nmean over the splits of every dataset:")
    print(table.groupby("mode")[shares].mean().to_string(formatters=formats))


def run_fwe(args):
    """(b): false-positive rates of Monte Carlo FWE on random-foci meta-analyses."""
    template = dmeta.datasets.load_example("pain")
    print(f"\n(b) Monte Carlo FWE under the null: {args.fwe_datasets} random-foci "
          f"meta-analyses shaped like pain ({len(template.ids)} analyses, "
          f"{len(template.foci)} foci), {args.fwe_iters} iterations each, "
          f"cluster-forming p < 0.001, FWE p < {FWE_ALPHA}", flush=True)
    start = time.perf_counter()
    p_table = fwe_rates(template, args.fwe_datasets, args.fwe_iters, args.seed,
                        precision=args.fwe_precision)
    elapsed = time.perf_counter() - start
    print(f"  {elapsed:.0f} s ({elapsed / args.fwe_datasets:.2f} s per ALE fit and FWE)")
    used = p_table.pop("iterations")
    if args.fwe_iters == "auto":
        print(f"  iterations used (precision {args.fwe_precision:g}): median "
              f"{used.median():.0f}, range {used.min()} to {used.max()}")
    summary = false_positive_summary(p_table)
    print(summary.to_string(index=False, formatters={"rate": _percent,
                                                      "binomial p": "{:.3f}".format}))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["pain", "semantic_knowledge"],
                        help="bundled examples split at random in (a)")
    parser.add_argument("--splits", type=int, default=10, help="random splits per dataset (a)")
    parser.add_argument("--sub-iters", type=int, default=5000,
                        help="permutations per subtraction (a); p < 0.001 needs >= 2000")
    parser.add_argument("--fwe-datasets", type=int, default=200,
                        help="random-foci meta-analyses (b)")
    parser.add_argument("--fwe-iters", type=lambda v: v if v == "auto" else int(v),
                        default=1000,
                        help="Monte Carlo iterations per FWE correction, or auto (b)")
    parser.add_argument("--fwe-precision", type=float, default=0.05,
                        help="precision of adaptive nulls with --fwe-iters auto (b)")
    parser.add_argument("--seed", type=int, default=0, help="root seed of every draw")
    parser.add_argument("--workers", type=int, default=None,
                        help="local Dask workers (default: one per core)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["subtraction", "fwe"])
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print("python", *sys.argv, flush=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, seed {args.seed}",
          flush=True)
    start = time.perf_counter()
    with session("local", workers=args.workers, quiet=True, dashboard_address=":0"):
        if "subtraction" not in args.skip:
            run_subtraction(args)
        if "fwe" not in args.skip:
            run_fwe(args)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
