"""The thresholds a result's maps are summarised at, wherever a result is shown.

The HTML report (:mod:`dmeta.reporting`) and the Jupyter summary
(:mod:`dmeta.results.display`) both count and draw a z map's significant voxels through
:class:`ZMap`, so a level changed here changes both. Maps corrected for multiple comparisons
(``_corr-`` in the name) are shown at p < 0.05; uncorrected maps are only screened, at the
cluster-forming p < 0.001 most ALE studies use.

p is read from the z map's ``logp`` twin (``z`` -> ``logp``, ``z_<rest>`` -> ``logp_<rest>``),
which keeps its test's sidedness: two-sided for a subtraction, whose z is signed, so both
tails count. A z map without a twin is screened at the one-tailed cut-off, |z| >
Phi^-1(1 - alpha), in either direction.
"""

from dataclasses import dataclass

import numpy as np

from dmeta.stats import p_to_z

#: Significance levels of maps corrected for multiple comparisons, and of uncorrected maps.
CORRECTED_ALPHA = 0.05
UNCORRECTED_ALPHA = 0.001

#: ``<target><STABILITY_SUFFIX>`` is the fraction of replicates in which each voxel is
#: significant (:class:`~dmeta.ResampledStability`); its table adds ``_tab-summary``.
STABILITY_SUFFIX = "_diag-ResampledStability"


def is_z_map(name):
    """Whether a map holds z scores: ``z`` or ``z_<rest>``, but no diagnostic's map."""
    return (name == "z" or name.startswith("z_")) and "_diag-" not in name


@dataclass
class ZMap:
    """A z map to show thresholded: where its twin ``logp`` map says p < ``alpha``."""

    name: str
    logp_name: str | None
    alpha: float

    @classmethod
    def of(cls, name, maps):
        """The z map ``name`` of a result with maps ``maps``, at its level."""
        twin = "logp" + name[1:]
        alpha = CORRECTED_ALPHA if "_corr-" in name else UNCORRECTED_ALPHA
        return cls(name, twin if twin in maps else None, alpha)

    @property
    def corrected(self):
        return "_corr-" in self.name

    @property
    def criterion(self):
        """What a voxel must pass, as plain text: ``"p < 0.05"``, or ``"|z| > 1.645"``."""
        if self.logp_name is not None:
            return f"p < {self.alpha:g}"
        return f"|z| > {float(p_to_z(self.alpha)):.4g}"

    def significant(self, result):
        """Boolean in-mask vector of the voxels passing :attr:`criterion`."""
        if self.logp_name is not None:
            return result.get_map(self.logp_name, "array") > -np.log10(self.alpha)
        return np.abs(result.get_map(self.name, "array")) > p_to_z(self.alpha)
