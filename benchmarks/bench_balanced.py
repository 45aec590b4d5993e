"""Balanced ALE subtraction speed and agreement: dmeta against NiMARE 0.22.1, in one process.

Knowledge vs relatedness (21 vs 16 Sleuth experiments, every focus), both null methods, the
same ``n_iters``, ``n_subsamples`` and ``difference_iterations`` (NiMARE's default 1000,
whose pairs of subsamples are most of the work) for both tools, timed end to end (modeled
activation, probability maps and their null, observed difference, null of its extremes,
maps). dmeta runs on one single-threaded Dask worker, NiMARE with ``n_cores=1``; each first
runs once at tiny counts, so imports, numba's cache and both tools' grey-matter masks are
warm. A ratio is only printed between timings of equal work (``bench_fwe.ratio``).

Agreement: the two tools draw different subsamples and nulls, so the maps agree
statistically: r of the maps that average many draws, and max |dz| of the z maps (which
hinge on a quantile of ``n_iters`` null extremes, so differ where a voxel is near it).

    python benchmarks/bench_balanced.py [--n-iters 20] [--n-subsamples 50]
        [--difference-iterations 1000] [--repeats 1]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import numpy as np  # noqa: E402

import dmeta  # noqa: E402
from bench_fwe import announce_run, local_cluster, measure, ratio  # noqa: E402
from bench_subtraction import check_same_groups  # noqa: E402
from dmeta.datasets import example_path  # noqa: E402
from dmeta.subtraction.balanced import DESC, BalancedALESubtraction  # noqa: E402

NIMARE = "NiMARE n_cores=1"
DMETA = "dmeta Dask 1 worker x 1 thread"
NAMES = ("semantic_knowledge", "semantic_relatedness")
AVERAGED = (f"stat_{DESC}", "prob_desc-group1", "prob_desc-group2", "stat_desc-conjunction")


def runners(null_method, csets, datasets, counts):
    """dmeta's and NiMARE's fits at ``n_iters`` = n (other counts fixed); keep the last."""
    from nimare.meta.cbma.ale import BalancedALESubtraction as NiMAREBalanced

    mask = dmeta.space.Space.from_mask().mask_img
    last = {}

    def ours(n):
        last[DMETA] = BalancedALESubtraction(null_method=null_method, n_iters=n, seed=0,
                                             **counts).fit(*csets)

    def theirs(n):
        last[NIMARE] = NiMAREBalanced(null_method=null_method, n_iters=n, random_state=0,
                                      mask=mask, **counts).fit(*datasets)

    tiny = {"n_subsamples": 2, "difference_iterations": 2}
    BalancedALESubtraction(null_method=null_method, n_iters=2, seed=0, **tiny).fit(*csets)
    NiMAREBalanced(null_method=null_method, n_iters=2, random_state=0, mask=mask,
                   **tiny).fit(*datasets)
    return {NIMARE: theirs, DMETA: ours}, last


def agreement(ours, theirs):
    """r of the averaged maps and max |dz| of the z maps, as text."""
    parts = []
    for name in AVERAGED:
        r = np.corrcoef(ours.get_map(name, "array"), np.asarray(theirs.maps[name], float))[0, 1]
        parts.append(f"r({name}) = {r:.4f}")
    z = ours.get_map(f"z_{DESC}", "array")
    dz = np.abs(z - np.asarray(theirs.maps[f"z_{DESC}"], float))
    parts.append(f"max |dz| = {dz.max():.3f} (|z| > 0: dmeta {int((z != 0).sum())}, NiMARE "
                 f"{int((theirs.maps[f'z_{DESC}'] != 0).sum())} voxels)")
    return "; ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-iters", type=int, default=20,
                        help="null datasets (balanced-difference extremes and clusters)")
    parser.add_argument("--n-subsamples", type=int, default=50,
                        help="subsamples per group for the probability maps")
    parser.add_argument("--difference-iterations", type=int, default=1000,
                        help="pairs of subsamples per balanced difference")
    parser.add_argument("--repeats", type=int, default=1,
                        help="best of this many interleaved runs per tool")
    args = parser.parse_args(argv)
    announce_run()
    from nimare.io import convert_sleuth_to_dataset

    csets = [dmeta.datasets.load_example(n) for n in NAMES]
    datasets = [convert_sleuth_to_dataset(str(example_path(n))) for n in NAMES]
    check_same_groups(csets, datasets)
    counts = {"n_subsamples": args.n_subsamples,
              "difference_iterations": args.difference_iterations}
    rows = []
    cluster, client = local_cluster(1)
    with cluster, client:
        for null_method in ("random-foci", "label-permutation"):
            workload = (f"knowledge vs relatedness, {null_method}, n_subsamples="
                        f"{args.n_subsamples}, difference_iterations="
                        f"{args.difference_iterations}")
            print(workload, flush=True)
            run, last = runners(null_method, csets, datasets, counts)
            timings = measure(workload, run, [args.n_iters], args.repeats)
            rows.append((null_method, timings[NIMARE], None))
            rows.append((null_method, timings[DMETA], ratio(timings[NIMARE], timings[DMETA])))
            print("  agreement:", agreement(last[DMETA], last[NIMARE]), flush=True)
    print()
    print(f"{'null_method':<18} {'timing':<32} {'n_iters':>7} {'seconds':>9} {'ratio':>8}")
    for null_method, t, r in rows:
        [(n, seconds)] = t.seconds.items()
        shown = "" if r is None else f"{r:7.1f}x"
        print(f"{null_method:<18} {t.label:<32} {n:>7} {seconds:9.1f} {shown:>8}")
    print("ratio: NiMARE's time over dmeta's, one core each, same data and counts.")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
