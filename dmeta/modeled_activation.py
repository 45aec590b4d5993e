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
import psutil
from scipy import sparse

from dmeta._ma_kernel import (
    count_rows,
    kernel_levels,
    output,
    row_spans,
    summarize_rows,
    summary_arrays,
    write_rows,
)
from dmeta.compute import run_blocks
from dmeta.errors import InputError
from dmeta.kernels import KernelBank, fwhm_from_sample_size
from dmeta.ma_summary import MASummary, value_tables
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

    Attributes
    ----------
    summary : dmeta.ma_summary.MASummary
        What an ALE fit reads from the matrix.
    outside_mask : pandas.DataFrame
        The foci whose centre is outside the mask (see :func:`outside_mask_foci`).
    """

    def __init__(self, cset, space, kernel_fwhm=None, sample_size=None):
        self.space = space
        self.foci = FociLayout(cset, space)
        fwhms = analysis_fwhms(cset, kernel_fwhm, sample_size)
        self.kernels = KernelBank(fwhms, space.zooms, fixed=kernel_fwhm is not None)
        self._summary, self._matrix = build_ma(self.foci, self.kernels, space,
                                               dask_min=MA_DASK_MIN)
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
            _check_fits_here(self.foci, self.kernels, self.space)
            if self._read_matrix is not None:
                self._matrix = self._read_matrix()
            else:
                self._matrix = build_ma(self.foci, self.kernels, self.space, dask_min=None)[1]
        return self._matrix

    @property
    def summary(self):
        """The reductions of :attr:`matrix` an ALE fit reads, by the blocks it is built in."""
        if self._summary is None:
            self._summary = summarize(self.matrix, _block_edges(self.foci, self.kernels,
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
        for part in self._block_parts():
            rows = part._matrix if part._matrix is not None else dask.delayed(_rows)(part)
            chunks.append(da.from_delayed(dask.delayed(_dense_log_complement)(rows),
                                          shape=(len(part.ids), self.space.n_voxels),
                                          dtype=np.float32))
        return xr.DataArray(da.concatenate(chunks), dims=("analysis", "voxel"),
                            coords={"analysis": list(self.ids)}, name="log_complement")

    def _block_parts(self):
        """The blocks' subsets, one at a time (a part's rows, once built, go with it)."""
        edges = _block_edges(self.foci, self.kernels, self.space)
        for a0, a1 in zip(edges[:-1], edges[1:]):
            yield self.subset(np.arange(a0, a1))

    def row_blocks(self):
        """The matrix's rows, block by block (CSR), built one block at a time if need be."""
        for part in self._block_parts():
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


#: Most analyses per block of MA rows. An analysis shaped like the bundled ones has some
#: 44,000 non-zeros (350 kB of rows), so a block of 250 holds under 100 MB in a worker and
#: the tasks of a large set spread over many workers.
MA_BLOCK = 250

#: Most bytes of rows per block, estimated from focus counts and kernel sizes: analyses
#: with many foci or wide kernels (or a finer mask) make smaller blocks, so that a worker's
#: memory is bounded whatever the data.
MA_BLOCK_BYTES = 256 * 2**20

#: Above this many analyses the blocks of MA rows run as Dask tasks and only their
#: summaries come back. The compiled kernel builds about 1,000 analyses a second on one
#: core (benchmarks/bench_ma.py), while starting a local cluster and loading numba on each
#: worker cost seconds; only sets of several thousand analyses gain from the workers, so
#: smaller ones, the bundled examples among them, stay in process.
MA_DASK_MIN = 4000

#: Bytes per stored non-zero: a float32 value and an int32 column.
NONZERO_BYTES = 8


