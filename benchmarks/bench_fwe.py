"""Monte Carlo FWE speed: dmeta against NiMARE, side by side in one process.

The machine may be shared, so absolute times drift; every case times dmeta and NiMARE in
the same process, close together, and reports their ratio. See benchmarks/README.md.
"""

import argparse
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dmeta  # noqa: E402
from dmeta.approximate_null import hist_to_threshold  # noqa: E402
from dmeta.montecarlo import NullPlan  # noqa: E402

VOXEL_THRESH = 0.001


# ---------------------------------------------------------------------------- fitting
def fit_dmeta(cset):
    """dmeta ALE fit and the Monte Carlo plan FWECorrector would build from it."""
    result = dmeta.ALE().fit(cset)
    ale = result.estimator
    plan = NullPlan(ale.ma_, hist_to_threshold(ale.null_weights_, ale.bins_, VOXEL_THRESH))
    return result, plan


def fit_nimare(dataset):
    from nimare.meta.cbma import ALE

    return ALE().fit(dataset)


# ---------------------------------------------------------------------------- timing
def per_iter(fn, n_iters, repeats=1):
    """Best wall time per iteration of ``fn()`` over ``repeats`` calls (seconds)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n_iters


def dmeta_inprocess(plan, n_iters, repeats=3):
    """NullPlan.run in this process, after a warm-up call that absorbs numba's compilation."""
    plan.run(1, 0, 2)
    return per_iter(lambda: plan.run(1, 0, n_iters), n_iters, repeats)


def dmeta_dask(result, n_iters, repeats=1):
    """dmeta.FWECorrector through the active Dask client (after a warm-up run)."""
    dmeta.FWECorrector(n_iters=16, seed=1).transform(result)
    return per_iter(
        lambda: dmeta.FWECorrector(n_iters=n_iters, seed=1).transform(result), n_iters, repeats
    )


def nimare_fwe(nimare_result, n_iters):
    """NiMARE's Monte Carlo FWECorrector on one core."""
    from nimare.correct import FWECorrector

    corrector = FWECorrector(method="montecarlo", voxel_thresh=VOXEL_THRESH, n_iters=n_iters,
                             n_cores=1)
    return per_iter(lambda: corrector.transform(nimare_result), n_iters)


def local_cluster(n_workers):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, dashboard_address=":0",
                           processes=True)
    return cluster, Client(cluster)


def _peak_rss_mb(reset=False):
    """This process's peak resident memory (MB), from /proc (Linux).

    ``ru_maxrss`` would not do: Linux carries it over from the forking parent across exec,
    so a spawned worker would report this benchmark's own size. ``VmHWM`` belongs to the
    process's own address space; writing 5 to ``clear_refs`` restarts it from the current RSS.
    """
    if reset:
        Path("/proc/self/clear_refs").write_text("5")
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------- cases
def case_semantic(args, rows):
    """(a) one worker, one thread: in-process and Dask, against NiMARE n_cores=1."""
    from nimare.io import convert_sleuth_to_dataset

    cset = dmeta.datasets.load_example("semantic_knowledge")
    result, plan = fit_dmeta(cset)
    nim = fit_nimare(convert_sleuth_to_dataset(str(dmeta.datasets.example_path(
        "semantic_knowledge"))))
    print(f"semantic_knowledge: {len(cset.ids)} analyses, {plan.n_foci} foci", flush=True)

    before = dmeta_inprocess(plan, args.iters)
    t_nimare = nimare_fwe(nim, args.nimare_iters)
    after = dmeta_inprocess(plan, args.iters)
    t_inproc = min(before, after)
    cluster, client = local_cluster(1)
    with cluster, client:
        t_dask = dmeta_dask(result, args.iters)
    rows += [
        ("(a) semantic, NiMARE n_cores=1", t_nimare, None),
        ("(a) semantic, dmeta NullPlan.run", t_inproc, t_nimare / t_inproc),
        ("(a) semantic, dmeta Dask 1 worker x 1 thread", t_dask, t_nimare / t_dask),
    ]
    return result


