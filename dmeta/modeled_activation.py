"""Modeled activation (MA): each analysis's foci smoothed by its kernel, max over foci.

The result is a sparse (analysis x in-mask voxel) matrix; ALE and every resampling
diagnostic work from it or from its log complement, log(1 - MA).
"""

import copy

import numba
import numpy as np
import pandas as pd
from scipy import sparse

from dmeta.errors import InputError
from dmeta.kernels import KernelBank, fwhm_from_sample_size
from dmeta.messages import examples, warn

#: Result table listing the foci whose centre is not an in-mask voxel.
OUTSIDE_TABLE = "outside_mask"


class FociLayout:
    """Every focus of a coordinate set located on a space's grid, grouped by analysis.

    Foci are kept wherever their centre lies, in the mask or not, inside the volume or not:
    as in NiMARE, a focus's kernel counts at every in-mask voxel it reaches.

    Attributes
    ----------
    ids : list of str
        Analysis ids, in order.
    ijk : (n_foci, 3) int64
        Voxel subscripts of the foci (possibly outside the grid), grouped by analysis.
    starts : (n_analyses + 1,) int64
        ``ijk[starts[a]:starts[a + 1]]`` are the foci of analysis ``a``.
    """

    def __init__(self, cset, space):
        foci = cset.foci  # grouped by analysis, in analysis order
        self.ids = list(cset.ids)
        self.ijk = space.mm_to_ijk(foci[["x", "y", "z"]].to_numpy(dtype=float)).astype(np.int64)
        position = pd.Index(self.ids).get_indexer(foci["id"])
        self.starts = np.concatenate(
            [[0], np.cumsum(np.bincount(position, minlength=len(self.ids)))]
        ).astype(np.int64)

    @property
    def counts(self):
        """Number of foci per analysis."""
        return np.diff(self.starts)


def outside_mask_foci(cset, layout, space):
    """The foci whose centre is not an in-mask voxel, with their voxel subscripts.

    Parameters
    ----------
    cset : CoordinateSet
    layout : FociLayout
        ``cset``'s foci on the grid of ``space``, in ``cset.foci`` order.
    space : Space

    Returns
    -------
    pandas.DataFrame
        The rows of ``cset.foci`` outside the mask, plus ``i``, ``j``, ``k`` and
        ``in_volume`` (False for foci beyond the edge of the grid).
    """
    foci, ijk = cset.foci, layout.ijk
    outside = ~space.in_mask(ijk)
    table = foci.loc[outside].reset_index(drop=True)
    table[["i", "j", "k"]] = ijk[outside]
    table["in_volume"] = space.in_volume(ijk[outside])
    return table


def _warn_outside(table, cset):
    if table.empty:
        return
    shown = examples(
        [f"{row.id} ({row.x:g}, {row.y:g}, {row.z:g})" for row in table.itertuples()], shown=3
    )
    warn(
        f"{_where(cset)}: {len(table)} of {len(cset.foci)} foci lie outside the mask "
        f"(e.g. {shown}). As in NiMARE they are kept: each kernel counts wherever it reaches "
        f"the mask. The full list is the result's table '{OUTSIDE_TABLE}'; "
        "dmeta.FocusFilter drops such foci."
    )


def _where(cset):
    return cset.source or "the coordinate set"


def analysis_fwhms(cset, kernel_fwhm=None, sample_size=None):
    """Kernel FWHM (mm) per analysis: fixed, from one sample size, or from each analysis's own.

    Raises
    ------
    InputError
        If both ``kernel_fwhm`` and ``sample_size`` are given, or neither is and some
        analyses have no sample size.
    """
    n = len(cset.ids)
    if kernel_fwhm is not None and sample_size is not None:
        raise InputError("give kernel_fwhm or sample_size, not both")
    if kernel_fwhm is not None:
        if not kernel_fwhm > 0:
            raise InputError(f"kernel_fwhm must be positive, got {kernel_fwhm!r}")
        return np.full(n, float(kernel_fwhm))
    if sample_size is not None:
        if not sample_size > 0:
            raise InputError(f"sample_size must be positive, got {sample_size!r}")
        return np.full(n, fwhm_from_sample_size(sample_size))
    sizes = cset.analyses["sample_size"].to_numpy(dtype=float)
    missing = [i for i, s in zip(cset.ids, sizes) if not s > 0]
    if missing:
        raise InputError(
            f"{_where(cset)}: no sample size for {len(missing)} of {n} analyses "
            f"({examples(missing, shown=5)}); add them to the file, or give every analysis "
            "one kernel with sample_size=N or kernel_fwhm=MM (command line: --sample-size N "
            "or --kernel-fwhm MM)"
        )
    return fwhm_from_sample_size(sizes)


