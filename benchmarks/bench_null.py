"""ALE approximate null: dmeta against NiMARE, p/z agreement and speed, in one process.

Per set (the bundled ``pain`` and ``semantic_knowledge``, synthetic sets of ``--analyses``):

* both tools' whole ``ALE().fit`` on the same foci, one core, interleaved (best of
  ``--repeats``), their time ratio, and max |dp|, max |dz| between the fitted maps;
* the null alone on dmeta's MA matrix: dmeta's default (``method="segments"``), the fold it
  replaced (``method="nimare"``, NiMARE's loop) and NiMARE's own numba kernels driven as
  ``ALE._compute_null_approximate`` drives them, and whether each of dmeta's equals
  NiMARE's weights bit for bit.

Quote the ratios, not the times: the machine may be shared (see benchmarks/README.md).
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: it reads this once

import dmeta  # noqa: E402
from bench_fwe import announce_run, check_same_input, measure, ratio  # noqa: E402
from dmeta.approximate_null import approximate_null, histogram_bins  # noqa: E402
from dmeta.ma_summary import MAHistograms  # noqa: E402
from dmeta.space import Space  # noqa: E402


def nimare_null(matrix, n_voxels, bins):
    """NiMARE's approximate null: its numba kernels in its ``_compute_null_approximate`` loop."""
    from nimare.meta.cbma.null_utils import _study_ma_histogram, _update_ale_histogram

    inv_step, n_bins = 1 / (bins[1] - bins[0]), bins.size
    null, tmp = None, np.zeros(n_bins)
    for a in range(matrix.shape[0]):
        values = matrix.data[matrix.indptr[a] : matrix.indptr[a + 1]]
        hist = _study_ma_histogram(values, n_voxels - values.size, 1.0 / n_voxels, inv_step,
                                   n_bins)
        if null is None:
            null = hist.copy()
            continue
        null_idx, hist_idx = np.flatnonzero(null > 0), np.flatnonzero(hist > 0)
        _update_ale_histogram(null_idx, null[null_idx], hist_idx, hist[hist_idx], bins,
                              inv_step, n_bins, tmp)
        null, tmp = tmp, null
    return null


def load_set(name):
    """(dmeta CoordinateSet, NiMARE Dataset) with the same foci."""
    if name.startswith("synthetic"):
        from synthetic import synthetic

        return synthetic(int(name.removeprefix("synthetic")), seed=0)
    from nimare_reference import nimare_dataset

    return dmeta.datasets.load_example(name), nimare_dataset(name)


def compare_fits(name, repeats):
    """Whole fits of both tools: the time ratio and the largest p and z differences."""
    from nimare.meta.cbma import ALE as NiMAREALE

    cset, dataset = load_set(name)
    space = Space.from_mask(None)
    fits = {}

    def fit_dmeta(_):
        fits["dmeta"] = dmeta.ALE().fit(cset)

    def fit_nimare(_):
        fits["nimare"] = NiMAREALE(mask=space.mask_img).fit(dataset)

    fit_dmeta(1)  # numba's compilation (cached on disk) is not part of a fit's cost
    workload = f"{name} ALE fit ({len(cset.ids)} analyses)"
    timings = measure(workload, {"NiMARE": fit_nimare, "dmeta": fit_dmeta}, [1], repeats)
    ours, theirs = fits["dmeta"], fits["nimare"]
    check_same_input(ours, theirs)
    diffs = {m: np.abs(ours.get_map(m, "array").astype(float)
                       - theirs.get_map(m, return_type="array").astype(float)).max()
             for m in ("p", "z", "stat")}
    return ours, timings, diffs


def compare_nulls(result, repeats):
    """The null alone on dmeta's MA matrix: timings of the three and the weights' agreement."""
    matrix = result.estimator.ma_.matrix
    n_voxels = result.estimator.space_.n_voxels
    histograms = MAHistograms.of_matrix(matrix)
    bins = histogram_bins(matrix.max(axis=1).toarray().ravel())
    nulls = {}
    runners = {
        "NiMARE kernels": lambda _: nulls.__setitem__("nimare", nimare_null(matrix, n_voxels,
                                                                            bins)),
        "old fold": lambda _: nulls.__setitem__("fold", approximate_null(
            histograms, n_voxels, bins, method="nimare")),
        "segments": lambda _: nulls.__setitem__("new", approximate_null(histograms, n_voxels,
                                                                        bins)),
    }
    timings = measure(f"null of {matrix.shape[0]} analyses", runners, [1], repeats)
    ref = nulls["nimare"]
    return timings, np.array_equal(nulls["new"], ref), np.array_equal(nulls["fold"], ref)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--analyses", type=int, nargs="*", default=[500, 2000],
                        help="sizes of the synthetic sets (benchmarks/synthetic.py, seed 0)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="best of this many interleaved runs per tool")
    parser.add_argument("--skip-bundled", action="store_true")
    args = parser.parse_args(argv)
    announce_run()
    names = [] if args.skip_bundled else ["pain", "semantic_knowledge"]
    names += [f"synthetic{n}" for n in args.analyses]
    head = (f"{'set':<20} {'max|dp|':>9} {'max|dz|':>9} {'max|dstat|':>10} {'fit x':>6} "
            f"{'null x NiMARE':>13} {'null x fold':>11} {'null==NiMARE':>12} {'fold==NiMARE':>12}")
    rows = []
    for name in names:
        result, fit_t, diffs = compare_fits(name, args.repeats)
        null_t, same, fold_same = compare_nulls(result, args.repeats)
        row = (f"{name:<20} {diffs['p']:9.1e} {diffs['z']:9.1e} {diffs['stat']:10.1e} "
               f"{ratio(fit_t['NiMARE'], fit_t['dmeta']):6.1f} "
               f"{ratio(null_t['NiMARE kernels'], null_t['segments']):13.1f} "
               f"{ratio(null_t['old fold'], null_t['segments']):11.1f} {same!s:>12} "
               f"{fold_same!s:>12}")
        times = ", ".join(f"{t.label} {t.per_unit:.2f} s" for t in [*fit_t.values(),
                                                                      *null_t.values()])
        print(row, f"\n    ({times}; load {os.getloadavg()[0]:.2f})", flush=True)
        rows.append(row)
    print()
    print(head)
    print(*rows, sep="\n")
    print("fit x: NiMARE's ALE().fit time over dmeta's (one core, same foci); null x: NiMARE's "
          "null kernels (or dmeta's old fold) over dmeta's null on the same MA matrix;\n"
          "null==NiMARE (fold==NiMARE): whether dmeta's null weights (its old fold's) equal "
          f"NiMARE's bit for bit. Load average at the end {os.getloadavg()[0]:.2f}.")


if __name__ == "__main__":
    main()
