"""The bundled examples as NiMARE datasets, with every focus: dmeta and NiMARE get the same input.

``space`` is accepted so every comparison also hands NiMARE dmeta's mask
(``mask=space.mask_img``); the foci are never filtered.
"""

import warnings

from dmeta.datasets import example_path

PARQUET = example_path("pain").parent / "neurostore_parquet_studyset"


def nimare_dataset(name, space=None):
    """``name``'s NiMARE Dataset ("parquet" for the bundled parquet studyset, or a path)."""
    from nimare.io import convert_sleuth_to_dataset
    from nimare.studyset import Studyset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "pain":
            return Studyset(str(example_path("pain")), target="mni152_2mm").to_dataset()
        if name == "parquet":
            return Studyset(str(PARQUET), target="mni152_2mm").to_dataset()
        if name in ("semantic_knowledge", "semantic_relatedness"):
            return convert_sleuth_to_dataset(str(example_path(name)))
        return Studyset(str(name), target="mni152_2mm").to_dataset()
