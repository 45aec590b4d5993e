"""Diagnostics on pain, dmeta side by side with NiMARE 0.22.1 in one process, on equal work.

    python benchmarks/bench_diagnostics.py [--n-iters N] [--no-full] [--full-iters N]

Both tools get every focus of pain (NiMARE keeps foci outside the mask, and so does dmeta).

* Jackknife (target "z", z > 3.1): one refit per analysis; NiMARE on 1 core vs dmeta on
  a local cluster of one single-threaded worker (started before timing).
* ResampledStability leave_1_out at NiMARE's defaults (cluster-size FWE target, Monte Carlo
  null of ``--n-iters`` iterations for both, grey-matter foci): NiMARE on 1 core vs dmeta on
  a 2-worker local cluster; the per-core ratio counts dmeta's 2 cores.
* ResampledStability leave_1_out with refit="full": its own null of --full-iters iterations
  per replicate (21 x 5000 = 105,000 iterations by default). NiMARE has no such mode, so
  only dmeta's time is printed, never a ratio.

Ratios go through ``bench_fwe.ratio``, which refuses timings of unequal work.
"""

import argparse
import contextlib
import copy
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dmeta  # noqa: E402
from bench_fwe import check_same_input, measure, ratio  # noqa: E402
from dmeta.compute import close, connect  # noqa: E402
from dmeta.datasets import example_path  # noqa: E402

TARGET = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


def _nimare_pain(space):
    """NiMARE's ALE of pain, every focus kept, on dmeta's mask."""
    from nimare.meta.cbma import ALE
    from nimare.studyset import Studyset

    dset = Studyset(str(example_path("pain")), target="mni152_2mm").to_dataset()
    return ALE(mask=space.mask_img).fit(dset)


@contextlib.contextmanager
def local_client(workers):
    """A local cluster of single-threaded workers, started before any timing starts (dmeta
    would otherwise start one inside the timed call)."""
    client = connect("local", workers=workers, threads_per_worker=1, quiet=True,
                     dashboard_address=":0")
    try:
        yield client
    finally:
        close(client)


def _whole_runs(workload, runners, repeats=1, cores=None):
    """Best of ``repeats`` interleaved runs of each runner (a whole diagnostic is the unit)."""
    return measure(workload, {label: lambda _, run=run: run() for label, run in runners.items()},
                   [1], repeats, cores)


def _report(name, timings, nimare_label, dmeta_label):
    nimare, ours = timings[nimare_label], timings[dmeta_label]
    print(f"{name}: NiMARE {nimare.per_unit:.2f} s ({nimare_label}), dmeta "
          f"{ours.per_unit:.2f} s ({dmeta_label}): {ratio(nimare, ours):.0f}x per core")


def jackknife(ours, theirs):
    """Jackknife of the uncorrected z map, one refit per analysis in both tools."""
    from nimare.diagnostics import Jackknife

    dmeta.Jackknife(target_image="z", voxel_thresh=3.1).transform(ours)  # compile, warm up
    fresh = copy.deepcopy(theirs)  # NiMARE adds the diagnostic's tables to the result it gets
    timings = _whole_runs("pain Jackknife, z > 3.1", {
        "NiMARE 1 core": lambda: Jackknife(target_image="z", voxel_thresh=3.1).transform(fresh),
        "dmeta 1 worker": lambda: dmeta.Jackknife(target_image="z",
                                                  voxel_thresh=3.1).transform(ours),
    }, repeats=3)
    _report("Jackknife pain", timings, "NiMARE 1 core", "dmeta 1 worker")


def stability(ours, theirs, n_iters):
    """ResampledStability leave_1_out, each tool's null of ``n_iters`` iterations."""
    from nimare.correct import FWECorrector
    from nimare.diagnostics import ResampledStability

    # NiMARE's stability takes its null's length from the corrector the result went through.
    corrected = FWECorrector(method="montecarlo", n_iters=n_iters).transform(theirs)
    results = {}

    def run_nimare():
        results["NiMARE"] = ResampledStability(resampling_policy="leave_1_out").transform(
            corrected)

    def run_dmeta():
        results["dmeta"] = dmeta.ResampledStability(
            resampling_policy="leave_1_out", n_iters=n_iters, random_state=0).transform(ours)

    timings = _whole_runs(f"pain ResampledStability leave_1_out, {n_iters}-iteration null",
                    {"NiMARE 1 core": run_nimare, "dmeta 2 workers": run_dmeta},
                    cores={"dmeta 2 workers": 2})
    _report(f"ResampledStability leave_1_out pain, {n_iters} iterations", timings,
            "NiMARE 1 core", "dmeta 2 workers")
    name = f"{TARGET}_diag-ResampledStability"
    for label, result in results.items():
        values = result.get_map(name, return_type="array")
        print(f"  {label}: stable voxels >0 {(values > 0).sum()}, >=0.5 "
              f"{(values >= 0.5).sum()}, >=0.8 {(values >= 0.8).sum()}")


def full_refit(ours, n_iters):
    """refit="full": dmeta alone (NiMARE has no such mode), so a time and no ratio."""
    full = dmeta.ResampledStability(resampling_policy="leave_1_out", refit="full",
                                    n_iters=n_iters, random_state=0)
    start = time.perf_counter()
    out = full.transform(ours)
    seconds = time.perf_counter() - start
    values = out.get_map(f"{TARGET}_diag-ResampledStability", "array")
    print(f"ResampledStability leave_1_out refit='full' pain: 21 x {n_iters} = "
          f"{21 * n_iters} iterations in {seconds:.0f} s on 2 workers "
          f"({1000 * 2 * seconds / (21 * n_iters):.1f} ms per iteration-core); "
          f"stable voxels >0 {(values > 0).sum()}, >=0.8 {(values >= 0.8).sum()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-iters", type=int, default=5000,
                        help="Monte Carlo iterations of both tools' nulls (NiMARE default 5000)")
    parser.add_argument("--full-iters", type=int, default=5000)
    parser.add_argument("--no-full", action="store_true", help="skip the refit='full' run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    ours = dmeta.ALE().fit(dmeta.datasets.load_example("pain"))
    theirs = _nimare_pain(ours.space)
    check_same_input(ours, theirs)
    with local_client(1):
        jackknife(ours, theirs)
    with local_client(2):
        stability(ours, theirs, args.n_iters)
        if not args.no_full:
            full_refit(ours, args.full_iters)


if __name__ == "__main__":
    main()
