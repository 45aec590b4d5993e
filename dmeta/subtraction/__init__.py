"""ALE subtraction (group 1 minus group 2) with a permutation null run as Dask blocks."""

from dmeta.subtraction.estimator import ALESubtraction

__all__ = ["ALESubtraction"]
