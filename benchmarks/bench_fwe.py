"""Monte Carlo FWE speed: dmeta against NiMARE, side by side in one process, on equal work.

The machine may be shared, so absolute times drift; every case times dmeta and NiMARE in
the same process, interleaved, and reports their ratio. A ratio is only printed between
timings of the same workload at the same iteration counts (see :func:`ratio`): each tool's
time per iteration is the slope between two iteration counts, so fixed per-run costs (NiMARE's
set-up, dmeta's task start-up, the observed map's clusters) cancel. See benchmarks/README.md.
"""

import argparse
import logging
import os
import resource
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from dmeta.approximate_null import hist_to_threshold  # noqa: E402
from dmeta.montecarlo import NullPlan  # noqa: E402

VOXEL_THRESH = 0.001


# ---------------------------------------------------------------------------- equal work
class UnequalWork(ValueError):
    """Two timings that did not do the same work: their ratio would mean nothing."""


@dataclass(frozen=True)
class Timing:
    """Best wall times (seconds) of one tool on one workload, keyed by units of work.

    Units are iterations (or permutations, or whole runs). With two amounts of work, the
    cost per unit is the slope between them, so fixed per-run costs cancel; with one, it is
    the time over the units, fixed costs included.
    """

    label: str
    workload: str
    seconds: dict
    cores: int = 1

    @property
    def per_unit(self):
        """Seconds per unit of work (per iteration, permutation or run)."""
        (n0, t0), *more = sorted(self.seconds.items())
        if not more:
            return t0 / n0
        [(n1, t1)] = more
        if t1 <= t0:
            raise UnequalWork(f"{self.label}: {n1} units took no longer than {n0} "
                              f"({t1:.3f} s vs {t0:.3f} s); raise the counts above the noise")
        return (t1 - t0) / (n1 - n0)


def ratio(slow, fast):
    """Per-core cost of ``slow`` over that of ``fast``; refused unless they did equal work.

    Equal work is the same workload at the same amounts of work (so both costs are the same
    kind: two slopes, or two end-to-end times). Cores multiply each cost, so a run on two
    workers is compared per core with one on one.
    """
    if slow.workload != fast.workload or sorted(slow.seconds) != sorted(fast.seconds):
        raise UnequalWork(
            f"unequal work: {slow.label} ran {slow.workload!r} at {sorted(slow.seconds)}, "
            f"{fast.label} ran {fast.workload!r} at {sorted(fast.seconds)}"
        )
    return (slow.per_unit * slow.cores) / (fast.per_unit * fast.cores)


def measure(workload, runners, counts, repeats, cores=None):
    """Time every runner at every count, interleaved so load drift hits all alike.

    Parameters
    ----------
    workload : str
        What every runner does (the same data and settings), checked by :func:`ratio`.
    runners : dict of str to callable
        ``runner(n)`` does ``n`` units of work; keyed by label.
    counts : sequence of int
        One or two amounts of work.
    repeats : int
        The best of this many runs is kept for each runner and count.
    cores : dict of str to int, optional
        Cores each runner uses (default 1).

    Returns
    -------
    dict of str to Timing
    """
    best = {label: dict.fromkeys(counts, np.inf) for label in runners}
    for _ in range(repeats):
        for n in counts:
            for label, run in runners.items():
                start = time.perf_counter()
                run(n)
                best[label][n] = min(best[label][n], time.perf_counter() - start)
    cores = cores or {}
    return {label: Timing(label, workload, seconds, cores.get(label, 1))
            for label, seconds in best.items()}


def check_same_input(result, nimare_result):
    """Refuse to compare unless both fits hold the same numbers of analyses and foci.

    Each tool's Monte Carlo null scatters as many random foci as its fit holds, so a tool
    given fewer foci (e.g. only those inside the mask) would be timed on less work.
    """
    inputs = nimare_result.estimator.inputs_
    ma = result.estimator.ma_
    ours = (len(ma.ids), int(ma.foci.counts.sum()))
    theirs = (len(inputs["id"]), len(inputs["coordinates"]))
    if ours != theirs:
        raise UnequalWork(f"dmeta has {ours[0]} analyses and {ours[1]} foci, NiMARE "
                          f"{theirs[0]} and {theirs[1]}: the tools would not do the same work")


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


# ---------------------------------------------------------------------------- runners
def nimare_runner(nimare_result):
    """NiMARE's Monte Carlo FWECorrector on one core, ``n`` iterations."""
    from nimare.correct import FWECorrector

    def run(n):
        FWECorrector(method="montecarlo", voxel_thresh=VOXEL_THRESH, n_iters=n,
                     n_cores=1).transform(nimare_result)
    return run


def inprocess_runner(plan):
    """dmeta's NullPlan.run in this process, after a call that absorbs numba's compilation."""
    plan.run(1, 0, 2)
    return lambda n: plan.run(1, 0, n)


def dask_runner(result):
    """dmeta.FWECorrector through the active Dask client, after a warm-up run."""
    dmeta.FWECorrector(n_iters=16, seed=1).transform(result)
    return lambda n: dmeta.FWECorrector(n_iters=n, seed=1).transform(result)


