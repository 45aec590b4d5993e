"""Large datasets: fit, memory, FWE iterations, a full-refit sweep and scheduling, by size.

Per size (``--analyses``, default 1,000 / 5,000 / 10,000), in a fresh process so that peak
memory is that size's own: a synthetic NiMARE-JSON export (benchmarks/synthetic.py: focus
counts, sample sizes and foci drawn from the bundled real analyses, ``--talairach`` of the
analyses in Talairach space), read from the file by both tools.

* dmeta on a local cluster of ``--workers`` one-thread workers: ``ALE().fit`` wall time;
  peak resident memory of this process (the client) and of the largest worker over the
  fit; milliseconds per FWE iteration per core (the slope between two iteration counts,
  times the workers); the share of worker time not spent in tasks while those iterations
  ran, from the cluster's task stream.
* NiMARE (sizes up to ``--nimare-max``) on one core, on the same file: ``ALE().fit`` and
  ms per FWE iteration (the slope between two small counts); the per-core ratios.
* ``--sweep``: a ``stability_sweep(refit="full")`` on the first size (subsample, one
  target_n, a few replicates): seconds per replicate-iteration per core.
* ``--scheduler-tasks N``: :func:`dmeta.compute.run_blocks` over N empty tasks, the
  scheduling cost per task, and from it the scheduler share of an N-task sweep whose tasks
  last as long as the FWE blocks measured above.

Quote the ratios, not the times: the machine may be shared (see benchmarks/README.md).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from bench_fwe import (  # noqa: E402
    _peak_rss_mb,
    announce_run,
    check_same_input,
    local_cluster,
    measure,
)
from dmeta.ma_blocks import MA_DASK_MIN  # noqa: E402
from synthetic import synthetic_foci, write_nimare_json  # noqa: E402

VOXEL_THRESH = 0.001

#: NiMARE's iteration counts for its FWE slope: each of its iterations takes seconds at
#: these sizes. Both tools' figures are slopes, so their ratio compares equal work.
NIMARE_FWE_COUNTS = (1, 3)


def _empty_task(i):
    return i


def fwe_counts(n_analyses, n_workers):
    """Two iteration counts for a slope: enough blocks for every worker, seconds of work."""
    low = n_workers * (16 if n_analyses <= 2000 else 4)
    return low, 3 * low


def busy_share(client, run):
    """``run()``'s wall time and the share of it the workers spent computing tasks."""
    from distributed import get_task_stream

    n_workers = len(client.scheduler_info()["workers"])
    with get_task_stream(client) as stream:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    compute = [(s["stop"] - s["start"]) for task in stream.data
               for s in task["startstops"] if s["action"] == "compute"]
    return wall, sum(compute) / (wall * n_workers), float(np.median(compute))