def case_scaling(args, rows, result):
    """(b) two single-threaded local workers against one, on the same null."""
    times = {}
    for n_workers in (1, 2, 1):
        cluster, client = local_cluster(n_workers)
        with cluster, client:
            t = dmeta_dask(result, args.scaling_iters)
        times[n_workers] = min(times.get(n_workers, np.inf), t)
    rows += [
        ("(b) semantic, dmeta Dask 1 worker", times[1], None),
        ("(b) semantic, dmeta Dask 2 workers (speed-up)", times[2], times[1] / times[2]),
    ]


def case_synthetic(args, rows):
    """(c) a synthetic 500-analysis dataset."""
    from synthetic import synthetic

    cset, dataset = synthetic(args.synthetic_analyses, seed=0)
    _, plan = fit_dmeta(cset)
    print(f"synthetic: {len(cset.ids)} analyses, {plan.n_foci} foci", flush=True)
    nim = fit_nimare(dataset)
    before = dmeta_inprocess(plan, args.synthetic_iters, repeats=2)
    t_nimare = nimare_fwe(nim, args.synthetic_nimare_iters)
    after = dmeta_inprocess(plan, args.synthetic_iters, repeats=2)
    t_dmeta = min(before, after)
    rows += [
        (f"(c) synthetic {len(cset.ids)}, NiMARE n_cores=1", t_nimare, None),
        (f"(c) synthetic {len(cset.ids)}, dmeta NullPlan.run", t_dmeta, t_nimare / t_dmeta),
    ]


def case_memory(args, rows, result):
    """(d) peak RSS of a fresh single worker during nulls of different lengths."""
    peaks = []
    for n_iters in args.memory_iters:
        cluster, client = local_cluster(1)
        with cluster, client:
            dmeta.FWECorrector(n_iters=16, seed=1).transform(result)  # imports, compilation
            [base] = client.run(_peak_rss_mb, True).values()
            dmeta.FWECorrector(n_iters=n_iters, seed=1).transform(result)
            [peak] = client.run(_peak_rss_mb).values()
        peaks.append(peak)
        print(f"worker peak RSS during {n_iters} iterations: {peak:.0f} MB "
              f"(RSS before: {base:.0f} MB)", flush=True)
    return peaks


# ---------------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=1000,
                        help="dmeta iterations on semantic_knowledge (a)")
    parser.add_argument("--nimare-iters", type=int, default=100,
                        help="NiMARE iterations on semantic_knowledge (a)")
    parser.add_argument("--scaling-iters", type=int, default=20000,
                        help="dmeta iterations for 1 vs 2 workers (b)")
    parser.add_argument("--synthetic-analyses", type=int, default=500)
    parser.add_argument("--synthetic-iters", type=int, default=100,
                        help="dmeta iterations on the synthetic set (c)")
    parser.add_argument("--synthetic-nimare-iters", type=int, default=5,
                        help="NiMARE iterations on the synthetic set (c)")
    parser.add_argument("--memory-iters", type=int, nargs=2, default=[1000, 4000],
                        help="null lengths whose worker peak memory is compared (d)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["b", "c", "d"],
                        help="cases to leave out")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)

    rows = []
    result = case_semantic(args, rows)
    if "b" not in args.skip:
        case_scaling(args, rows, result)
    if "c" not in args.skip:
        case_synthetic(args, rows)
    peaks = None if "d" in args.skip else case_memory(args, rows, result)

    print()
    print(f"{'case':<52} {'ms/iter':>9} {'iter/s':>9} {'ratio':>8}")
    for name, t, ratio in rows:
        shown = "" if ratio is None else f"{ratio:7.1f}x"
        print(f"{name:<52} {t * 1e3:9.2f} {1 / t:9.1f} {shown:>8}")
    print("ratio: NiMARE time / dmeta time per iteration (per core); "
          "(b): 1-worker time / 2-worker time")
    if peaks is not None:
        a, b = args.memory_iters
        print(f"(d) worker peak RSS: {a} iterations {peaks[0]:.0f} MB, {b} iterations "
              f"{peaks[1]:.0f} MB (ratio {peaks[1] / peaks[0]:.2f})")


if __name__ == "__main__":
    main()
