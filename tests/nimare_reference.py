"""The bundled examples as NiMARE datasets, holding the same in-mask foci dmeta keeps.

NiMARE keeps foci outside the mask and dmeta leaves them out (with a warning), so every
comparison hands NiMARE only the in-mask foci, and the mask itself (``mask=space.mask_img``).
"""

import warnings

from dmeta.datasets import example_path


def nimare_dataset(name, space):
    """``name``'s NiMARE Dataset restricted to foci inside ``space``'s mask."""
    from nimare.io import convert_sleuth_to_dataset
    from nimare.studyset import Studyset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "pain":
            dset = Studyset(str(example_path("pain")), target="mni152_2mm").to_dataset()
        elif name == "parquet":
            path = example_path("pain").parent / "neurostore_parquet_studyset"
            dset = Studyset(str(path), target="mni152_2mm").to_dataset()
        else:
            dset = convert_sleuth_to_dataset(str(example_path(name)))
    return in_mask_only(dset, space)


def in_mask_only(dset, space):
    """A copy of a NiMARE Dataset without the foci outside ``space``'s mask."""
    ijk = space.mm_to_ijk(dset.coordinates[["x", "y", "z"]].to_numpy())
    kept = dset.copy()
    kept.coordinates = dset.coordinates[space.in_mask(ijk)].reset_index(drop=True)
    return kept
