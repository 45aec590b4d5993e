"""Adaptive against fixed Monte Carlo: iterations used, critical values reached, wall time.

For each dataset the ALE is fitted once; then FWECorrector runs with fixed iteration counts
(NiMARE's default of 5,000, and 10,000 as the reference) and with ``n_iters="auto"`` at each
``--precision``, every run on the same Dask cluster, interleaved with the others. Printed per
run: iterations, wall seconds, the three critical values (95th percentiles of the maximum
ALE, the largest cluster's size and its mass), their relative error (half-width of the 95%
order-statistic interval over the value), the largest distance of each critical value from
the 10,000-iteration one, and the time a fixed 5,000-iteration run took over this run's.

The reference pair (semantic knowledge against relatedness) is also run as an
ALESubtraction: relabellings, whose critical value is the 95th percentile of the maximum
absolute difference.

Both sides are dmeta doing the same kind of work (the same kernel, seed streams and blocks),
so the time ratio is the saving of stopping early; NiMARE has no adaptive mode to compare.

    python benchmarks/bench_adaptive.py                     # pain, the reference pair, 1,000
    python benchmarks/bench_adaptive.py --datasets pain --precision 0.05 0.02 --no-subtraction
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from dmeta.compute import close, connect  # noqa: E402
from dmeta.datasets import load_example  # noqa: E402
from dmeta.montecarlo.adaptive import quantile_interval, relative_error  # noqa: E402
from dmeta.montecarlo.store import NULL_NAMES  # noqa: E402
from synthetic import synthetic_foci, to_coordinate_set  # noqa: E402

DATASETS = ("pain", "semantic_knowledge", "semantic_relatedness", "synthetic1000")
SHORT = {"max_stat": "ALE", "max_cluster_size": "size", "max_cluster_mass": "mass"}


def load(name):
    if name.startswith("synthetic"):
        return to_coordinate_set(synthetic_foci(int(name[len("synthetic"):]), seed=0))
    return load_example(name)


def critical_values(nulls):
    """Each column's 95th percentile and the relative error of the estimate."""
    return {c: (quantile_interval(nulls[c].values, 0.95)[0],
                relative_error(nulls[c].values, 0.95)) for c in NULL_NAMES}


def timed(result, **params):
    start = time.perf_counter()
    corrected = dmeta.FWECorrector(**params).transform(result)
    return time.perf_counter() - start, corrected.nulls


def run(name, precisions, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = dmeta.ALE().fit(load(name))
    timed(result, seed=seed, n_iters=100)  # warm-up: compiled kernels, workers' imports
    runs = {}
    for label, params in [("fixed 5000", {"n_iters": 5000}),
                          *[(f"auto {p:g}", {"n_iters": "auto", "precision": p})
                            for p in precisions],
                          ("fixed 10000", {"n_iters": 10_000})]:
        runs[label] = timed(result, seed=seed, **params)
    reference = critical_values(runs["fixed 10000"][1])
    baseline = runs["fixed 5000"][0]
    for label, (seconds, nulls) in runs.items():
        crit = critical_values(nulls)
        shift = max(abs(crit[c][0] - reference[c][0]) / reference[c][0] for c in NULL_NAMES)
        values = "  ".join(f"{SHORT[c]} {crit[c][0]:9.4g} ±{crit[c][1]:5.3f}" for c in NULL_NAMES)
        print(f"{name:21s} {label:12s} {nulls.sizes['iteration']:6d} {seconds:8.1f}  {values}"
              f"  {shift:6.3f}  {baseline / seconds:5.2f}x", flush=True)


def subtraction(precisions, seed):
    """The reference pair's relabellings: fixed 5,000 and 10,000 against adaptive."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        groups = [load_example(name) for name in ("semantic_knowledge", "semantic_relatedness")]
        dmeta.ALESubtraction(seed=seed, n_iters=100).fit(*groups)  # warm-up
        runs = {}
        for label, params in [("fixed 5000", {"n_iters": 5000}),
                              *[(f"auto {p:g}", {"n_iters": "auto", "precision": p})
                                for p in precisions],
                              ("fixed 10000", {"n_iters": 10_000})]:
            start = time.perf_counter()
            result = dmeta.ALESubtraction(seed=seed, **params).fit(*groups)
            runs[label] = time.perf_counter() - start, result.nulls["max_stat"].values
    reference = np.quantile(runs["fixed 10000"][1], 0.95)
    baseline = runs["fixed 5000"][0]
    for label, (seconds, max_abs) in runs.items():
        value, error = np.quantile(max_abs, 0.95), relative_error(max_abs, 0.95)
        print(f"{'subtraction K-R':21s} {label:12s} {max_abs.size:6d} {seconds:8.1f}  "
              f"max|diff| {value:9.4g} ±{error:5.3f}  {abs(value - reference) / reference:6.3f}"
              f"  {baseline / seconds:5.2f}x", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--precision", nargs="+", type=float, default=[0.05])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-subtraction", action="store_true",
                        help="skip the reference pair's subtraction")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.workers} single-threaded "
          "Dask workers")
    print(f"{'dataset':21s} {'run':12s} {'iters':>6s} {'seconds':>8s}  critical values "
          "(95th percentile ± relative error)  max shift vs 10000  fixed-5000 time / this")
    client = connect("local", workers=args.workers, quiet=True, dashboard_address=":0")
    try:
        for name in args.datasets:
            run(name, args.precision, args.seed)
        if not args.no_subtraction:
            subtraction(args.precision, args.seed)
    finally:
        close(client)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