def announce_run():
    """Quiet both tools' warnings and print the command and the machine's load first: the
    figures below it are only comparable with the load they ran under."""
    warnings.simplefilter("ignore")
    logging.getLogger("nimare").setLevel(logging.WARNING)
    print("python", *sys.argv, flush=True)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}", flush=True)


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
def _against_nimare(case, timings, nimare_label):
    """Table rows: NiMARE's timing, then each dmeta timing with its ratio to NiMARE's."""
    nimare = timings.pop(nimare_label)
    return [(case, nimare, None)] + [(case, t, ratio(nimare, t)) for t in timings.values()]


def case_semantic(args, rows):
    """(a) semantic_knowledge: NiMARE n_cores=1 against dmeta in process and on one worker."""
    from nimare.io import convert_sleuth_to_dataset

    cset = dmeta.datasets.load_example("semantic_knowledge")
    result, plan = fit_dmeta(cset)
    nim = fit_nimare(convert_sleuth_to_dataset(str(dmeta.datasets.example_path(
        "semantic_knowledge"))))
    check_same_input(result, nim)
    workload = f"semantic_knowledge FWE ({len(cset.ids)} analyses, {plan.n_foci} foci)"
    print(workload, flush=True)
    cluster, client = local_cluster(1)
    with cluster, client:
        timings = measure(workload, {
            "NiMARE n_cores=1": nimare_runner(nim),
            "dmeta NullPlan.run": inprocess_runner(plan),
            "dmeta Dask 1 worker x 1 thread": dask_runner(result),
        }, args.iters, args.repeats)
    rows += _against_nimare("(a)", timings, "NiMARE n_cores=1")
    return result


def case_scaling(args, rows, result):
    """(b) two single-threaded local workers against one, on the same null (end to end)."""
    timings = {}
    workload = f"semantic_knowledge FWE, {args.scaling_iters} iterations end to end"
    for n_workers in (1, 2, 1):
        cluster, client = local_cluster(n_workers)
        with cluster, client:
            label = f"dmeta Dask {n_workers} worker(s)"
            timing = measure(workload, {label: dask_runner(result)}, [args.scaling_iters], 1)
        previous = timings.get(label)
        if previous is None or timing[label].per_unit < previous.per_unit:
            timings[label] = timing[label]
    one, two = timings.values()
    rows += [("(b)", one, None), ("(b) speed-up", two, ratio(one, two))]


def case_synthetic(args, rows):
    """(c) a synthetic set shaped like the bundled real data (benchmarks/synthetic.py)."""
    from synthetic import synthetic

    cset, dataset = synthetic(args.synthetic_analyses, seed=0)
    result, plan = fit_dmeta(cset)
    nim = fit_nimare(dataset)
    check_same_input(result, nim)
    workload = f"synthetic FWE ({len(cset.ids)} analyses, {plan.n_foci} foci)"
    print(workload, flush=True)
    timings = measure(workload, {
        "NiMARE n_cores=1": nimare_runner(nim),
        "dmeta NullPlan.run": inprocess_runner(plan),
    }, args.synthetic_iters, args.repeats)
    rows += _against_nimare("(c)", timings, "NiMARE n_cores=1")


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
def _two_counts(text):
    counts = sorted(int(n) for n in text.split(","))
    if len(counts) != 2 or counts[0] < 1 or counts[0] == counts[1]:
        raise argparse.ArgumentTypeError("give two different positive counts, e.g. 200,1000")
    return counts


def print_rows(rows):
    print()
    print(f"{'case':<14} {'timing':<32} {'work':<14} {'ms/iter':>9} {'ratio':>8}")
    for case, t, r in rows:
        work = ",".join(map(str, sorted(t.seconds)))
        shown = "" if r is None else f"{r:7.1f}x"
        print(f"{case:<14} {t.label:<32} {work:<14} {t.per_unit * 1e3:9.3f} {shown:>8}")
    print("ms/iter: with two iteration counts, the slope between them (fixed costs cancel); "
          "with one, time / iterations.\nratio: NiMARE's time per iteration over dmeta's, "
          "per core, at the same counts; (b): 1-worker time over 2-worker time.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=_two_counts, default=[200, 1000],
                        help="iteration counts both tools run on semantic_knowledge (a)")
    parser.add_argument("--scaling-iters", type=int, default=20000,
                        help="dmeta iterations for 1 vs 2 workers (b)")
    parser.add_argument("--synthetic-analyses", type=int, default=500)
    parser.add_argument("--synthetic-iters", type=_two_counts, default=[10, 40],
                        help="iteration counts both tools run on the synthetic set (c)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="best of this many interleaved runs per tool and count")
    parser.add_argument("--memory-iters", type=int, nargs=2, default=[1000, 4000],
                        help="null lengths whose worker peak memory is compared (d)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["b", "c", "d"],
                        help="cases to leave out")
    args = parser.parse_args(argv)
    announce_run()

    rows = []
    result = case_semantic(args, rows)
    if "b" not in args.skip:
        case_scaling(args, rows, result)
    if "c" not in args.skip:
        case_synthetic(args, rows)
    peaks = None if "d" in args.skip else case_memory(args, rows, result)

    print_rows(rows)
    if peaks is not None:
        a, b = args.memory_iters
        print(f"(d) worker peak RSS: {a} iterations {peaks[0]:.0f} MB, {b} iterations "
              f"{peaks[1]:.0f} MB (ratio {peaks[1] / peaks[0]:.2f})")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
