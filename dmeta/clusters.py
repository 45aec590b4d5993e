"""Face-connected clusters of a thresholded map (the observed side of cluster inference)."""

import numpy as np
from scipy import ndimage

FACE_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)


def supra_threshold_clusters(volume, thresh):
    """Label voxels with ``volume > thresh`` into face-connected clusters.

    Returns
    -------
    labels : ndarray of int
        0 outside clusters, 1..n inside.
    sizes, masses : ndarray, shape (n + 1,)
        Voxel count and summed excess over ``thresh`` per label; entry 0 (background) is 0.
    """
    above = volume > thresh
    labels, n = ndimage.label(above, FACE_CONNECTIVITY)
    sizes = np.bincount(labels.ravel(), minlength=n + 1).astype(float)
    masses = np.bincount(
        labels.ravel(), weights=np.where(above, volume - thresh, 0.0).ravel(), minlength=n + 1
    )
    sizes[0] = masses[0] = 0.0
    return labels, sizes, masses


def signed_clusters(volume, thresh):
    """Clusters of ``volume > thresh`` and of ``volume < -thresh``, labelled apart.

    Positive clusters come first; masses sum ``|volume| - thresh``. Returns ``labels``,
    ``sizes`` and ``masses`` as :func:`supra_threshold_clusters` does.
    """
    pos, pos_sizes, pos_masses = supra_threshold_clusters(volume, thresh)
    neg, neg_sizes, neg_masses = supra_threshold_clusters(-volume, thresh)
    offset = pos_sizes.size - 1
    labels = np.where(neg > 0, neg + offset, pos)
    return (labels, np.concatenate([pos_sizes, neg_sizes[1:]]),
            np.concatenate([pos_masses, neg_masses[1:]]))


def cluster_peaks(stat, labels, cluster_ids):
    """Index (into ``stat``) of each listed cluster's voxel of largest ``stat``, the first
    such voxel on ties."""
    peaks = []
    for label in cluster_ids:
        voxels = np.flatnonzero(labels == label)
        peaks.append(voxels[np.argmax(stat[voxels])])
    return np.array(peaks, dtype=np.int64)
