"""The MA matrix built by blocks of analyses, in process or as Dask tasks.

Blocks are runs of analyses chosen from the data alone (at most :data:`MA_BLOCK` analyses
and :data:`MA_BLOCK_BYTES` of estimated rows), so the matrix and its summary are the same
wherever the blocks run. Small sets are built in process; above :data:`MA_DASK_MIN`
analyses each block is a Dask task that returns only its reductions
(:class:`~dmeta.ma_summary.MASummary`).
"""

import numpy as np
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
from dmeta.ma_summary import MASummary, value_tables

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


def build_ma(foci, kernels, space, block=None, dask_min=None, in_order=None):
    """The :class:`MASummary` and CSR MA matrix of the analyses, built by blocks.

    Blocks (of at most ``block`` analyses, default :data:`MA_BLOCK`, see
    :func:`block_edges`) run in process, or as Dask tasks when there are more than
    ``dask_min`` analyses (never if None, the default); then each task only reduces its
    maps, and the matrix returned is None. The blocks depend on the data only and their
    sums are added in block order, so neither result depends on where the blocks ran.
    On the workers, ``in_order(histograms)`` (if given) is called in this
    process with each block's :class:`~dmeta.ma_summary.MAHistograms`, in block order, as
    soon as that block and those before it are done, so that work on them overlaps the
    blocks still running.
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
    edges = block_edges(foci, kernels, space, block)
    ranges = list(zip(edges[:-1], edges[1:]))
    blocks = {
        b: (foci.ijk[foci.starts[a0]:foci.starts[a1]], foci.starts[a0:a1 + 1],
            kernels.index[a0:a1].astype(np.int64), levels, spans, shape, lookup,
            *tables)
        for b, (a0, a1) in enumerate(ranges)
    }
    if dask_min is not None and n > dask_min:
        arrived = _InBlockOrder(in_order)
        run_blocks(block_summary,
                   {b: (*args, space.n_voxels, n_bins) for b, args in blocks.items()},
                   arrived, shared=(levels, spans, lookup, *tables),
                   desc="Modeled activation", unit="block")
        return MASummary.combine([arrived.parts[b] for b in range(len(blocks))]), None
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


class _InBlockOrder:
    """Keeps the blocks' summaries as they arrive, and hands each one's histograms to
    ``consumer`` (if any) once it and every block before it have arrived."""

    def __init__(self, consumer):
        self.parts, self.next, self.consumer = {}, 0, consumer

    def __call__(self, b, part):
        self.parts[b] = part
        while self.consumer is not None and self.next in self.parts:
            self.consumer(self.parts[self.next].histograms)
            self.next += 1


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
    support = np.array([(kernel > 0).sum() for kernel in kernels.kernels])[kernels.index]
    return np.minimum(np.diff(foci.starts) * support, space.n_voxels) * NONZERO_BYTES


def block_edges(foci, kernels, space, most=None, budget=None):
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


def check_fits_here(foci, kernels, space):
    """Refuse, naming the memory needed, to build an MA matrix this machine cannot hold."""
    need = int(_row_bytes(foci, kernels, space).sum())
    available = psutil.virtual_memory().available
    if need > 0.8 * available:
        raise InputError(
            f"the MA matrix of {len(foci.ids)} analyses needs about {need / 2**30:.1f} GiB in "
            f"this process and {available / 2**30:.1f} GiB is free; this step (a diagnostic "
            "that reads every analysis's MA map) needs a machine with more memory, or "
            "fewer analyses"
        )
