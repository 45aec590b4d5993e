"""Modeled-activation (MA) matrix build: dmeta's kernel against its previous one and NiMARE's.

Times, on one core and in one process, the build of the sparse (analysis x in-mask voxel) MA
matrix from synthetic analyses (benchmarks/synthetic.py) by:

* ``old``: the kernel dmeta used before (kept below, only for this comparison): Python-list
  appends and a sort of each analysis's voxels;
* ``new``: :func:`dmeta.ma_blocks.build_ma` in process (its blocks run one after
  the other here: the threshold above which they go to Dask is raised out of the way);
* ``nimare``: ``nimare.meta.kernel.ALEKernel().transform(dataset, return_type="sparse")``,
  NiMARE's MA step, on the same foci and sample sizes.

Each build runs after a warm-up (numba compilation), the best of ``--repeats`` is kept, and
runs are interleaved so load drift on a shared machine hits all alike. Every ``new`` matrix
is checked equal, bit for bit, to the ``old`` one. The old kernel and NiMARE hold every
non-zero in much larger temporaries (lists of int64 and float64; int64 COO coordinates), so
they are skipped above ``--old-max`` / ``--nimare-max`` analyses.

Usage::

    .venv/bin/python benchmarks/bench_ma.py                  # 500, 2000, 10000 analyses
    .venv/bin/python benchmarks/bench_ma.py --sizes 500 2000 --repeats 3
"""

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dmeta.kernels import KernelBank  # noqa: E402
from dmeta.ma_blocks import build_ma  # noqa: E402
from dmeta.modeled_activation import FociLayout, analysis_fwhms  # noqa: E402
from dmeta.space import Space  # noqa: E402
from synthetic import synthetic_foci, to_coordinate_set, to_nimare_dataset  # noqa: E402


# ---------------------------------------------------------------------------- old kernel
def old_ma_matrix(foci, kernels, space):
    """dmeta's MA build before the blocked kernel (for comparison only)."""
    lookup = np.full(int(np.prod(space.shape)), -1, dtype=np.int64)
    lookup[space.flat_index] = np.arange(space.n_voxels)
    indptr, indices, data = _old_ma_rows(
        foci.ijk, foci.starts, kernels.index, kernels.stack(), np.array(space.shape), lookup
    )
    return sparse.csr_matrix(
        (data.astype(np.float32), indices, indptr), shape=(len(foci.ids), space.n_voxels)
    )


@numba.njit(cache=True)
def _old_ma_rows(ijk, starts, kernel_index, kernels, shape, lookup):
    n_analyses = starts.shape[0] - 1
    side = kernels.shape[1]
    r = side // 2
    nx, ny, nz = shape[0], shape[1], shape[2]
    buf = np.zeros(nx * ny * nz)
    touched = np.empty(nx * ny * nz, dtype=np.int64)
    indptr = np.zeros(n_analyses + 1, dtype=np.int64)
    indices = []
    data = []
    for a in range(n_analyses):
        kern = kernels[kernel_index[a]]
        n_touched = 0
        for f in range(starts[a], starts[a + 1]):
            ci, cj, ck = ijk[f, 0], ijk[f, 1], ijk[f, 2]
            for di in range(max(0, r - ci), min(side, nx - ci + r)):
                for dj in range(max(0, r - cj), min(side, ny - cj + r)):
                    base = ((ci + di - r) * ny + (cj + dj - r)) * nz + ck - r
                    for dk in range(max(0, r - ck), min(side, nz - ck + r)):
                        v = kern[di, dj, dk]
                        if v > 0.0:
                            idx = base + dk
                            if buf[idx] == 0.0:
                                touched[n_touched] = idx
                                n_touched += 1
                            if v > buf[idx]:
                                buf[idx] = v
        row = np.sort(touched[:n_touched])
        count = 0
        for idx in row:
            col = lookup[idx]
            if col >= 0:
                indices.append(col)
                data.append(buf[idx])
                count += 1
            buf[idx] = 0.0
        indptr[a + 1] = indptr[a] + count
    return indptr, np.array(indices, dtype=np.int64), np.array(data)


# ---------------------------------------------------------------------------- runs
def same_matrix(a, b):
    """Whether two CSR matrices are equal bit for bit (shape, dtypes, indptr, indices, data)."""
    return (a.shape == b.shape and a.data.dtype == b.data.dtype
            and a.indices.dtype == b.indices.dtype
            and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data.view(np.uint32), b.data.view(np.uint32)))


def runners(n, space, args):
    """Build callables for one size: label -> function returning the MA matrix."""
    studies = synthetic_foci(n, seed=0)
    cset = to_coordinate_set(studies)
    foci = FociLayout(cset, space)
    kernels = KernelBank(analysis_fwhms(cset), space.zooms)
    out = {"new": lambda: build_ma(foci, kernels, space, dask_min=None)[1]}
    if n <= args.old_max:
        out["old"] = lambda: old_ma_matrix(foci, kernels, space)
    if n <= args.nimare_max:
        from nimare.meta.kernel import ALEKernel

        dataset = to_nimare_dataset(studies)
        out["nimare"] = lambda: ALEKernel().transform(dataset, return_type="sparse")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 10000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--old-max", type=int, default=2000,
                        help="skip the old kernel above this many analyses (memory)")
    parser.add_argument("--nimare-max", type=int, default=2000,
                        help="skip NiMARE above this many analyses (memory)")
    args = parser.parse_args(argv)
    space = Space.from_mask()

    print(f"{'analyses':>9} {'new s':>8} {'old s':>8} {'nimare s':>9} "
          f"{'old/new':>8} {'nimare/new':>11} {'nnz/analysis':>13}")
    # Warm-up: numba compilation (or loading its cache), NiMARE's imports.
    for fn in runners(20, space, argparse.Namespace(old_max=20, nimare_max=20)).values():
        fn()
    for n in args.sizes:
        run = runners(n, space, args)
        best, new = _timed_with_check(run, args.repeats)
        cells = [f"{best.get(k, np.nan):8.2f}" for k in ("new", "old")]
        cells.append(f"{best.get('nimare', np.nan):9.2f}")
        cells.append(f"{best.get('old', np.nan) / best['new']:8.1f}")
        cells.append(f"{best.get('nimare', np.nan) / best['new']:11.1f}")
        print(f"{n:>9} " + " ".join(cells) + f" {new.nnz / n:13.0f}", flush=True)


def _timed_with_check(run, repeats):
    """Best times, and the new matrix after checking it against the old one bit for bit."""
    best = dict.fromkeys(run, np.inf)
    new = old = None
    for _ in range(repeats):
        for label, fn in run.items():
            start = time.perf_counter()
            result = fn()
            best[label] = min(best[label], time.perf_counter() - start)
            if label == "new":
                new = result
            elif label == "old":
                old = result
            del result
    if old is not None and not same_matrix(new, old):
        raise AssertionError("the new MA matrix differs from the old one")
    return best, new


if __name__ == "__main__":
    main()
