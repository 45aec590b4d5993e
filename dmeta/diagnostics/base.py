"""What FocusCounter and Jackknife share: the target's clusters, their tails, and which
analyses each tail is about (the one group of a single-sample ALE; group 1 for the positive
and group 2 for the negative tail of a subtraction, as in NiMARE)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dmeta.ale import ALE
from dmeta.base import DmetaBase
from dmeta.diagnostics.tables import TAIL_LABELS, cluster_table
from dmeta.docstrings import fill_doc
from dmeta.errors import InputError
from dmeta.results import MetaResult
from dmeta.subtraction import ALESubtraction


@dataclass
class Group:
    """Analyses behind one tail: their modeled activation and the sign of their ALE in the
    target statistic (+1 for ALE and group 1 of a subtraction, -1 for group 2)."""

    ma: object
    sign: int

    @property
    def ids(self):
        return list(self.ma.ids)


def analysis_groups(result):
    """One Group for a single-sample ALE, (group 1, group 2) for a subtraction."""
    estimator = result.estimator
    if estimator is None:
        raise InputError("diagnostics need a result fitted in this session (result.estimator)")
    if isinstance(estimator, ALESubtraction):
        estimator.check_fitted("ma1_", "ma2_")
        return [Group(estimator.ma1_, 1), Group(estimator.ma2_, -1)]
    if isinstance(estimator, ALE):
        estimator.check_fitted("ma_")
        return [Group(estimator.ma_, 1)]
    raise InputError(f"diagnostics support ALE and ALESubtraction results, not "
                     f"{type(estimator).__name__}")


def statistic_map(result):
    """The summary statistic contributions are measured on (``stat``, or the difference)."""
    for name in ("stat", "stat_desc-group1MinusGroup2"):
        if name in result.maps:
            return result.get_map(name, return_type="array")
    raise InputError("the result has neither a 'stat' nor a 'stat_desc-group1MinusGroup2' map")


@fill_doc
class Diagnostics(DmetaBase):
    """Characterise each analysis's part in each cluster of a target map.

    Parameters
    ----------
    %(diagnostic_parameters)s
    """

    def __init__(self, target_image: str = "z_desc-size_level-cluster_corr-FWE_method-montecarlo",
                 voxel_thresh: float | None = None, cluster_threshold: int | None = None,
                 display_second_group: bool = False):
        self.target_image = target_image
        self.voxel_thresh = voxel_thresh
        self.cluster_threshold = cluster_threshold
        self.display_second_group = display_second_group

    def contributions(self, result, group, labels, cluster_ids):
        """(analysis x cluster) values for one tail; implemented by each diagnostic."""
        raise NotImplementedError

    def _tails(self, result, labels):
        groups = analysis_groups(result)
        if len(groups) == 1:
            return [(tail, groups[0]) for tail in labels]
        if len(labels) == 2:
            tails = ["positive", "negative"] if self.display_second_group else ["positive"]
        else:
            tails = list(labels)
        return [(tail, groups[0] if tail == "positive" else groups[1]) for tail in tails]

    def transform(self, result: MetaResult) -> MetaResult:
        """Return a copy of ``result`` with the clusters table, label maps and one table of
        contributions per tail (``<target>_diag-<Name>_tab-counts_tail-<tail>``)."""
        table, labels = cluster_table(result, self.target_image, self.voxel_thresh,
                                      self.cluster_threshold)
        out = result.copy()
        out.add_tables({f"{self.target_image}_tab-clust": table})
        if not labels:
            warnings.warn(f"no clusters in {self.target_image!r}", UserWarning, stacklevel=2)
            return out
        out.add_maps({f"label_{self.target_image}_tail-{tail}": lab
                      for tail, lab in labels.items()})
        name = type(self).__name__
        for tail, group in self._tails(result, labels):
            cluster_ids = np.unique(labels[tail][labels[tail] > 0])
            values = self.contributions(result, group, labels[tail], cluster_ids)
            counts = pd.DataFrame(
                values, columns=[f"{TAIL_LABELS[tail]} {c}" for c in cluster_ids]
            )
            counts.insert(0, "id", group.ids)
            out.add_tables({f"{self.target_image}_diag-{name}_tab-counts_tail-{tail}": counts})
        return out
