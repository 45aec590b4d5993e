"""FocusCounter: how many of each analysis's foci fall in each cluster."""

import numpy as np

from dmeta.diagnostics.base import Diagnostics
from dmeta.docstrings import fill_doc
from dmeta.space import values_at


def count_foci(foci, labels_volume, cluster_ids):
    """(analysis x cluster) number of foci inside each cluster.

    NiMARE counts a focus towards a cluster when a cluster voxel lies less than one voxel
    from it; foci sit on voxel centres (mm coordinates are rounded to the grid), so that
    voxel is the focus's own. Foci beyond the edge of the grid are in no cluster.
    """
    label = values_at(labels_volume, foci.ijk, 0)
    analysis = np.repeat(np.arange(len(foci.ids)), foci.counts)
    position = np.searchsorted(cluster_ids, label)
    clipped = np.minimum(position, cluster_ids.size - 1)
    inside = (position < cluster_ids.size) & (cluster_ids[clipped] == label)
    flat = analysis[inside] * cluster_ids.size + position[inside]
    counts = np.bincount(flat, minlength=len(foci.ids) * cluster_ids.size)
    return counts.reshape(len(foci.ids), cluster_ids.size)


@fill_doc
class FocusCounter(Diagnostics):
    """Count each analysis's foci in each cluster of the target map (NiMARE's FocusCounter).

    Parameters
    ----------
    %(diagnostic_parameters)s
    """

    def contributions(self, result, group, labels, cluster_ids):
        return count_foci(group.ma.foci, result.space.to_volume(labels), cluster_ids)
