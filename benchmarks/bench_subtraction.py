"""ALE subtraction, dmeta vs NiMARE 0.22.1 side by side in one process.

1. knowledge vs relatedness: dmeta on one single-threaded worker against NiMARE with
   n_cores=1; both timed end to end (group ALEs, null, maps); permutations per second and
   the ratio are printed.
2. 500 vs 400 synthetic analyses at 10,000 permutations: dmeta's time and the worker's peak
   memory, against NiMARE's per-permutation cost measured on a few permutations (the slope
   between two short runs, so NiMARE's set-up is not counted as permutation time).

    python benchmarks/bench_subtraction.py [--n-iters 10000] [--nimare-iters 200]
        [--skip-synthetic]
"""

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import dmeta
from dmeta.compute import close, connect
from dmeta.datasets import example_path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import synthetic_foci, to_coordinate_set, to_nimare_dataset  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _nimare_in_mask(name, space):
    from nimare.io import convert_sleuth_to_dataset

    dset = convert_sleuth_to_dataset(str(example_path(name)))
    ijk = space.mm_to_ijk(dset.coordinates[["x", "y", "z"]].to_numpy())
    dset.coordinates = dset.coordinates[space.in_mask(ijk)].reset_index(drop=True)
    return dset


def _nimare_fit(d1, d2, n_iters, mask):
    from nimare.meta.cbma import ALESubtraction

    return ALESubtraction(n_iters=n_iters, n_cores=1, mask=mask).fit(d1, d2)


def _worker_peak_mib(client):
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return max(peaks.values()) / 1024


def example(client, n_iters, nimare_iters):
    c1 = dmeta.datasets.load_example("semantic_knowledge")
    c2 = dmeta.datasets.load_example("semantic_relatedness")
    dmeta.ALESubtraction(n_iters=10, seed=0).fit(c1, c2)  # warm numba caches on the worker
    result, ours = _timed(lambda: dmeta.ALESubtraction(n_iters=n_iters, seed=0).fit(c1, c2))
    d1, d2 = (_nimare_in_mask(n, result.space)
              for n in ("semantic_knowledge", "semantic_relatedness"))
    _, theirs = _timed(lambda: _nimare_fit(d1, d2, nimare_iters, result.space.mask_img))
    ours_rate, theirs_rate = n_iters / ours, nimare_iters / theirs
    print(f"knowledge vs relatedness, end to end, one worker / one core each:\n"
          f"  dmeta   {n_iters:>6} permutations in {ours:7.1f} s: {ours_rate:8.1f} perm/s\n"
          f"  NiMARE  {nimare_iters:>6} permutations in {theirs:7.1f} s: "
          f"{theirs_rate:8.1f} perm/s\n"
          f"  ratio   {ours_rate / theirs_rate:.1f}x")


def synthetic_run(client, n_iters, nimare_iters=(2, 12)):
    studies1, studies2 = synthetic_foci(500, seed=1), synthetic_foci(400, seed=2)
    for s in studies2:
        s["id"] = "b" + s["id"]
        s["study_id"] = "b" + s["study_id"]
    c1, c2 = to_coordinate_set(studies1), to_coordinate_set(studies2)
    _, ours = _timed(lambda: dmeta.ALESubtraction(n_iters=n_iters, seed=0).fit(c1, c2))
    peak = _worker_peak_mib(client)
    print(f"500 vs 400 synthetic analyses, dmeta: {n_iters} permutations in {ours:.1f} s "
          f"({ours / n_iters * 1000:.2f} ms/perm), worker peak RSS {peak:.0f} MiB")
    d1, d2 = to_nimare_dataset(studies1), to_nimare_dataset(studies2)
    space = dmeta.space.Space.from_mask()
    times = [_timed(lambda n=n: _nimare_fit(d1, d2, n, space.mask_img))[1] for n in nimare_iters]
    per_perm = (times[1] - times[0]) / (nimare_iters[1] - nimare_iters[0])
    if per_perm <= 0:
        print(f"  NiMARE: fits of {nimare_iters} permutations took {times} s; set-up noise "
              "hides the permutation cost on this machine")
        return
    print(f"  NiMARE: {per_perm * 1000:.0f} ms/perm (from {nimare_iters} permutations), so "
          f"{n_iters} permutations would take {per_perm * n_iters / 60:.0f} min: "
          f"{per_perm * n_iters / ours:.0f}x dmeta's time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-iters", type=int, default=10_000)
    parser.add_argument("--nimare-iters", type=int, default=200)
    parser.add_argument("--skip-synthetic", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    client = connect("local", workers=1, threads_per_worker=1, quiet=True,
                     dashboard_address=":0")
    try:
        example(client, args.n_iters, args.nimare_iters)
        if not args.skip_synthetic:
            synthetic_run(client, args.n_iters)
    finally:
        close(client)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
