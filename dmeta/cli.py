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

from dmeta import __version__
from dmeta.errors import InputError
from dmeta.io.spaces import UNKNOWN_SPACE_POLICIES
from dmeta.results.thresholds import ZMap

EXIT_INPUT, EXIT_CLUSTER = 2, 1


def _quick():
    """Small iteration counts for CI and notebooks (``DMETA_QUICK=1``)."""
    return os.environ.get("DMETA_QUICK", "") not in ("", "0")


def _add_cluster_options(parser):
    parser.add_argument("--cluster", default=None,
                        help="local, slurm, pbs or tcp://HOST:PORT (default: local)")
    parser.add_argument("--workers", type=int, default=None, help="number of Dask workers")


def _add_input_options(parser, ids=True):
    """How the coordinates are read and which kernels they get: every analysis command."""
    if ids:
        parser.add_argument("--ids", default=None, metavar="FILE",
                            help="use only these analyses (one analysis id per line)")
    parser.add_argument("--unknown-space", choices=UNKNOWN_SPACE_POLICIES, default="keep",
                        help="foci in unrecognised spaces (OTHER, UNKNOWN, none): use as "
                             "given, as NiMARE does (keep, default), drop, or error")
    parser.add_argument("--drop-outside-mask", action="store_true",
                        help="drop foci whose centre is outside the mask (dmeta.FocusFilter); "
                             "by default every focus counts, as in NiMARE")
    parser.add_argument("--sample-size", type=float, default=None, metavar="N",
                        help="one sample size for every analysis's kernel (e.g. when the "
                             "input has none)")
    parser.add_argument("--kernel-fwhm", type=float, default=None, metavar="MM",
                        help="one kernel FWHM in mm for every analysis")


def _add_fwe_options(parser, n_iters):
    parser.add_argument("--n-iters", type=int, default=n_iters, help="Monte Carlo iterations")
    parser.add_argument("--seed", type=int, default=None, help="root random seed")
    parser.add_argument("--voxel-thresh", type=float, default=0.001,
                        help="cluster-forming uncorrected p (default 0.001)")
    parser.add_argument("--chunk-iters", type=int, default=None,
                        help="iterations per task (results do not depend on it)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="dmeta", description="Coordinate-based meta-analysis (ALE) on Dask, with results "
                                  "in Zarr: batch jobs on login nodes, and the demo.")
    parser.add_argument("--version", action="version", version=f"dmeta {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    ale = commands.add_parser("ale", help="ALE with Monte Carlo FWE correction")
    ale.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    ale.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    ale.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    _add_input_options(ale)
    _add_fwe_options(ale, n_iters=5000)
    _add_cluster_options(ale)

    stab = commands.add_parser("stability", help="resampled stability of an ALE (resumable)")
    stab.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    stab.add_argument("--policy", required=True,
                      choices=["leave_1_out", "leave_k_out", "subsample"])
    stab.add_argument("--k", type=int, default=None, help="analyses left out (leave_k_out)")
    stab.add_argument("--target-n", type=int, default=None, help="analyses kept (subsample)")
    stab.add_argument("--n-resamples", type=int, default=None, help="number of replicates")
    stab.add_argument("--refit", choices=["approximate", "full"], default="approximate",
                      help="one shared null (NiMARE's) or a Monte Carlo null per replicate")
    stab.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    _add_input_options(stab)
    _add_fwe_options(stab, n_iters=5000)
    _add_cluster_options(stab)

    sub = commands.add_parser(
        "subtract", help="ALE subtraction: INPUT1 minus INPUT2, or two groups of one studyset",
        usage="dmeta subtract (INPUT1 INPUT2 | STUDYSET --ids1 FILE --ids2 FILE) --out STORE "
              "[options]")
    sub.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="two inputs (group 1, group 2) in any supported format, or one "
                          "studyset with --ids1 and --ids2")
    sub.add_argument("--ids1", default=None, metavar="FILE",
                     help="analysis ids of group 1 in the studyset, one per line")
    sub.add_argument("--ids2", default=None, metavar="FILE",
                     help="analysis ids of group 2 in the studyset, one per line")
    sub.add_argument("--out", required=True, help="Zarr store for the result")
    sub.add_argument("--n-iters", type=int, default=5000, help="permutations")
    sub.add_argument("--seed", type=int, default=None, help="root random seed")
    sub.add_argument("--chunk-iters", type=int, default=None,
                     help="permutations per task (results do not depend on it)")
    sub.add_argument("--tie-handling", choices=["exact", "nimare"], default="exact",
                     help="exact (default): a relabelling that reproduces the observed "
                          "difference is a tie, counted in both tails; nimare: NiMARE "
                          "0.22.1's float32 comparison, for parity")
    _add_input_options(sub, ids=False)
    sub.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    _add_cluster_options(sub)

    rep = commands.add_parser("report", help="write the HTML report of a result store")
    rep.add_argument("store", help="Zarr store written by dmeta (e.g. RUN.zarr)")
    rep.add_argument("--html", required=True, help="folder for index.html and figures/")

    demo = commands.add_parser("demo", help="run the example analysis on bundled data")
    demo.add_argument("--out", default="dmeta-demo", help="output folder (default ./dmeta-demo)")
    _add_cluster_options(demo)
    return parser