def dmeta_size(path, n_workers):
    """dmeta's figures for one file, on a fresh local cluster."""
    cset = dmeta.io.load(path)
    dmeta.ALE().fit(dmeta.datasets.load_example("pain"))  # imports, numba's cached code
    cluster, client = local_cluster(n_workers)
    with cluster, client:
        client.run(_peak_rss_mb, reset=True)
        _peak_rss_mb(reset=True)
        start = time.perf_counter()
        result = dmeta.ALE().fit(cset)
        fit = time.perf_counter() - start
        client_mb = _peak_rss_mb()
        worker_mb = max(client.run(_peak_rss_mb).values())
        counts = fwe_counts(len(cset.ids), n_workers)
        dmeta.FWECorrector(n_iters=n_workers, seed=1).transform(result)  # warm the workers

        def corrector(n):
            dmeta.FWECorrector(voxel_thresh=VOXEL_THRESH, n_iters=n, seed=1,
                               chunk_iters=max(1, n // (4 * n_workers))).transform(result)

        fwe = measure("FWE", {"dmeta": corrector}, counts, 1, {"dmeta": n_workers})["dmeta"]
        _, busy, task_s = busy_share(client, lambda: corrector(counts[1]))
    fit_cores = n_workers if len(cset.ids) > MA_DASK_MIN else 1
    return result, {"fit_s": fit, "fit_cores": fit_cores, "client_mb": client_mb,
                    "worker_mb": worker_mb, "fwe": fwe, "busy": busy, "task_s": task_s}


def nimare_size(path, result, counts):
    """NiMARE's fit and FWE slope on one core, on the same file."""
    from nimare.correct import FWECorrector
    from nimare.dataset import Dataset
    from nimare.meta.cbma import ALE

    from dmeta.space import Space
    from nimare_reference import nimare_dataset

    mask = Space.from_mask(None).mask_img  # dmeta's default mask, so that maps compare
    ALE(mask=mask).fit(nimare_dataset("pain"))  # imports, numba's compilation
    dataset = Dataset(str(path))
    start = time.perf_counter()
    nimare_result = ALE(mask=mask).fit(dataset)
    fit = time.perf_counter() - start
    check_same_input(result, nimare_result)

    def corrector(n):
        FWECorrector(method="montecarlo", voxel_thresh=VOXEL_THRESH, n_iters=n,
                     n_cores=1).transform(nimare_result)

    fwe = measure("FWE", {"NiMARE": corrector}, counts, 1)["NiMARE"]
    z = (result.get_map("z", "array").astype(float)
         - nimare_result.get_map("z", return_type="array").astype(float))
    return {"fit_s": fit, "fwe": fwe, "max_dz": float(np.abs(z).max())}


def one_size(args):
    """The figures of one size, as one JSON line (run in a subprocess per size)."""
    n = args.one
    with tempfile.TemporaryDirectory() as tmp:
        path = write_nimare_json(synthetic_foci(n, seed=0, talairach=args.talairach),
                                 Path(tmp) / f"synthetic{n}.json")
        result, ours = dmeta_size(path, args.workers)
        row = {"n": n, "dmeta": _plain(ours)}
        if n <= args.nimare_max:
            theirs = nimare_size(path, result, NIMARE_FWE_COUNTS)
            row["nimare"] = _plain(theirs)
            row["fwe_ratio"] = ratio_per_core(theirs["fwe"], ours["fwe"])
    print(json.dumps(row), flush=True)


def ratio_per_core(theirs, ours):
    """NiMARE's per-core cost per FWE iteration over dmeta's (both slopes, see ratio)."""
    return theirs.per_unit * theirs.cores / (ours.per_unit * ours.cores)


def _plain(figures):
    out = {}
    for key, value in figures.items():
        out[key] = ({"ms_per_iter_core": 1e3 * value.per_unit * value.cores,
                     "counts": sorted(value.seconds)} if hasattr(value, "per_unit") else value)
    return out


def sweep_throughput(n, args):
    """A full-refit sweep on a subsample of ``n`` analyses: s per replicate-iteration per core."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_nimare_json(synthetic_foci(n, seed=0, talairach=args.talairach),
                                 Path(tmp) / "sweep.json")
        cset = dmeta.io.load(path)
        cluster, client = local_cluster(args.workers)
        with cluster, client:
            replicates, n_iters = 4, 200
            start = time.perf_counter()
            dmeta.stability_sweep(cset, ["subsample"], target_n=n // 2, n_resamples=replicates,
                                  refit="full", n_iters=n_iters, random_state=0)
            wall = time.perf_counter() - start
    per = wall * args.workers / (replicates * n_iters)
    print(f"sweep: {n} analyses, subsample target_n {n // 2}, {replicates} replicates x "
          f"{n_iters} iterations, refit='full': {1e3 * per:.1f} ms per replicate-iteration "
          f"per core ({wall:.1f} s on {args.workers} workers)", flush=True)


def scheduler_cost(n_tasks, n_workers, task_s):
    """run_blocks over ``n_tasks`` empty tasks; the implied share for tasks of ``task_s``."""
    from dmeta.compute import run_blocks

    cluster, client = local_cluster(n_workers)
    with cluster, client:
        start = time.perf_counter()
        run_blocks(_empty_task, {i: (i,) for i in range(n_tasks)}, lambda key, result: None)
        per_task = (time.perf_counter() - start) / n_tasks
    share = per_task / (per_task + task_s / n_workers)
    print(f"scheduler: {n_tasks} empty tasks on {n_workers} workers, {1e3 * per_task:.2f} ms "
          f"each; with tasks of {task_s:.2f} s (the median FWE block above) an {n_tasks}-task "
          f"run spends {100 * share:.1f}% of its time scheduling", flush=True)


def print_rows(rows, workers):
    print(f"\n{'analyses':>8} {'fit s':>7} {'client MB':>9} {'worker MB':>9} "
          f"{'ms/iter/core':>12} {'busy':>5} | {'NiMARE fit s':>12} {'ms/iter/core':>12} "
          f"{'fit x/core':>10} {'FWE x/core':>10} {'max|dz|':>8}")
    for row in rows:
        ours, theirs = row["dmeta"], row.get("nimare")
        line = (f"{row['n']:>8} {ours['fit_s']:7.1f} {ours['client_mb']:9.0f} "
                f"{ours['worker_mb']:9.0f} {ours['fwe']['ms_per_iter_core']:12.1f} "
                f"{ours['busy']:5.0%} | ")
        if theirs:
            line += (f"{theirs['fit_s']:12.1f} {theirs['fwe']['ms_per_iter_core']:12.1f} "
                     f"{theirs['fit_s'] / (ours['fit_s'] * ours['fit_cores']):10.1f} "
                     f"{row['fwe_ratio']:10.1f} {theirs['max_dz']:8.1e}")
        else:
            line += f"{'(not run)':>12}"
        print(line)
    slopes = ("FWE slopes: dmeta between "
              + ", ".join(f"{r['n']}: {r['dmeta']['fwe']['counts']}" for r in rows)
              + " iterations")
    if any("nimare" in r for r in rows):
        slopes += f"; NiMARE between {list(NIMARE_FWE_COUNTS)}"
    print(f"dmeta on {workers} workers; NiMARE on one core. fit x/core = NiMARE's fit time "
          f"over dmeta's times the cores it used (one up to {MA_DASK_MIN} analyses, which "
          f"are fitted in process, else the {workers} workers; the cluster was already up). "
          f"{slopes}.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--analyses", type=int, nargs="*", default=[1000, 5000, 10000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--talairach", type=float, default=0.3,
                        help="share of analyses given in Talairach space (default 0.3)")
    parser.add_argument("--nimare-max", type=int, default=5000,
                        help="largest size NiMARE is run on (default 5000)")
    parser.add_argument("--sweep", action="store_true", help="time a full-refit sweep")
    parser.add_argument("--scheduler-tasks", type=int, default=0,
                        help="time run_blocks over this many empty tasks (e.g. 100000)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        return one_size(args)
    announce_run()
    rows = []
    for n in args.analyses:
        command = [sys.executable, __file__, "--one", str(n), "--workers", str(args.workers),
                   "--talairach", str(args.talairach), "--nimare-max", str(args.nimare_max)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(f"{n} analyses done", flush=True)
    print_rows(rows, args.workers)
    if args.sweep:
        sweep_throughput(args.analyses[0], args)
    if args.scheduler_tasks:
        scheduler_cost(args.scheduler_tasks, args.workers,
                       min(r["dmeta"]["task_s"] for r in rows))


if __name__ == "__main__":
    main()
