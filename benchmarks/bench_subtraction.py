"""ALE subtraction speed: dmeta against NiMARE 0.22.1 on equal work, in one process.

Both tools get the same foci (every focus: each keeps those outside the mask), the same
groups and the same permutation count, and are timed end to end (group ALEs, permutations,
maps); a ratio is only printed between such timings (``bench_fwe.ratio`` refuses any other).
dmeta runs on one single-threaded Dask worker (``tie_handling="nimare"``, NiMARE's
statistic), NiMARE with ``n_cores=1``.

(a) knowledge vs relatedness (21 vs 16 Sleuth experiments) at ``--n-iters`` permutations.
(b) 500 vs 400 synthetic analyses (benchmarks/synthetic.py) at ``--synthetic-iters``
    permutations, and the dmeta worker's peak memory. End to end rather than a slope between
    two counts: dmeta's fixed costs (two 400-500-analysis ALE fits, about 20 s) drift by
    seconds, more than the permutations NiMARE can run in reasonable time would take it.

    python benchmarks/bench_subtraction.py [--n-iters 5000] [--synthetic-iters 1000]
        [--repeats 1] [--skip-synthetic]
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from bench_fwe import UnequalWork, _peak_rss_mb, announce_run, local_cluster, measure, ratio  # noqa: E402
from dmeta.datasets import example_path  # noqa: E402
from synthetic import synthetic_foci, to_coordinate_set, to_nimare_dataset  # noqa: E402

NIMARE = "NiMARE n_cores=1"
DMETA = "dmeta Dask 1 worker x 1 thread"


def check_same_groups(csets, datasets):
    """Refuse to compare unless each group holds the same analyses and foci in both tools."""
    for label, cset, dset in zip(("group 1", "group 2"), csets, datasets):
        ours, theirs = (len(cset.ids), len(cset.foci)), (len(dset.ids), len(dset.coordinates))
        if ours != theirs:
            raise UnequalWork(f"{label}: dmeta has {ours[0]} analyses and {ours[1]} foci, "
                              f"NiMARE {theirs[0]} and {theirs[1]}")


def runners(csets, datasets):
    """dmeta and NiMARE subtractions of group 1 minus group 2, ``n`` permutations each."""
    from nimare.meta.cbma import ALESubtraction

    check_same_groups(csets, datasets)
    mask = dmeta.space.Space.from_mask().mask_img

    def ours(n):
        dmeta.ALESubtraction(n_iters=n, seed=0, tie_handling="nimare").fit(*csets)

    def theirs(n):
        ALESubtraction(n_iters=n, n_cores=1, mask=mask).fit(*datasets)

    ours(10)  # warm up: imports and numba's cache on the worker
    return {NIMARE: theirs, DMETA: ours}


def compare(case, workload, csets, datasets, n_iters, repeats):
    """Table rows: NiMARE's end-to-end timing, then dmeta's with NiMARE's cost over dmeta's."""
    print(workload, flush=True)
    timings = measure(workload, runners(csets, datasets), [n_iters], repeats)
    return [(case, timings[NIMARE], None),
            (case, timings[DMETA], ratio(timings[NIMARE], timings[DMETA]))]


def case_example(args):
    """(a) knowledge vs relatedness."""
    from nimare.io import convert_sleuth_to_dataset

    names = ("semantic_knowledge", "semantic_relatedness")
    csets = [dmeta.datasets.load_example(n) for n in names]
    datasets = [convert_sleuth_to_dataset(str(example_path(n))) for n in names]
    return compare("(a)", "knowledge vs relatedness", csets, datasets, args.n_iters,
                   args.repeats)


def case_synthetic(args, client):
    """(b) 500 vs 400 synthetic analyses; the dmeta worker's peak memory."""
    studies = synthetic_foci(500, seed=1), synthetic_foci(400, seed=2)
    for s in studies[1]:
        s["id"], s["study_id"] = "b" + s["id"], "b" + s["study_id"]
    csets = [to_coordinate_set(s) for s in studies]
    datasets = [to_nimare_dataset(s) for s in studies]
    client.run(_peak_rss_mb, True)
    rows = compare("(b)", "500 vs 400 synthetic analyses", csets, datasets,
                   args.synthetic_iters, args.repeats)
    peak = max(client.run(_peak_rss_mb).values())
    print(f"dmeta worker peak RSS during (b): {peak:.0f} MB", flush=True)
    return rows


def print_rows(rows):
    print()
    print(f"{'case':<5} {'timing':<32} {'permutations':>12} {'seconds':>9} {'ms/perm':>9} "
          f"{'perm/s':>8} {'ratio':>8}")
    for case, t, r in rows:
        [(n, seconds)] = t.seconds.items()
        shown = "" if r is None else f"{r:7.1f}x"
        print(f"{case:<5} {t.label:<32} {n:>12} {seconds:9.1f} {t.per_unit * 1e3:9.2f} "
              f"{1 / t.per_unit:8.1f} {shown:>8}")
    print("ms/perm: the whole run (group ALEs, permutations, maps) over its permutations.\n"
          "ratio: NiMARE's time over dmeta's, one core each, same data and permutations.")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-iters", type=int, default=5000,
                        help="permutations both tools run end to end (a)")
    parser.add_argument("--synthetic-iters", type=int, default=1000,
                        help="permutations both tools run on the synthetic groups (b)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="best of this many interleaved runs per tool and count")
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args(argv)
    announce_run()
    cluster, client = local_cluster(1)
    with cluster, client:
        rows = case_example(args)
        if not args.skip_synthetic:
            rows += case_synthetic(args, client)
    print_rows(rows)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
