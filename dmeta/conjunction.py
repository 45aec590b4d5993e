"""Conjunction of thresholded maps (Nichols et al., 2005): where all are significant."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from dmeta.errors import InputError


def conjunction(
    imgs: Sequence[str | Path | nib.spatialimages.SpatialImage],
) -> nib.Nifti1Image:
    """Voxelwise minimum of the maps where every map is positive, 0 elsewhere.

    Parameters
    ----------
    imgs : sequence of nibabel images or paths
        Two or more 3D maps on the same grid, typically thresholded or cluster-corrected z
        maps (0 where not significant).

    Returns
    -------
    nibabel.Nifti1Image
        float32 conjunction map on the grid of the first image.
    """
    if isinstance(imgs, (str, Path, nib.spatialimages.SpatialImage)) or len(imgs) < 2:
        raise InputError("conjunction needs a list of two or more images")
    loaded = [_load(img, i) for i, img in enumerate(imgs)]
    first_name, first = loaded[0]
    for name, img in loaded[1:]:
        if img.shape != first.shape or not np.allclose(img.affine, first.affine):
            raise InputError(
                f"{name} is on another grid than {first_name} (shape {img.shape} vs "
                f"{first.shape}); resample the maps to one grid first"
            )
    data = np.stack([np.asarray(img.dataobj, dtype=np.float32) for _, img in loaded])
    values = np.where((data > 0).all(axis=0), data.min(axis=0), 0).astype(np.float32)
    return nib.Nifti1Image(values, first.affine)


def _load(img, position):
    if isinstance(img, (str, Path)):
        try:
            img = nib.load(str(img))
        except (FileNotFoundError, nib.filebasedimages.ImageFileError) as exc:
            raise InputError(f"{img}: cannot read as an image ({exc})") from exc
        name = str(img.get_filename())
    elif isinstance(img, nib.spatialimages.SpatialImage):
        name = f"image {position + 1}"
    else:
        raise InputError(f"image {position + 1} is a {type(img).__name__}, not an image or path")
    if img.ndim == 4 and img.shape[3] == 1:  # a one-volume 4D image, as nilearn allows
        img = nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine)
    if img.ndim != 3:
        raise InputError(f"{name} is not a 3D image (shape {img.shape})")
    return name, img