class ModeledActivation:
    """Foci, kernels and the sparse MA matrix of one coordinate set in one space.

    Analyses none of whose kernels reaches an in-mask voxel contribute nothing to ALE and
    are left out with a warning naming them; fewer than two usable analyses is an error.

    Attributes
    ----------
    outside_mask : pandas.DataFrame
        The foci whose centre is outside the mask (see :func:`outside_mask_foci`).
    """

    def __init__(self, cset, space, kernel_fwhm=None, sample_size=None):
        self.space = space
        self.foci = FociLayout(cset, space)
        fwhms = analysis_fwhms(cset, kernel_fwhm, sample_size)
        self.kernels = KernelBank(fwhms, space.zooms, fixed=kernel_fwhm is not None)
        self.matrix = _ma_matrix(self.foci, self.kernels, space)
        self.outside_mask = outside_mask_foci(cset, self.foci, space)
        _warn_outside(self.outside_mask, cset)
        reaches_mask = np.diff(self.matrix.indptr) > 0
        usable = np.flatnonzero(reaches_mask)
        if usable.size < len(self.ids):
            unusable = [self.ids[a] for a in np.flatnonzero(~reaches_mask)]
            warn(f"{_where(cset)}: {len(unusable)} analysis(es) are left out because none "
                 f"of their foci's kernels reaches the mask: {examples(unusable, shown=10)}")
            if usable.size < 2:
                raise InputError(
                    f"{_where(cset)}: {usable.size} analysis(es) have foci whose kernels reach "
                    "the mask; a meta-analysis needs at least two"
                )
            reduced = self.subset(usable)
            self.foci, self.kernels, self.matrix = reduced.foci, reduced.kernels, reduced.matrix

    @property
    def ids(self):
        return self.foci.ids

    def subset(self, indices):
        """The same MA restricted to the analyses at ``indices`` (in that order).

        Resampling diagnostics refit on many subsets of analyses; slicing rows, foci and
        kernel assignments is exact and avoids rebuilding MA maps for each subset.
        """
        indices = np.asarray(indices, dtype=np.int64)
        new = copy.copy(self)
        foci = copy.copy(self.foci)
        counts = self.foci.counts[indices]
        foci.ids = [self.foci.ids[i] for i in indices]
        foci.ijk = np.concatenate(
            [self.foci.ijk[self.foci.starts[i]:self.foci.starts[i + 1]] for i in indices]
        )
        foci.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        kernels = copy.copy(self.kernels)
        kernels.fwhms = self.kernels.fwhms[indices]
        kernels.index = self.kernels.index[indices]
        new.foci, new.kernels, new.matrix = foci, kernels, self.matrix[indices]
        return new


def _ma_matrix(foci, kernels, space):
    lookup = np.full(int(np.prod(space.shape)), -1, dtype=np.int64)
    lookup[space.flat_index] = np.arange(space.n_voxels)
    indptr, indices, data = _ma_rows(
        foci.ijk, foci.starts, kernels.index, kernels.stack(), np.array(space.shape), lookup
    )
    # float32, as NiMARE keeps MA values: ALE's log1p then rounds exactly as NiMARE's does.
    return sparse.csr_matrix(
        (data.astype(np.float32), indices, indptr), shape=(len(foci.ids), space.n_voxels)
    )


@numba.njit(cache=True)
def _ma_rows(ijk, starts, kernel_index, kernels, shape, lookup):
    """CSR rows of MA: per analysis, the max over its foci of the kernel centred on each."""
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
