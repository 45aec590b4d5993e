"""SCALE (Langner et al., 2014): ALE against a base rate of activation, on the Monte Carlo
engine, with the base-rate builder."""

from dmeta.scale.base_rate import scale_base_rate
from dmeta.scale.estimator import SCALE

__all__ = ["SCALE", "scale_base_rate"]
