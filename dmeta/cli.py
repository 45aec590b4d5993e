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
from dmeta.montecarlo.adaptive import (
    MAX_ITERS,
    PRECISION,
    STEP,
    StoppingRule,
    threshold_record,
)
from dmeta.montecarlo.adaptive import summary as stop_summary
from dmeta.results.thresholds import ZMap, is_z_map
from dmeta.validation import check_p, check_positive_int

EXIT_INPUT, EXIT_CLUSTER = 2, 1
N_ITERS, VOXEL_THRESH = 5000, 0.001
GROUPS_USAGE = "(INPUT1 INPUT2 | STUDYSET --ids1 FILE --ids2 FILE) --out STORE [options]"


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


def iterations_arg(text):
    """``--n-iters``: a whole number, or ``auto`` (stop at ``--precision``)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of iterations or 'auto', got {text!r}") from None


def _add_run_options(parser, n_iters, iters_help="Monte Carlo iterations", unit="iterations"):
    """--n-iters (a count or ``auto``), --precision and --max-iters (with ``auto``), --seed and
    --chunk-iters of a run's random draws (``unit``: what is drawn)."""
    parser.add_argument("--n-iters", type=iterations_arg, default=n_iters,
                        help=f"{iters_help}; 'auto' stops once the critical values are known "
                             "to --precision")
    parser.add_argument("--precision", type=float, default=None, metavar="P",
                        help="with --n-iters auto: largest relative Monte Carlo error of each "
                             f"critical value, in (0, 1) (default {PRECISION:g})")
    parser.add_argument("--max-iters", type=int, default=None, metavar="M",
                        help=f"with --n-iters auto: {unit} at which the run stops whatever its "
                             f"precision (default {MAX_ITERS})")
    parser.add_argument("--seed", type=int, default=None, help="root random seed")
    parser.add_argument("--chunk-iters", type=int, default=None,
                        help=f"{unit} per task (results do not depend on it"
                             f"; with --n-iters auto, a divisor of {STEP})")


def adaptive_options(args):
    """``precision`` and ``max_iters`` for an ``--n-iters auto`` run, checked before any
    input is read; {} for a fixed count (refusing --precision or --max-iters with it)."""
    if args.n_iters != "auto":
        given = [flag for flag, value in (("--precision", args.precision),
                                          ("--max-iters", args.max_iters)) if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)} apply to adaptive runs; add --n-iters auto")
        return {}
    precision = PRECISION if args.precision is None else args.precision
    max_iters = MAX_ITERS if args.max_iters is None else args.max_iters
    check_p("--precision", precision)
    check_positive_int("--max-iters", max_iters)
    block = args.chunk_iters or STEP
    try:
        StoppingRule(precision, max_iters).check_block(block, f"--chunk-iters {block}")
    except InputError as exc:
        raise InputError(str(exc).replace("max_iters", "--max-iters")
                         .replace("set chunk_iters", "set --chunk-iters")) from None
    return {"precision": precision, "max_iters": max_iters}


def _add_fwe_options(parser, n_iters, iters_help="Monte Carlo iterations"):
    _add_run_options(parser, n_iters, iters_help)
    parser.add_argument("--voxel-thresh", type=float, default=VOXEL_THRESH,
                        help=f"cluster-forming uncorrected p (default {VOXEL_THRESH})")