def _summary(result, name):
    zmap = ZMap.of("z_desc-size_level-cluster_corr-FWE_method-montecarlo", result.maps)
    stat = result.get_map("stat", "array")
    return (f"{name}: max ALE {stat.max():.4f}, {int(zmap.significant(result).sum())} voxels "
            f"in clusters significant at cluster-level FWE {zmap.criterion} "
            f"({result.nulls.sizes['iteration']} iterations)")


def read_ids(path):
    """Analysis ids from a text file, one per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise InputError(f"{path}: ids file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ids file ({exc})") from None
    ids = [line.split("#", 1)[0].strip() for line in lines]
    ids = [i for i in ids if i]
    if not ids:
        raise InputError(f"{path}: ids file lists no analysis ids")
    return ids


def _select(cset, ids_file):
    """The analyses listed in ``ids_file``; errors name the ids file as well as the data."""
    if ids_file is None:
        return cset
    ids = read_ids(ids_file)
    try:
        return cset.select(ids)
    except InputError as exc:
        raise InputError(f"{ids_file}: {exc}") from None


def _coordinates(path, args, ids_file=None):
    """Read ``path`` as the command's options ask: spaces, analyses, foci in the mask."""
    from dmeta.focus_filter import FocusFilter
    from dmeta.io import load

    cset = _select(load(path, unknown_space=args.unknown_space), ids_file)
    return FocusFilter().transform(cset) if args.drop_outside_mask else cset


def _kernel(args):
    return {"kernel_fwhm": args.kernel_fwhm, "sample_size": args.sample_size}


def cmd_ale(args):
    from dmeta.demo import corrected_ale

    cset = _coordinates(args.input, args, args.ids)
    with _cluster(args):
        result = corrected_ale(cset, args.out, args.n_iters, args.seed, args.voxel_thresh,
                               args.chunk_iters, **_kernel(args))
    if args.nifti:
        result.save_nifti(args.nifti)
    print(_summary(result, Path(args.input).name))
    print(f"results: {Path(args.out).resolve()}"
          + (f"  NIfTI maps: {Path(args.nifti).resolve()}" if args.nifti else ""))


def cmd_stability(args):
    from dmeta.diagnostics import stability_sweep

    cset = _coordinates(args.input, args, args.ids)
    with _cluster(args):
        sweep = stability_sweep(
            cset, [args.policy], k=args.k, target_n=args.target_n,
            n_resamples=args.n_resamples, random_state=args.seed,
            voxel_thresh=args.voxel_thresh, n_iters=args.n_iters, refit=args.refit,
            store=args.out, chunk_iters=args.chunk_iters, **_kernel(args),
        )
    print(sweep.drop_vars("stability").to_dataframe().to_string())
    print(f"results: {Path(args.out).resolve()}")


