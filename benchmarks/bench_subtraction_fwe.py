"""Subtraction FWE (voxel and cluster level) speed and memory: dmeta against NiMARE 0.22.1.

Both tools fit knowledge vs relatedness with ``vfwe_only=False``: group ALEs, the
relabellings' tail counts, and the voxel-, cluster-size and cluster-mass nulls at
``voxel_thresh=0.001`` (NiMARE keeps every relabelling's map in a memmap and labels each on
the whole volume; dmeta regenerates them twice from their seeds, see
``dmeta/subtraction/fwe.py``). Each is timed at two relabelling counts and the cost per
relabelling is the slope, so fixed costs cancel; one core each (dmeta: one single-threaded
Dask worker, NiMARE ``n_cores=1``).

``--memory`` also fits 500 vs 400 synthetic analyses with ``vfwe_only=False`` at
``--memory-iters`` relabellings on dmeta alone and prints the worker's peak memory.

    python benchmarks/bench_subtraction_fwe.py [--counts 50,400] [--repeats 2]
        [--memory] [--memory-iters 10000]
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from bench_fwe import _peak_rss_mb, _two_counts, announce_run, local_cluster, measure, ratio  # noqa: E402
from bench_subtraction import check_same_groups  # noqa: E402
from dmeta.datasets import example_path  # noqa: E402
from dmeta.space import Space  # noqa: E402
from synthetic import synthetic_foci, to_coordinate_set  # noqa: E402

NIMARE = "NiMARE n_cores=1"
DMETA = "dmeta Dask 1 worker x 1 thread"
NAMES = ("semantic_knowledge", "semantic_relatedness")


def runners(csets, datasets):
    """Both tools' corrected-ready subtractions at ``n`` relabellings."""
    from nimare.meta.cbma import ALESubtraction

    check_same_groups(csets, datasets)
    mask = Space.from_mask().mask_img

    def ours(n):
        dmeta.ALESubtraction(n_iters=n, seed=0, vfwe_only=False,
                             tie_handling="nimare").fit(*csets)

    def theirs(n):
        ALESubtraction(n_iters=n, n_cores=1, vfwe_only=False, mask=mask).fit(*datasets)

    ours(10)  # warm up: imports and numba's cache on the worker
    return {NIMARE: theirs, DMETA: ours}


def case_example(args):
    from nimare.io import convert_sleuth_to_dataset

    csets = [dmeta.datasets.load_example(n) for n in NAMES]
    datasets = [convert_sleuth_to_dataset(str(example_path(n))) for n in NAMES]
    timings = measure("knowledge vs relatedness, vfwe_only=False",
                      runners(csets, datasets), args.counts, args.repeats)
    nimare, ours = timings[NIMARE], timings[DMETA]
    print(f"\n{'timing':<32} {'relabellings':>14} {'ms/relabelling':>15} {'ratio':>7}")
    for t, r in ((nimare, None), (ours, ratio(nimare, ours))):
        shown = "" if r is None else f"{r:6.1f}x"
        counts = ",".join(map(str, sorted(t.seconds)))
        print(f"{t.label:<32} {counts:>14} {t.per_unit * 1e3:15.2f} {shown:>7}")
    print("ms/relabelling: slope between the two counts (fits and fixed costs cancel).\n"
          "ratio: NiMARE's cost per relabelling over dmeta's, one core each.")


def case_memory(args, client):
    studies = synthetic_foci(500, seed=1), synthetic_foci(400, seed=2)
    for s in studies[1]:
        s["id"], s["study_id"] = "b" + s["id"], "b" + s["study_id"]
    csets = [to_coordinate_set(s) for s in studies]
    client.run(_peak_rss_mb, True)
    start = time.perf_counter()
    dmeta.ALESubtraction(n_iters=args.memory_iters, seed=0, vfwe_only=False).fit(*csets)
    seconds = time.perf_counter() - start
    peak = max(client.run(_peak_rss_mb).values())
    print(f"\n500 vs 400 synthetic analyses, {args.memory_iters} relabellings, vfwe_only=False, "
          f"dmeta only: {seconds:.0f} s on 1 worker, worker peak RSS {peak:.0f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=_two_counts, default=(50, 400),
                        help="the two relabelling counts both tools run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--memory-iters", type=int, default=10_000)
    args = parser.parse_args(argv)
    announce_run()
    cluster, client = local_cluster(1)
    with cluster, client:
        case_example(args)
        if args.memory:
            case_memory(args, client)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