def build_ma(foci, kernels, space, block=None, dask_min=None):
    """The :class:`MASummary` and CSR MA matrix of the analyses, built by blocks.

    Blocks (of at most ``block`` analyses, default :data:`MA_BLOCK`, see
    :func:`_block_edges`) run in process, or as Dask tasks when there are more than
    ``dask_min`` analyses (never if None, the default); then each
    task only reduces its maps, and the matrix returned is None. The blocks depend on the
    data only and their sums are added in block order, so neither result depends on where
    the blocks ran.
    """
    n = len(foci.ids)
    lookup = np.full(int(np.prod(space.shape)), -1, dtype=np.int32)
    lookup[space.flat_index] = np.arange(space.n_voxels, dtype=np.int32)
    stack = kernels.stack().astype(np.float32)  # float32, as NiMARE keeps MA values
    levels, values = kernel_levels(stack)
    spans = row_spans(stack)
    tables = (values, *value_tables(values))
    n_bins = int(tables[2].max()) + 1
    shape = np.array(space.shape, dtype=np.int64)
    edges = _block_edges(foci, kernels, space, block)
    ranges = list(zip(edges[:-1], edges[1:]))
    blocks = {
        b: (foci.ijk[foci.starts[a0]:foci.starts[a1]], foci.starts[a0:a1 + 1],
            kernels.index[a0:a1].astype(np.int64), levels, spans, shape, lookup,
            *tables)
        for b, (a0, a1) in enumerate(ranges)
    }
    if dask_min is not None and n > dask_min:
        parts = {}
        run_blocks(block_summary,
                   {b: (*args, space.n_voxels, n_bins) for b, args in blocks.items()},
                   parts.__setitem__, shared=(levels, spans, lookup, *tables),
                   desc="Modeled activation", unit="block")
        return MASummary.combine([parts[b] for b in range(len(blocks))]), None
    # Every block's counts first, so each block writes straight into its slice.
    counts = np.zeros(n, dtype=np.int64)
    for b, (a0, a1) in enumerate(ranges):
        count_rows(blocks[b], counts[a0:a1])
    indptr = np.concatenate([[0], np.cumsum(counts)])
    indices, data = output(indptr[-1])
    parts = []
    for b, (a0, a1) in enumerate(ranges):
        rows = slice(indptr[a0], indptr[a1])
        arrays = summary_arrays(a1 - a0, space.n_voxels, n_bins)
        write_rows(blocks[b], counts[a0:a1], indices[rows], data[rows], arrays)
        parts.append(MASummary.of_kernel(arrays, counts[a0:a1], values))
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(n, space.n_voxels))
    return MASummary.combine(parts), matrix


def block_summary(*args):
    """The :class:`MASummary` of one block: ``ma_pass``'s block arguments, then the number
    of voxels and of histogram bins."""
    *block, n_voxels, n_bins = args
    starts, values = block[1], block[7]  # in ma_pass's order
    arrays = summary_arrays(starts.shape[0] - 1, n_voxels, n_bins)
    reached = summarize_rows(block, arrays)
    return MASummary.of_kernel(arrays, reached, values)


def summarize(matrix, edges):
    """The :class:`MASummary` of a CSR matrix, reduced by the row blocks between ``edges``."""
    parts = []
    for a0, a1 in zip(edges[:-1], edges[1:]):
        start, stop = matrix.indptr[a0], matrix.indptr[a1]
        parts.append(MASummary.of_rows(matrix.indptr[a0:a1 + 1] - start,
                                       matrix.indices[start:stop], matrix.data[start:stop],
                                       matrix.shape[1]))
    return MASummary.combine(parts)


def _row_bytes(foci, kernels, space):
    """Estimated bytes of each analysis's rows: its foci's kernel supports, capped by the mask."""
    support = (kernels.stack() > 0).sum(axis=(1, 2, 3))[kernels.index]
    return np.minimum(np.diff(foci.starts) * support, space.n_voxels) * NONZERO_BYTES


def _block_edges(foci, kernels, space, most=None, budget=None):
    """Block boundaries: runs of at most ``most`` analyses and ``budget`` estimated bytes
    (default :data:`MA_BLOCK` and :data:`MA_BLOCK_BYTES`)."""
    most = MA_BLOCK if most is None else most
    budget = MA_BLOCK_BYTES if budget is None else budget
    edges, size, rows = [0], 0, 0
    for a, nbytes in enumerate(_row_bytes(foci, kernels, space)):
        if rows and (rows == most or size + nbytes > budget):
            edges.append(a)
            size, rows = 0, 0
        size, rows = size + nbytes, rows + 1
    if rows or len(edges) == 1:
        edges.append(len(foci.ids))
    return edges


def _rows(ma):
    return ma.matrix


def _dense_log_complement(rows):
    return np.log1p(-rows.toarray())


def _check_fits_here(foci, kernels, space):
    need = int(_row_bytes(foci, kernels, space).sum())
    available = psutil.virtual_memory().available
    if need > 0.8 * available:
        raise InputError(
            f"the MA matrix of {len(foci.ids)} analyses needs about {need / 2**30:.1f} GiB in "
            f"this process and {available / 2**30:.1f} GiB is free; this step (a diagnostic "
            "that reads every analysis's MA map) needs a machine with more memory, or "
            "fewer analyses"
        )
