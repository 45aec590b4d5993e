"""Modeled activation (MA): each analysis's foci smoothed by its kernel, max over foci.

The result is a sparse (analysis x in-mask voxel) matrix, built by blocks of analyses. An
ALE fit reads only its reductions (:mod:`dmeta.ma_summary`); the resampling diagnostics
read the matrix itself or its log complement, log(1 - MA). A large set's blocks are built
and reduced on the workers, and its matrix is only assembled in this process if a
diagnostic asks for it.
"""

import copy

import numpy as np
import pandas as pd

from dmeta import ma_blocks
from dmeta.errors import InputError
from dmeta.kernels import KernelBank, fwhm_from_sample_size
from dmeta.ma_blocks import block_edges, build_ma, check_fits_here, summarize
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

    @classmethod
    def of(cls, ids, ijk, starts):
        """The layout with these attributes (as stored, see :mod:`dmeta.ma_store`)."""
        layout = cls.__new__(cls)
        layout.ids, layout.ijk, layout.starts = list(ids), np.asarray(ijk), np.asarray(starts)
        return layout

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
    ``in_order`` is passed to :func:`build_ma`.

    Attributes
    ----------
    summary : dmeta.ma_summary.MASummary
        What an ALE fit reads from the matrix.
    outside_mask : pandas.DataFrame
        The foci whose centre is outside the mask (see :func:`outside_mask_foci`).
    """

    def __init__(self, cset, space, kernel_fwhm=None, sample_size=None, in_order=None):
        self.space = space
        self.foci = FociLayout(cset, space)
        fwhms = analysis_fwhms(cset, kernel_fwhm, sample_size)
        self.kernels = KernelBank(fwhms, space.zooms, fixed=kernel_fwhm is not None)
        self._summary, self._matrix = build_ma(self.foci, self.kernels, space,
                                               dask_min=ma_blocks.MA_DASK_MIN,
                                               in_order=in_order)
        self._read_matrix = None
        self.outside_mask = outside_mask_foci(cset, self.foci, space)
        _warn_outside(self.outside_mask, cset)
        reaches_mask = self._summary.histograms.reached > 0
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
            summary = self._summary.of_analyses(usable)  # the others add nothing to the sum
            reduced = self.subset(usable)
            self.foci, self.kernels, self._matrix = reduced.foci, reduced.kernels, reduced._matrix
            self._summary = summary

    @classmethod
    def restored(cls, space, foci, kernels, read_matrix, outside_mask):
        """The MA of a stored fit (:mod:`dmeta.ma_store`): ``read_matrix()`` reads its rows."""
        ma = cls.__new__(cls)
        ma.space, ma.foci, ma.kernels, ma.outside_mask = space, foci, kernels, outside_mask
        ma._summary, ma._matrix, ma._read_matrix = None, None, read_matrix
        return ma

    @property
    def ids(self):
        return self.foci.ids

    @property
    def matrix(self):
        """The sparse (analysis x in-mask voxel) MA matrix, float32.

        A set built on the workers keeps only its summary in this process; its matrix is
        built (or read from its store) here on first use, if this machine has the memory.
        """
        if self._matrix is None:
            check_fits_here(self.foci, self.kernels, self.space)
            if self._read_matrix is not None:
                self._matrix = self._read_matrix()
            else:
                self._matrix = build_ma(self.foci, self.kernels, self.space, dask_min=None)[1]
        return self._matrix

    @property
    def matrix_here(self):
        """Whether :attr:`matrix` is in this process or in a store, not to be rebuilt."""
        return self._matrix is not None or self._read_matrix is not None

    @property
    def summary(self):
        """The reductions of :attr:`matrix` an ALE fit reads, by the blocks it is built in."""
        if self._summary is None:
            self._summary = summarize(self.matrix, block_edges(self.foci, self.kernels,
                                                                self.space))
        return self._summary

    def to_xarray(self):
        """log(1 - MA) as a lazy (analysis x voxel) DataArray, one Dask chunk per block.

        A chunk is computed from its block's rows (dense float32, numpy's ``log1p`` of the
        MA values, 0 where MA is 0) only when asked for, wherever Dask runs it, so
        ``.sum("analysis")`` or a selection of analyses holds a few blocks' maps at a time.
        """
        import dask
        import dask.array as da
        import xarray as xr

        chunks = []
        for part in self.block_parts():
            rows = part._matrix if part._matrix is not None else dask.delayed(_rows)(part)
            chunks.append(da.from_delayed(dask.delayed(_dense_log_complement)(rows),
                                          shape=(len(part.ids), self.space.n_voxels),
                                          dtype=np.float32))
        return xr.DataArray(da.concatenate(chunks), dims=("analysis", "voxel"),
                            coords={"analysis": list(self.ids)}, name="log_complement")

    def block_parts(self):
        """The subsets of its blocks, one at a time (a part's rows, once built, go with it)."""
        edges = block_edges(self.foci, self.kernels, self.space)
        for a0, a1 in zip(edges[:-1], edges[1:]):
            yield self.subset(np.arange(a0, a1))

    def row_blocks(self):
        """The matrix's rows, block by block (CSR), built one block at a time if need be."""
        for part in self.block_parts():
            yield part.matrix

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
        new.foci, new.kernels, new._summary, new._read_matrix = foci, kernels, None, None
        new._matrix = None if self._matrix is None else self._matrix[indices]
        return new


def _rows(ma):
    return ma.matrix


def _dense_log_complement(rows):
    return np.log1p(-rows.toarray())
