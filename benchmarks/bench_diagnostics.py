"""Diagnostics on pain, dmeta side by side with NiMARE 0.22.1 in one process.

    python benchmarks/bench_diagnostics.py [--n-iters N] [--no-full] [--full-iters N]

* Jackknife (target "z", z > 3.1): NiMARE on 1 core vs dmeta in-process (1 core).
* ResampledStability leave_1_out at NiMARE's defaults (cluster-size FWE target, Monte Carlo
  null of the corrector's iterations, grey-matter foci): NiMARE on 1 core vs dmeta on a
  2-worker local cluster; the per-core ratio counts dmeta's 2 cores.
* ResampledStability leave_1_out with refit="full": its own null of --full-iters iterations
  per replicate (21 x 5000 = 105,000 iterations by default); time printed.
"""

import argparse
import copy
import time
import warnings

import dmeta
from dmeta.compute import close, connect
from dmeta.datasets import example_path

TARGET = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


def _nimare_pain(space):
    from nimare.meta.cbma import ALE
    from nimare.studyset import Studyset

    dset = Studyset(str(example_path("pain")), target="mni152_2mm").to_dataset()
    ijk = space.mm_to_ijk(dset.coordinates[["x", "y", "z"]].to_numpy())
    dset.coordinates = dset.coordinates[space.in_mask(ijk)].reset_index(drop=True)
    return ALE(mask=space.mask_img).fit(dset)


def _time(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-iters", type=int, default=5000,
                        help="Monte Carlo iterations of the FWE corrector (NiMARE default 5000)")
    parser.add_argument("--full-iters", type=int, default=5000)
    parser.add_argument("--no-full", action="store_true", help="skip the refit='full' run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from nimare.correct import FWECorrector
    from nimare.diagnostics import Jackknife, ResampledStability

    ours = dmeta.ALE().fit(dmeta.datasets.load_example("pain"))
    theirs = _nimare_pain(ours.space)

    dmeta.Jackknife(target_image="z", voxel_thresh=3.1).transform(ours)  # compile, warm up
    t_ours, _ = _time(lambda: dmeta.Jackknife(target_image="z", voxel_thresh=3.1).transform(ours))
    t_nim, _ = _time(lambda: Jackknife(target_image="z", voxel_thresh=3.1).transform(
        copy.deepcopy(theirs)))
    print(f"Jackknife pain: NiMARE {t_nim:.2f} s (1 core), dmeta {t_ours:.3f} s (1 core): "
          f"{t_nim / t_ours:.0f}x per core")

    corrected = FWECorrector(method="montecarlo", n_iters=args.n_iters).transform(theirs)
    t_nim, res = _time(lambda: ResampledStability(resampling_policy="leave_1_out").transform(
        copy.deepcopy(corrected)))
    client = connect("local", workers=2, threads_per_worker=1, quiet=True, dashboard_address=":0")
    try:
        stab = dmeta.ResampledStability(resampling_policy="leave_1_out", n_iters=args.n_iters,
                                        random_state=0)
        t_ours, out = _time(lambda: stab.transform(ours))
        print(f"ResampledStability leave_1_out pain, {args.n_iters} iterations: NiMARE "
              f"{t_nim:.1f} s (1 core), dmeta {t_ours:.1f} s (2 workers): "
              f"{t_nim / (2 * t_ours):.0f}x per core")
        name = f"{TARGET}_diag-ResampledStability"
        for label, values in (("NiMARE", res.get_map(name, return_type="array")),
                              ("dmeta", out.get_map(name, "array"))):
            print(f"  {label}: stable voxels >0 {(values > 0).sum()}, >=0.5 "
                  f"{(values >= 0.5).sum()}, >=0.8 {(values >= 0.8).sum()}")
        if not args.no_full:
            full = dmeta.ResampledStability(resampling_policy="leave_1_out", refit="full",
                                            n_iters=args.full_iters, random_state=0)
            t_full, out = _time(lambda: full.transform(ours))
            values = out.get_map(f"{TARGET}_diag-ResampledStability", "array")
            print(f"ResampledStability leave_1_out refit='full' pain: 21 x {args.full_iters} = "
                  f"{21 * args.full_iters} iterations in {t_full:.0f} s on 2 workers "
                  f"({1000 * 2 * t_full / (21 * args.full_iters):.1f} ms per iteration-core); "
                  f"stable voxels >0 {(values > 0).sum()}, >=0.8 {(values >= 0.8).sum()}")
    finally:
        close(client)


if __name__ == "__main__":
    main()
