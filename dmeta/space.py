"""The analysis space: a 3-D brain mask on a voxel grid with its affine.

Every map dmeta computes is a 1-D vector over the in-mask voxels, in C order of the
volume, which is the order nilearn's ``NiftiMasker`` uses. ``Space`` converts between
those vectors, 3-D volumes, NIfTI images and millimetre coordinates, so that no other
module needs to know how the mask is laid out.
"""

from __future__ import annotations

import hashlib
import os
from functools import cached_property

import nibabel as nib
import numpy as np

from dmeta.errors import InputError

__all__ = ["Space", "values_at"]


def values_at(volume, ijk, fill):
    """``volume`` at each (i, j, k) row of ``ijk``, and ``fill`` for rows off the grid.

    Foci may lie beyond the edge of the volume; this reads them without index errors.
    """
    ijk = np.asarray(ijk)
    inside = np.all((ijk >= 0) & (ijk < np.asarray(volume.shape)), axis=-1)
    clipped = np.clip(ijk, 0, np.asarray(volume.shape) - 1)
    return np.where(inside, volume[clipped[..., 0], clipped[..., 1], clipped[..., 2]], fill)


def _readonly(array: np.ndarray) -> np.ndarray:
    """Freeze an array so a shared ``Space`` cannot be changed through it."""
    array.flags.writeable = False
    return array


def _image_name(img) -> str:
    """Name an image in error messages: its file if it has one."""
    filename = img.get_filename() if hasattr(img, "get_filename") else None
    return filename or "<in-memory image>"


def _load_image(source, what: str):
    """Load ``source`` (a path or a nibabel image) or raise ``InputError`` naming it."""
    if isinstance(source, nib.spatialimages.SpatialImage):
        return source
    if isinstance(source, (str, os.PathLike)):
        try:
            return nib.load(os.fspath(source))
        except FileNotFoundError:
            raise InputError(f"{source}: {what} file not found") from None
        except Exception as exc:  # nibabel raises several types for unreadable files
            raise InputError(f"{source}: cannot read {what} image ({exc})") from None
    raise InputError(
        f"{what} must be a file path or a nibabel image, not {type(source).__name__}"
    )


