"""Subtraction FWE (voxel and cluster level) speed and memory: dmeta against NiMARE 0.22.1.

Both tools fit knowledge vs relatedness with ``vfwe_only=False``: group ALEs, the
relabellings' tail counts, and the voxel-, cluster-size and cluster-mass nulls at
``voxel_thresh=0.001`` (NiMARE keeps every relabelling's map in a memmap and labels each on
the whole volume; dmeta regenerates them twice from their seeds, see
``dmeta/subtraction/fwe.py``). Both are timed end to end (fits included) at the same
relabelling count, one core each (dmeta: one single-threaded Dask worker, NiMARE
``n_cores=1``). Not a slope between two counts: dmeta's cost per relabelling (about 1.5 ms)
is below the noise of its fixed costs (about 1.5 s) at any count NiMARE (about 0.5 s per
relabelling) runs in minutes, so the ratio printed includes dmeta's fixed costs and
understates its per-relabelling speed.

``--memory`` also fits 500 vs 400 synthetic analyses with ``vfwe_only=False`` at
``--memory-iters`` relabellings on dmeta alone and prints the worker's peak memory.

    python benchmarks/bench_subtraction_fwe.py [--n-iters 300] [--repeats 1]
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
from bench_fwe import _peak_rss_mb, announce_run, local_cluster, measure, ratio  # noqa: E402
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
                      runners(csets, datasets), [args.n_iters], args.repeats)
    nimare, ours = timings[NIMARE], timings[DMETA]
    print(f"\n{'timing':<32} {'relabellings':>12} {'seconds':>8} {'ms/relabelling':>15} "
          f"{'ratio':>7}")
    for t, r in ((nimare, None), (ours, ratio(nimare, ours))):
        shown = "" if r is None else f"{r:6.1f}x"
        [(n, seconds)] = t.seconds.items()
        print(f"{t.label:<32} {n:>12} {seconds:8.1f} {t.per_unit * 1e3:15.2f} {shown:>7}")
    print("ms/relabelling: the whole run (fits, tail counts, both FWE passes) over its "
          "relabellings.\nratio: NiMARE's time over dmeta's, one core each.")


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
    parser.add_argument("--n-iters", type=int, default=300,
                        help="relabellings both tools run end to end")
    parser.add_argument("--repeats", type=int, default=1)
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