def _groups(args):
    """(group 1, group 2, their names) from two inputs, or one studyset and two ids files."""
    by_ids = args.ids1 is not None or args.ids2 is not None
    if by_ids and (len(args.inputs) != 1 or args.ids1 is None or args.ids2 is None):
        raise InputError("subtract: give one studyset with both --ids1 and --ids2, "
                         "or two inputs without them")
    if by_ids:
        return (_coordinates(args.inputs[0], args, args.ids1),
                _coordinates(args.inputs[0], args, args.ids2),
                Path(args.ids1).name, Path(args.ids2).name)
    if len(args.inputs) != 2:
        raise InputError(f"subtract: expected two inputs (group 1, group 2), got "
                         f"{len(args.inputs)}; or one studyset with --ids1 and --ids2")
    return (*(_coordinates(path, args) for path in args.inputs),
            *(Path(path).name for path in args.inputs))


def cmd_subtract(args):
    from dmeta.subtraction import ALESubtraction

    cset1, cset2, name1, name2 = _groups(args)
    with _cluster(args):
        result = ALESubtraction(n_iters=args.n_iters, seed=args.seed,
                                chunk_iters=args.chunk_iters, tie_handling=args.tie_handling,
                                **_kernel(args)).fit(cset1, cset2)
    result.to_zarr(args.out)
    if args.nifti:
        result.save_nifti(args.nifti)
    print(_subtraction_summary(result, name1, name2))
    print(f"results: {Path(args.out).resolve()}"
          + (f"  NIfTI maps: {Path(args.nifti).resolve()}" if args.nifti else ""))


def _subtraction_summary(result, name1, name2):
    z = result.get_map("z_desc-group1MinusGroup2", "array")
    n_iters = result.attrs["params"]["n_iters"]
    return (f"{name1} minus {name2}: {int((z > 1.96).sum())} voxels with group 1 > group 2 "
            f"and {int((z < -1.96).sum())} with group 2 > group 1 at uncorrected two-sided "
            f"p < 0.05 ({n_iters} permutations)")


def cmd_demo(args):
    """The two-sample reference example (dmeta.demo), and where its outputs are."""
    from dmeta.demo import run_demo

    with _cluster(args):
        demo = run_demo(args.out, n_iters=200 if _quick() else 5000)
    for name, result in demo.groups.items():
        print(_summary(result, name))
    print(_subtraction_summary(demo.subtraction, *demo.groups))
    print(f"conjunction: {int((demo.conjunction.get_fdata() > 0).sum())} voxels significant "
          "in both groups")
    print(f"results: {demo.out}/ (Zarr stores *.zarr, open with dmeta.open_result; NIfTI maps "
          f"and TSV tables in {', '.join(demo.groups)}, subtraction; conjunction.nii.gz)")
    print(f"report: {demo.report}")


def _cluster(args):
    from dmeta.compute import session

    return session(args.cluster, args.workers)


def cmd_report(args):
    from dmeta.reporting import report
    from dmeta.results import open_result

    print(f"report: {report(open_result(args.store), args.html)}")


COMMANDS = {"ale": cmd_ale, "subtract": cmd_subtract, "stability": cmd_stability,
            "demo": cmd_demo, "report": cmd_report}


def _interrupt_on_sigterm():
    """A scheduler's SIGTERM ends the run like Ctrl-C, so worker jobs are released."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one readable line each on stderr, as the errors are."""
    print(f"dmeta: warning: {message}", file=file or sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        _interrupt_on_sigterm()
    from dmeta.compute import ClusterError

    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            COMMANDS[args.command](args)
    except InputError as exc:
        print(f"dmeta: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ClusterError as exc:
        # One line: a batch job's log tail is folded onto it.
        print(f"dmeta: cluster error: {' | '.join(str(exc).splitlines())}", file=sys.stderr)
        return EXIT_CLUSTER
    except KeyboardInterrupt:
        print("dmeta: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
