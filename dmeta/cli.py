"""The ``dmeta`` command line, for batch jobs on login nodes and the demo.

Bad input prints one line on stderr and exits with 2; a cluster that cannot be reached or
started exits with 1; neither prints a traceback.
"""

import argparse
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from dmeta.errors import InputError

EXIT_INPUT, EXIT_CLUSTER = 2, 1


def _quick():
    """Small iteration counts for CI and notebooks (``DMETA_QUICK=1``)."""
    return os.environ.get("DMETA_QUICK", "") not in ("", "0")


def _add_cluster_options(parser):
    parser.add_argument("--cluster", default=None,
                        help="local, slurm, pbs or tcp://HOST:PORT (default: local)")
    parser.add_argument("--workers", type=int, default=None, help="number of Dask workers")


def _add_fwe_options(parser, n_iters):
    parser.add_argument("--n-iters", type=int, default=n_iters, help="Monte Carlo iterations")
    parser.add_argument("--seed", type=int, default=None, help="root random seed")
    parser.add_argument("--voxel-thresh", type=float, default=0.001,
                        help="cluster-forming uncorrected p (default 0.001)")
    parser.add_argument("--chunk-iters", type=int, default=None,
                        help="iterations per task (results do not depend on it)")


def build_parser():
    parser = argparse.ArgumentParser(prog="dmeta", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    ale = commands.add_parser("ale", help="ALE with Monte Carlo FWE correction")
    ale.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    ale.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    ale.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    _add_fwe_options(ale, n_iters=5000)
    _add_cluster_options(ale)

    demo = commands.add_parser("demo", help="run the example analysis on bundled data")
    demo.add_argument("--out", default="dmeta-demo", help="output folder (default ./dmeta-demo)")
    _add_cluster_options(demo)
    return parser


def run_ale(cset, out, n_iters, seed, voxel_thresh, chunk_iters=None, nifti=None):
    """Fit ALE, correct with Monte Carlo FWE kept in ``out``, and save the result there."""
    from dmeta.ale import ALE
    from dmeta.correct import FWECorrector

    result = ALE().fit(cset)
    corrector = FWECorrector(voxel_thresh=voxel_thresh, n_iters=n_iters, seed=seed,
                             chunk_iters=chunk_iters, store=out)
    result = corrector.transform(result)
    result.to_zarr(out)
    if nifti:
        result.save_nifti(nifti)
    return result


def _summary(result, name):
    z = result.get_map("z_desc-size_level-cluster_corr-FWE_method-montecarlo", "array")
    stat = result.get_map("stat", "array")
    return (f"{name}: max ALE {stat.max():.4f}, {int((z > 1.645).sum())} voxels in clusters "
            f"significant at cluster-level FWE p < 0.05 ({result.nulls.sizes['iteration']} "
            "iterations)")


def cmd_ale(args):
    from dmeta.io import load

    cset = load(args.input)
    with _cluster(args):
        result = run_ale(cset, args.out, args.n_iters, args.seed, args.voxel_thresh,
                         args.chunk_iters, args.nifti)
    print(_summary(result, Path(args.input).name))
    print(f"results: {Path(args.out).resolve()}"
          + (f"  NIfTI maps: {Path(args.nifti).resolve()}" if args.nifti else ""))


def cmd_demo(args):
    from dmeta.datasets import load_example

    out = Path(args.out).resolve()
    n_iters = 200 if _quick() else 5000
    cset = load_example("semantic_knowledge")
    with _cluster(args), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the foci outside the mask
        result = run_ale(cset, out / "semantic_knowledge.zarr", n_iters, seed=1,
                         voxel_thresh=0.001, nifti=out / "semantic_knowledge")
    print(_summary(result, "semantic_knowledge"))
    print(f"results: {out / 'semantic_knowledge.zarr'} (open with dmeta.open_result)")
    print(f"NIfTI maps and tables: {out / 'semantic_knowledge'}/")


def _cluster(args):
    from dmeta.compute import session

    return session(args.cluster, args.workers)


COMMANDS = {"ale": cmd_ale, "demo": cmd_demo}


def _interrupt_on_sigterm():
    """A scheduler's SIGTERM ends the run like Ctrl-C, so worker jobs are released."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        _interrupt_on_sigterm()
    from dmeta.compute import ClusterError

    try:
        COMMANDS[args.command](args)
    except InputError as exc:
        print(f"dmeta: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterError as exc:
        print(f"dmeta: cluster error: {exc}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("dmeta: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
