"""A fit's modeled activation kept in its result's Zarr store, and read back to go on.

A result opened from a store has maps but no fitted estimator, so a Monte Carlo
correction or a diagnostic could not run on it. Written with its modeled activation
(``result.to_zarr(path, modeled_activation=True)``), the store keeps what those need, and
:func:`dmeta.open_result` gives the result back an ALE estimator fitted as before.

Layout (group ``modeled_activation`` of a result store)::

    modeled_activation/     attrs: "ids", "params" (the ALE's, but its mask: the store's)
      fwhms                 float64 (analyses,): each analysis's kernel FWHM (mm)
      foci_ijk              int64 (foci, 3): the foci's voxels, grouped by analysis
      foci_starts           int64 (analyses + 1,)
      indptr                int64 (analyses + 1,): CSR rows of the MA matrix ...
      indices, data         int32, float32 (non-zeros,): ... written block by block
      null_weights, bins    float64: the approximate null the fit computed

The MA values are the float32 the fit used, so the round trip is lossless. A set built on
the workers has no matrix in the client: its rows are rebuilt in this process one block at
a time as they are written, so memory holds one block, not the matrix.
"""

from __future__ import annotations

import numpy as np
import zarr
from scipy import sparse

from dmeta.kernels import KernelBank
from dmeta.modeled_activation import FociLayout, ModeledActivation

GROUP = "modeled_activation"

#: Non-zeros per chunk of the stored rows (16 MB of values).
ROW_CHUNK = 1 << 22


def write_ma(root: zarr.Group, ale) -> None:
    """Write a fitted ALE's modeled activation and approximate null into ``root``."""
    ma = ale.ma_
    group = root.create_group(GROUP, attributes={
        "ids": list(ma.ids),
        "params": {k: v for k, v in ale.provenance().items() if k != "mask"},
    })
    group.create_array("fwhms", data=np.asarray(ma.kernels.fwhms, dtype=np.float64))
    group.create_array("foci_ijk", data=ma.foci.ijk)
    group.create_array("foci_starts", data=ma.foci.starts)
    group.create_array("null_weights", data=np.asarray(ale.null_weights_, dtype=np.float64))
    group.create_array("bins", data=np.asarray(ale.bins_, dtype=np.float64))
    indptr = [0]
    indices = group.create_array("indices", shape=(0,), dtype=np.int32, chunks=(ROW_CHUNK,))
    data = group.create_array("data", shape=(0,), dtype=np.float32, chunks=(ROW_CHUNK,))
    for rows in ma.row_blocks():
        start, stop = indptr[-1], indptr[-1] + rows.nnz
        for array, values in ((indices, rows.indices), (data, rows.data)):
            array.resize((stop,))
            array[start:stop] = values
        indptr.extend(start + rows.indptr[1:])
    group.create_array("indptr", data=np.asarray(indptr, dtype=np.int64))


def has_ma(root: zarr.Group) -> bool:
    return GROUP in root


def read_ale(root: zarr.Group, space, outside_mask):
    """The fitted ALE estimator stored by :func:`write_ma`, its MA rows read on first use.

    ``outside_mask`` is the result's table of foci outside the mask (possibly empty).
    """
    from dmeta.ale import ALE

    group = root[GROUP]
    attrs = group.attrs.asdict()
    foci = FociLayout.of(attrs["ids"], group["foci_ijk"][...], group["foci_starts"][...])
    fixed = attrs["params"]["kernel_fwhm"] is not None  # the kernels as the fit built them
    kernels = KernelBank(group["fwhms"][...], space.zooms, fixed=fixed)
    n_voxels = space.n_voxels

    def read_matrix():
        return sparse.csr_matrix(
            (group["data"][...], group["indices"][...], group["indptr"][...]),
            shape=(len(attrs["ids"]), n_voxels),
        )

    ale = ALE(**attrs["params"], mask=space)
    ale.space_ = space
    ale.ma_ = ModeledActivation.restored(space, foci, kernels, read_matrix, outside_mask)
    ale.null_weights_ = group["null_weights"][...]
    ale.bins_ = group["bins"][...]
    return ale
