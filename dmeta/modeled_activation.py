"""Modeled activation (MA): each analysis's foci smoothed by its kernel, max over foci.

The result is a sparse (analysis x in-mask voxel) matrix; ALE and every resampling
diagnostic work from it or from its log complement, log(1 - MA).
"""

import copy
import warnings

import numba
import numpy as np
import pandas as pd
from scipy import sparse

from dmeta.errors import InputError
from dmeta.kernels import KernelBank, fwhm_from_sample_size


class FociLayout:
    """Foci of a coordinate set located in a space, grouped by analysis.

    Foci outside the mask are left out with a warning that lists them. An analysis left
    with no focus is an error, since it would silently shrink the meta-analysis.

    Attributes
    ----------
    ids : list of str
        Analysis ids, in order.
    ijk : (n_foci, 3) int64
        Voxel subscripts of the in-mask foci, grouped by analysis.
    starts : (n_analyses + 1,) int64
        ``ijk[starts[a]:starts[a + 1]]`` are the foci of analysis ``a``.
    """

    def __init__(self, cset, space):
        foci = cset.foci
        ijk = space.mm_to_ijk(foci[["x", "y", "z"]].to_numpy(dtype=float))
        inside = space.in_mask(ijk)
        if not inside.all():
            outside = foci.loc[~inside, ["id", "x", "y", "z"]]
            listing = "; ".join(
                f"{row.id} ({row.x:g}, {row.y:g}, {row.z:g})" for row in outside.itertuples()
            )
            warnings.warn(
                f"{len(outside)} foci of {_where(cset)} lie outside the mask and are left "
                f"out: {listing}",
                UserWarning,
                stacklevel=3,
            )
        ids = list(cset.ids)
        position = pd.Series(np.arange(len(ids)), index=ids)
        analysis = position.loc[foci["id"].to_numpy()[inside]].to_numpy()
        counts = np.bincount(analysis, minlength=len(ids))
        empty = [i for i, n in zip(ids, counts) if n == 0]
        if empty:
            raise InputError(
                f"{_where(cset)}: analyses with no foci inside the mask: {', '.join(empty)}"
            )
        order = np.argsort(analysis, kind="stable")
        self.ids = ids
        self.ijk = ijk[inside][order].astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])

    @property
    def counts(self):
        """Number of in-mask foci per analysis."""
        return np.diff(self.starts)


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
            f"{_where(cset)}: no sample size for {', '.join(missing)}; add one to the file "
            "or fix the kernel with sample_size= or kernel_fwhm="
        )
    return fwhm_from_sample_size(sizes)


class ModeledActivation:
    """Foci, kernels and the sparse MA matrix of one coordinate set in one space."""

    def __init__(self, cset, space, kernel_fwhm=None, sample_size=None):
        self.space = space
        self.foci = FociLayout(cset, space)
        fwhms = analysis_fwhms(cset, kernel_fwhm, sample_size)
        self.kernels = KernelBank(fwhms, space.zooms, fixed=kernel_fwhm is not None)
        self.matrix = _ma_matrix(self.foci, self.kernels, space)

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
