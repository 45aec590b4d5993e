"""SCALE speed and agreement: dmeta against NiMARE 0.22.1 on equal work, in one process.

(Not to be confused with bench_scale.py, which is about scaling to large sets.)

Both tools fit SCALE to the same analyses (``--dataset``, every focus) with the same base-rate
coordinates (every focus of ``--base-rate``, one array given to both) at the same iteration
counts, each on one core: NiMARE with ``n_cores=1``; dmeta end to end (ALE fit, null, maps)
through one single-threaded Dask worker, and its null alone (``ScalePlan.run``) in this
process. Cost per iteration is the slope between the two counts of ``--iters``, so fixed
costs cancel (see bench_fwe.ratio); the ratio is NiMARE's over dmeta's, per core.

Maps, at the larger count: the z maps of the two fits (independent draws, so they differ by
Monte Carlo noise), and dmeta's null run on NiMARE's own draws (the same null datasets, so
any difference is arithmetic).

    python benchmarks/bench_scale_coactivation.py [--iters 200,1000] [--repeats 1]
        [--dataset pain] [--base-rate semantic_knowledge]
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from bench_fwe import (  # noqa: E402
    _two_counts,
    announce_run,
    check_same_input,
    local_cluster,
    measure,
    ratio,
)
from dmeta.scale import SCALE, scale_base_rate  # noqa: E402
from dmeta.scale.base_rate import base_rate_ijk  # noqa: E402
from dmeta.scale.estimator import exceedance_p  # noqa: E402
from dmeta.scale.null import ScalePlan  # noqa: E402
from dmeta.stats import p_to_z  # noqa: E402
from nimare_reference import nimare_dataset  # noqa: E402

NIMARE = "NiMARE SCALE n_cores=1"
DASK = "dmeta SCALE Dask 1 worker x 1 thread"
PLAN = "dmeta ScalePlan.run"


def runners(cset, dataset, xyz, space, fits):
    """The three timed runs, ``n`` iterations each; each tool's last fit is kept in ``fits``."""
    from nimare.meta.cbma.ale import SCALE as NiMARESCALE

    def theirs(n):
        fits[NIMARE] = NiMARESCALE(xyz=xyz, n_iters=n, n_cores=1, random_state=0,
                                   mask=space.mask_img).fit(dataset)

    def ours(n):
        fits[DASK] = SCALE(xyz, n_iters=n, seed=0).fit(cset)

    ours(16)  # warm up: imports and numba's cache on the worker
    plan = ScalePlan(fits[DASK].estimator.ma_, base_rate_ijk(xyz, space))
    plan.run(0, 0, 2)
    return {NIMARE: theirs, DASK: ours, PLAN: lambda n: plan.run(0, 0, n)}, plan


def on_nimare_draws(plan, nimare_fit, cset, n_iters):
    """dmeta's z map from the null datasets NiMARE drew (its foci put in dmeta's order)."""
    foci, _, _, draws = nimare_fit.estimator._prepare_permutations(n_iters)

    def keys(table):
        return list(zip(table["id"], table.groupby("id").cumcount()))

    row = {key: r for r, key in enumerate(keys(foci))}
    order = [row[key] for key in keys(cset.foci)]
    plan.draws = lambda seed, start, stop: np.ascontiguousarray(draws.T[start:stop, order])
    return p_to_z(exceedance_p(plan.run(0, 0, n_iters)[1], n_iters))


def print_rows(nimare, ours):
    print()
    print(f"{'timing':<38} {'iterations':<10} {'ms/iter':>9} {'ratio':>8}")
    for t in (nimare, *ours):
        shown = "" if t is nimare else f"{ratio(nimare, t):7.1f}x"
        work = ",".join(map(str, sorted(t.seconds)))
        print(f"{t.label:<38} {work:<10} {t.per_unit * 1e3:9.3f} {shown:>8}")
    print("ms/iter: the slope between the two iteration counts (fixed costs cancel).\n"
          "ratio: NiMARE's time per iteration over dmeta's, one core each, equal work.")


def agreement(label, ours, theirs):
    r = np.corrcoef(ours, theirs)[0, 1]
    print(f"{label}: r = {r:.5f}, max |dz| = {np.abs(ours - theirs).max():.3g}, "
          f"voxels with |dz| > 0.5: {int((np.abs(ours - theirs) > 0.5).sum())}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=_two_counts, default=[200, 1000],
                        help="iteration counts every tool runs")
    parser.add_argument("--repeats", type=int, default=1,
                        help="best of this many interleaved runs per tool and count")
    parser.add_argument("--dataset", default="pain", help="bundled set meta-analysed")
    parser.add_argument("--base-rate", default="semantic_knowledge",
                        help="bundled set whose foci are the base rate")
    args = parser.parse_args(argv)
    announce_run()

    space = dmeta.space.Space.from_mask()
    cset = dmeta.datasets.load_example(args.dataset)
    dataset = nimare_dataset(args.dataset)
    xyz = scale_base_rate(dmeta.datasets.load_example(args.base_rate))
    workload = (f"SCALE {args.dataset} ({len(cset.ids)} analyses, {len(cset.foci)} foci), "
                f"base rate {args.base_rate} ({len(xyz)} coordinates)")
    print(workload, flush=True)
    fits = {}
    cluster, client = local_cluster(1)
    with cluster, client:
        timed, plan = runners(cset, dataset, xyz, space, fits)
        timings = measure(workload, timed, args.iters, args.repeats)
    check_same_input(fits[DASK], fits[NIMARE])
    nimare = timings.pop(NIMARE)
    print_rows(nimare, timings.values())

    n_iters = args.iters[-1]
    nimare_z = space.from_image(fits[NIMARE].get_map("z"))
    stat = fits[DASK].get_map("stat", "array")
    nimare_stat = space.from_image(fits[NIMARE].get_map("stat"))
    print(f"\nstat: max |d| = {np.abs(stat - nimare_stat).max():.3g}")
    agreement(f"z at {n_iters} iterations, independent draws",
              fits[DASK].get_map("z", "array"), nimare_z)
    agreement(f"z at {n_iters} iterations, dmeta's null on NiMARE's draws",
              on_nimare_draws(plan, fits[NIMARE], cset, n_iters), nimare_z)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