class Space:
    """A boolean mask on a voxel grid, with the affine that places it in mm.

    Parameters
    ----------
    mask : array_like of bool, shape (i, j, k)
        In-mask voxels; non-zero values count as in the mask.
    affine : array_like, shape (4, 4)
        Voxel-to-mm transform.
    name : str, optional
        Where the mask came from, used in error messages.

    Notes
    -----
    Instances are treated as immutable (their arrays are read-only), so one ``Space``
    can be shared by every result and task built on it.
    """

    def __init__(self, mask, affine, name: str = "<mask>"):
        mask = np.asarray(mask)
        if mask.ndim != 3:
            raise InputError(f"{name}: mask must be 3-D, got shape {mask.shape}")
        affine = np.asarray(affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise InputError(f"{name}: affine must be 4x4, got shape {affine.shape}")
        mask = np.ascontiguousarray(mask != 0)
        if not mask.any():
            raise InputError(f"{name}: mask is empty (no non-zero voxels)")
        self.name = name
        self.mask = _readonly(mask)
        self.affine = _readonly(affine.copy())
        self.flat_index = _readonly(np.flatnonzero(mask).astype(np.int64))

    @classmethod
    def from_mask(cls, mask: MaskLike = None) -> Space:
        """Build a space from a mask file or image; ``None`` gives the bundled MNI mask.

        Parameters
        ----------
        mask : str, os.PathLike, nibabel image, Space or None
            A 3-D mask; values that are non-zero and finite are in the mask. A ``Space``
            is returned unchanged so callers can accept either.

        Raises
        ------
        InputError
            If the file is missing or unreadable, or the mask is not 3-D or is empty.
        """
        if isinstance(mask, Space):
            return mask
        if mask is None:
            from dmeta.datasets import default_mask_path

            mask = default_mask_path()
        img = _load_image(mask, "mask")
        name = _image_name(img)
        if len(img.shape) != 3:
            raise InputError(f"{name}: mask must be 3-D, got shape {img.shape}")
        data = np.asanyarray(img.dataobj)
        return cls(np.isfinite(data) & (data != 0), img.affine, name=name)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (i, j, k)."""
        return tuple(int(n) for n in self.mask.shape)

    @property
    def n_voxels(self) -> int:
        """Number of in-mask voxels, the length of every map vector."""
        return int(self.flat_index.size)

    @cached_property
    def ijk(self) -> np.ndarray:
        """In-mask voxel subscripts, shape (n_voxels, 3), in map-vector order."""
        return _readonly(np.argwhere(self.mask).astype(np.int64))

    @cached_property
    def zooms(self) -> tuple[float, float, float]:
        """Voxel sizes in mm, as derived from the affine."""
        return tuple(float(z) for z in nib.affines.voxel_sizes(self.affine))

    @cached_property
    def mask_img(self) -> nib.Nifti1Image:
        """The mask as a uint8 NIfTI image, e.g. for nilearn maskers."""
        return nib.Nifti1Image(self.mask.astype(np.uint8), self.affine)

    def fingerprint(self) -> str:
        """Hex digest identifying the grid and mask, to refuse stores from another space."""
        digest = hashlib.sha256()
        digest.update(repr(self.shape).encode())
        digest.update(self.affine.astype("<f8").tobytes())
        digest.update(np.packbits(self.mask, axis=None).tobytes())
        return digest.hexdigest()

    def __eq__(self, other) -> bool:
        if not isinstance(other, Space):
            return NotImplemented
        return self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"Space(shape={self.shape}, n_voxels={self.n_voxels}, name={self.name!r})"

    # -- coordinates -------------------------------------------------------------

    def mm_to_ijk(self, xyz) -> np.ndarray:
        """Map mm coordinates to the nearest voxel subscripts, as NiMARE's ``mm2vox`` does.

        Rounding is ``np.round`` (half to even) on the inverse-affine coordinates, so foci
        land on exactly the voxels NiMARE puts them on.
        """
        inverse = np.linalg.inv(self.affine)
        with np.errstate(invalid="ignore"):
            return np.round(nib.affines.apply_affine(inverse, xyz)).astype(int)

    def ijk_to_mm(self, ijk) -> np.ndarray:
        """Map voxel subscripts to mm coordinates of the voxel centres."""
        return nib.affines.apply_affine(self.affine, np.asarray(ijk, dtype=np.float64))

    def in_volume(self, ijk) -> np.ndarray:
        """Whether each (i, j, k) row lies inside the grid."""
        ijk = np.asarray(ijk)
        return np.all((ijk >= 0) & (ijk < np.asarray(self.shape)), axis=-1)

    def in_mask(self, ijk) -> np.ndarray:
        """Whether each (i, j, k) row is an in-mask voxel; False outside the grid."""
        return values_at(self.mask, ijk, False)

    # -- vectors, volumes and images ----------------------------------------------

    def _check_vector(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.shape != (self.n_voxels,):
            raise InputError(
                f"expected a vector of {self.n_voxels} in-mask values, got shape {values.shape}"
            )
        return values

    def to_volume(self, values, fill=0) -> np.ndarray:
        """Scatter an in-mask vector into a 3-D volume, with ``fill`` outside the mask."""
        values = self._check_vector(values)
        volume = np.full(self.shape, fill, dtype=np.result_type(values, fill))
        volume.reshape(-1)[self.flat_index] = values
        return volume

    def to_image(self, values) -> nib.Nifti1Image:
        """Wrap an in-mask vector as a float32 NIfTI image in this space."""
        volume = self.to_volume(np.asarray(values, dtype=np.float32))
        return nib.Nifti1Image(volume, self.affine)

    def from_volume(self, volume) -> np.ndarray:
        """Gather the in-mask values of a 3-D volume into a vector."""
        volume = np.asarray(volume)
        if volume.shape != self.shape:
            raise InputError(f"expected a volume of shape {self.shape}, got {volume.shape}")
        return volume.reshape(-1)[self.flat_index]

    def same_grid(self, img) -> bool:
        """Whether ``img`` has this space's shape and affine (to 1e-4 mm)."""
        return tuple(img.shape[:3]) == self.shape and np.allclose(
            img.affine, self.affine, rtol=0, atol=1e-4
        )

    def from_image(self, img) -> np.ndarray:
        """Gather the in-mask values of a 3-D image (path or nibabel), checking its grid.

        Raises
        ------
        InputError
            If the image is not 3-D or is on a different grid than the mask.
        """
        img = _load_image(img, "image")
        name = _image_name(img)
        if len(img.shape) != 3:
            raise InputError(f"{name}: image must be 3-D, got shape {img.shape}")
        if not self.same_grid(img):
            raise InputError(
                f"{name}: image is not in the analysis space "
                f"(shape {img.shape}, expected {self.shape}; or a different affine)"
            )
        return self.from_volume(np.asanyarray(img.dataobj))


#: What :meth:`Space.from_mask` accepts, for annotations: a mask file, a nibabel image, a
#: Space, or None for the bundled MNI152 2 mm brain mask.
MaskLike = str | os.PathLike | nib.spatialimages.SpatialImage | Space | None