def _add_group_options(parser):
    """The two groups of a comparison (two inputs, or one studyset and two ids files)."""
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="two inputs (group 1, group 2) in any supported format, or one "
                             "studyset with --ids1 and --ids2")
    parser.add_argument("--ids1", default=None, metavar="FILE",
                        help="analysis ids of group 1 in the studyset, one per line")
    parser.add_argument("--ids2", default=None, metavar="FILE",
                        help="analysis ids of group 2 in the studyset, one per line")
    parser.add_argument("--out", required=True, help="Zarr store for the result")
    parser.add_argument("--tie-handling", choices=["exact", "nimare"], default="exact",
                        help="exact (default): a relabelling that reproduces the observed "
                             "difference is a tie, counted in both tails; nimare: NiMARE "
                             "0.22.1's float32 comparison, for parity")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="dmeta", description="Coordinate-based meta-analysis (ALE) on Dask, with results "
                                  "in Zarr: batch jobs on login nodes, and the demo.")
    parser.add_argument("--version", action="version", version=f"dmeta {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    ale = commands.add_parser("ale", help="ALE with Monte Carlo or predictive FWE correction")
    ale.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    ale.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    ale.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    ale.add_argument("--predictive", action="store_true",
                     help="FWE cutoffs predicted from the numbers of experiments, subjects and "
                          "foci (Frahm et al., 2025; 10-150 experiments with sample sizes; "
                          "needs XGBoost: pip install 'dmeta[predictive]') instead of the "
                          "Monte Carlo null: seconds instead of hours. Give --n-iters as well "
                          "to also run the Monte Carlo null, e.g. to compare the two")
    _add_input_options(ale)
    _add_fwe_options(ale, n_iters=None,
                     iters_help=f"Monte Carlo iterations (default {N_ITERS}; with --predictive, "
                                "no Monte Carlo null unless given)")
    _add_cluster_options(ale)

    stab = commands.add_parser(
        "stability", help="resampled stability of an ALE under one or more policies "
                          "(resumable; the store opens with dmeta report)")
    stab.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    stab.add_argument("--policy", required=True, nargs="+",
                      choices=["leave_1_out", "leave_k_out", "subsample"],
                      help="one or more policies, run as one sweep")
    stab.add_argument("--k", type=int, nargs="+", default=None,
                      help="analyses left out (leave_k_out); several values, one each")
    stab.add_argument("--target-n", type=int, nargs="+", default=None,
                      help="analyses kept (subsample); several values, one each")
    stab.add_argument("--n-resamples", type=int, default=None, help="number of replicates")
    stab.add_argument("--refit", choices=["approximate", "full"], default="approximate",
                      help="one shared null (NiMARE's) or a Monte Carlo null per replicate")
    stab.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    _add_input_options(stab)
    _add_fwe_options(stab, n_iters=N_ITERS)
    _add_cluster_options(stab)

    sub = commands.add_parser(
        "subtract", help="ALE subtraction: INPUT1 minus INPUT2, or two groups of one studyset",
        usage=f"dmeta subtract {GROUPS_USAGE}")
    _add_group_options(sub)
    _add_run_options(sub, N_ITERS, "permutations (also of the --fwe nulls)",
                     unit="permutations")
    sub.add_argument("--fwe", action="store_true",
                     help="Monte Carlo FWE correction of the difference (voxel level, and "
                          "cluster size and mass), its nulls kept in --out so a rerun resumes")
    sub.add_argument("--fwe-target", choices=["pairwise", "main-effects", "all"], default=None,
                     help="with --fwe: correct the difference (pairwise, default), each "
                          "group's main effect, or all")
    sub.add_argument("--vfwe-only", action="store_true",
                     help="with --fwe: voxel-level FWE only (no cluster nulls)")
    sub.add_argument("--voxel-thresh", type=float, default=None,
                     help=f"with --fwe: cluster-forming uncorrected p (default {VOXEL_THRESH})")
    _add_input_options(sub, ids=False)
    sub.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    _add_cluster_options(sub)

    con = commands.add_parser(
        "contrast", usage=f"dmeta contrast {GROUPS_USAGE}",
        help="ALE subtraction tested where the groups' corrected main effects survive "
             "(ContrastWorkflow)",
        description="Each group's ALE is corrected and thresholded at --alpha; group 1 > "
                    "group 2 is then tested only where group 1's main effect survives, group 2 "
                    "> group 1 only where group 2's does, and the contrast is thresholded at "
                    "--alpha too (Laird et al., 2005; NiMARE's ContrastWorkflow).")
    _add_group_options(con)
    con.add_argument("--alpha", type=float, default=0.05,
                     help="threshold of the corrected main effects and of the contrast's p "
                          "(default 0.05)")
    con.add_argument("--corrector", choices=["fdr", "montecarlo"], default="fdr",
                     help="correction of the main effects: fdr (Benjamini-Hochberg, default) "
                          "or montecarlo (cluster-level FWE, --n-iters iterations each)")
    _add_run_options(con, N_ITERS, "permutations of the contrast (and Monte Carlo iterations of "
                                   "each main effect with --corrector montecarlo)")
    _add_input_options(con, ids=False)
    con.add_argument("--nifti", default=None,
                     help="also write maps as NIfTI and the methods text to this folder")
    _add_cluster_options(con)

    scale = commands.add_parser(
        "scale", help="SCALE: ALE against foci drawn from a base rate of activation")
    scale.add_argument("input", help="Sleuth .txt, NIMADS/NiMARE .json or parquet studyset dir")
    scale.add_argument("--base-rate", required=True, metavar="STUDYSET",
                       help="studyset whose every focus is a base-rate coordinate (e.g. a "
                            "BrainMap export), in any supported format")
    scale.add_argument("--out", required=True, help="Zarr store for the run (resumable)")
    scale.add_argument("--nifti", default=None, help="also write maps as NIfTI to this folder")
    _add_input_options(scale)
    _add_run_options(scale, N_ITERS, "null datasets drawn from the base rate")
    _add_cluster_options(scale)

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


def _predictive_summary(result, name):
    from dmeta.predictive import SUFFIX

    record = result.attrs["corrections"][SUFFIX]
    voxel, size = (ZMap.of(f"z_{level}_{SUFFIX}", result.maps).significant(result).sum()
                   for level in ("level-voxel", "desc-size_level-cluster"))
    return (f"{name}: predictive FWE: {int(voxel)} voxels with ALE >= "
            f"{record['voxel_cutoff']:.4g}, {int(size)} voxels in clusters of at least "
            f"{record['cluster_size_cutoff']} voxels")


def _where_written(args):
    return (f"results: {Path(args.out).resolve()}"
            + (f"  NIfTI maps: {Path(args.nifti).resolve()}" if args.nifti else ""))


def cmd_ale(args):
    from dmeta.ale import ALE
    from dmeta.correct import FWECorrector

    montecarlo = not args.predictive or args.n_iters is not None
    if not montecarlo and (args.seed, args.chunk_iters, args.voxel_thresh, args.precision,
                           args.max_iters) != (None, None, VOXEL_THRESH, None, None):
        raise InputError("--seed, --chunk-iters, --voxel-thresh, --precision and --max-iters "
                         "set the Monte Carlo null, which --predictive replaces (its clusters "
                         "are formed at p < 0.001); add --n-iters N (or auto) to run a Monte "
                         "Carlo null as well")
    adaptive = adaptive_options(args)
    cset = _coordinates(args.input, args, args.ids)
    with _cluster(args):
        result = ALE(**_kernel(args)).fit(cset)
        if args.predictive:  # seconds, and may refuse the data: before the long null
            try:
                result = FWECorrector(method="predictive").transform(result)
            except InputError as exc:
                raise InputError(f"--predictive: {exc}") from None
        if montecarlo:
            n_iters = N_ITERS if args.n_iters is None else args.n_iters
            result = FWECorrector(voxel_thresh=args.voxel_thresh, n_iters=n_iters,
                                  seed=args.seed, chunk_iters=args.chunk_iters,
                                  store=args.out, **adaptive).transform(result)
    result.to_zarr(args.out)
    if args.nifti:
        result.save_nifti(args.nifti)
    name = Path(args.input).name
    if args.predictive:
        print(_predictive_summary(result, name))
    if montecarlo:
        print(_summary(result, name))
        _print_adaptive(result.attrs["corrections"].get(MONTECARLO))
    print(_where_written(args))


MONTECARLO = "corr-FWE_method-montecarlo"


def _print_adaptive(record, unit="iterations", what="Monte Carlo"):
    """Where an adaptive run stopped, and the histogram pass of a subtraction's FWE."""
    for label, run in ((what, record), (f"{what} (cluster-forming threshold)",
                                        threshold_record(record))):
        line = stop_summary(run, unit)
        if line:
            print(f"{label}: {line}")


def cmd_stability(args):
    from dmeta.diagnostics import stability_sweep
    from dmeta.diagnostics.sweep_summary import summary_table

    adaptive = adaptive_options(args)  # before any input is read
    cset = _coordinates(args.input, args, args.ids)
    with _cluster(args):
        sweep = stability_sweep(
            cset, args.policy, k=args.k, target_n=args.target_n,
            n_resamples=args.n_resamples, random_state=args.seed,
            voxel_thresh=args.voxel_thresh, n_iters=args.n_iters, refit=args.refit,
            store=args.out, chunk_iters=args.chunk_iters, **adaptive, **_kernel(args),
        )
    summary = summary_table(sweep)
    columns = ["Iterations (min)", "Iterations (median)", "Iterations (max)",
               "Precision reached"]
    print(summary.drop(columns=columns).to_string())
    print(summary[columns].to_string(float_format=lambda v: f"{v:.4g}"))
    if adaptive:
        print(f"precision reached: {summary['Precision reached'].max():.3f} (asked "
              f"{adaptive['precision']:g}, limit {adaptive['max_iters']} iterations)")
    print(f"results: {Path(args.out).resolve()}  report: dmeta report {args.out} --html DIR")


def _groups(args):
    """(group 1, group 2, their names) from two inputs, or one studyset and two ids files."""
    by_ids = args.ids1 is not None or args.ids2 is not None
    if by_ids and (len(args.inputs) != 1 or args.ids1 is None or args.ids2 is None):
        raise InputError(f"{args.command}: give one studyset with both --ids1 and --ids2, "
                         "or two inputs without them")
    if by_ids:
        return (_coordinates(args.inputs[0], args, args.ids1),
                _coordinates(args.inputs[0], args, args.ids2),
                Path(args.ids1).name, Path(args.ids2).name)
    if len(args.inputs) != 2:
        raise InputError(f"{args.command}: expected two inputs (group 1, group 2), got "
                         f"{len(args.inputs)}; or one studyset with --ids1 and --ids2")
    return (*(_coordinates(path, args) for path in args.inputs),
            *(Path(path).name for path in args.inputs))


def _subtraction(args, adaptive, **params):
    from dmeta.subtraction import ALESubtraction

    return ALESubtraction(n_iters=args.n_iters, seed=args.seed, chunk_iters=args.chunk_iters,
                          tie_handling=args.tie_handling, **_kernel(args), **adaptive,
                          **params)


def _subtraction_fwe(args, adaptive):
    """The --fwe corrector, its nulls in the run's store; FWE options without --fwe are
    refused rather than silently ignored."""
    from dmeta.correct import FWECorrector

    if not args.fwe:
        given = [flag for flag, value in (("--fwe-target", args.fwe_target),
                                          ("--vfwe-only", args.vfwe_only or None),
                                          ("--voxel-thresh", args.voxel_thresh))
                 if value is not None]
        if given:
            raise InputError(f"subtract: {', '.join(given)} set the FWE correction; add --fwe")
        return None
    voxel_thresh = VOXEL_THRESH if args.voxel_thresh is None else args.voxel_thresh
    return FWECorrector(voxel_thresh=voxel_thresh, n_iters=args.n_iters,
                        seed=args.seed, chunk_iters=args.chunk_iters, store=args.out,
                        vfwe_only=args.vfwe_only, target=args.fwe_target or "pairwise",
                        **adaptive)


def cmd_subtract(args):
    adaptive = adaptive_options(args)  # bad --precision/--max-iters refused before any input
    corrector = _subtraction_fwe(args, adaptive)
    cset1, cset2, name1, name2 = _groups(args)
    with _cluster(args):
        # The corrector's voxel_thresh, so a bad one is refused before the permutations.
        voxel_thresh = VOXEL_THRESH if corrector is None else corrector.voxel_thresh
        result = _subtraction(args, adaptive, voxel_thresh=voxel_thresh).fit(cset1, cset2)
        if corrector is not None:
            result = corrector.transform(result)
    result.to_zarr(args.out)
    if args.nifti:
        result.save_nifti(args.nifti)
    print(_subtraction_summary(result, name1, name2))
    _print_adaptive(result.attrs.get("permutations"), "permutations", "Permutations")
    if corrector is not None:
        print(*_corrected_counts(result, "_corr-FWE_method-montecarlo"), sep="\n")
        _print_adaptive(result.attrs["corrections"].get(MONTECARLO), "permutations",
                        "FWE permutations")
    print(_where_written(args))


def _subtraction_summary(result, name1, name2):
    z = result.get_map("z_desc-group1MinusGroup2", "array")
    n_iters = result.attrs.get("permutations", result.attrs["params"])["n_iters"]
    return (f"{name1} minus {name2}: {int((z > 1.96).sum())} voxels with group 1 > group 2 "
            f"and {int((z < -1.96).sum())} with group 2 > group 1 at uncorrected two-sided "
            f"p < 0.05 ({n_iters} permutations)")


def _corrected_counts(result, suffix):
    """One line per corrected z map: how many voxels pass its level."""
    for name in result.maps.data_vars:
        if is_z_map(name) and name.endswith(suffix):
            zmap = ZMap.of(name, result.maps)
            yield f"{name}: {int(zmap.significant(result).sum())} voxels at {zmap.criterion}"


def cmd_contrast(args):
    from dmeta.ale import ALE
    from dmeta.correct import FWECorrector
    from dmeta.workflows import ContrastWorkflow

    adaptive = adaptive_options(args)
    corrector = "fdr" if args.corrector == "fdr" else FWECorrector(
        n_iters=args.n_iters, seed=args.seed, chunk_iters=args.chunk_iters, **adaptive)
    # Built first: a bad --alpha is refused before any input is read.
    workflow = ContrastWorkflow(ALE(**_kernel(args)), _subtraction(args, adaptive), corrector,
                                alpha=args.alpha, output_dir=args.nifti)
    cset1, cset2, name1, name2 = _groups(args)
    with _cluster(args):
        result = workflow.fit(cset1, cset2)
    result.to_zarr(args.out)
    print(_contrast_summary(result, name1, name2, args.alpha))
    _print_adaptive(result.attrs.get("permutations"), "permutations", "Permutations")
    print(_where_written(args))


def _contrast_summary(result, name1, name2, alpha):
    def count(name):
        return int((result.get_map(name, "array") != 0).sum())

    z = result.get_map("z_desc-contrast", "array")
    return (f"{name1} vs {name2}: {count('z_desc-group1MainEffect')} and "
            f"{count('z_desc-group2MainEffect')} voxels in the corrected main effects "
            f"({count('z_desc-conjunction')} in both); contrast at p <= {alpha:g}: "
            f"{int((z > 0).sum())} voxels with group 1 > group 2, {int((z < 0).sum())} with "
            "group 2 > group 1")


def cmd_scale(args):
    from dmeta.scale import SCALE, scale_base_rate

    if adaptive_options(args):
        raise InputError("scale: --n-iters auto is not supported yet: SCALE's p-values count "
                         "exceedances over a fixed number of null datasets; give a number")
    try:
        xyz = scale_base_rate(args.base_rate, unknown_space=args.unknown_space)
    except InputError as exc:
        raise InputError(f"--base-rate {exc}") from None
    cset = _coordinates(args.input, args, args.ids)
    with _cluster(args):
        result = SCALE(xyz, n_iters=args.n_iters, seed=args.seed, chunk_iters=args.chunk_iters,
                       store=args.out, **_kernel(args)).fit(cset)
    result.to_zarr(args.out)
    if args.nifti:
        result.save_nifti(args.nifti)
    zmap = ZMap.of("z", result.maps)
    print(f"{Path(args.input).name}: max ALE {result.get_map('stat', 'array').max():.4f}, "
          f"{int(zmap.significant(result).sum())} voxels at uncorrected {zmap.criterion} "
          f"against a base rate of {len(xyz)} foci ({result.nulls.sizes['iteration']} null "
          "datasets)")
    print(_where_written(args))


def cmd_demo(args):
    """The two-sample reference example (dmeta.demo), and where its outputs are."""
    from dmeta.demo import run_demo

    with _cluster(args):
        demo = run_demo(args.out, n_iters=200 if _quick() else N_ITERS)
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


COMMANDS = {"ale": cmd_ale, "subtract": cmd_subtract, "contrast": cmd_contrast,
            "scale": cmd_scale, "stability": cmd_stability, "demo": cmd_demo,
            "report": cmd_report}


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
