"""Cluster tables and label maps of a target map, as nilearn's ``get_clusters_table`` makes them.

Names and ids follow NiMARE's diagnostics: the table ``<target>_tab-clust`` with cluster ids
``PositiveTail 1``, ``PositiveTail 1a`` (a subpeak), ``NegativeTail 2``..., and one label map
per tail whose values are those cluster numbers.
"""

from string import ascii_lowercase

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.reporting.get_clusters_table import _local_max
from scipy import ndimage

from dmeta.clusters import FACE_CONNECTIVITY
from dmeta.errors import InputError

COLUMNS = ["Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)"]

TAIL_LABELS = {"positive": "PositiveTail", "negative": "NegativeTail"}


def target_values(result, target_image):
    """The target map's in-mask vector; a clear error lists the maps there are."""
    if target_image not in result.maps:
        raise InputError(
            f"target_image {target_image!r} is not in the result; available maps: "
            f"{', '.join(result.maps.data_vars)}"
        )
    return result.get_map(target_image, return_type="array")


def is_cluster_corrected(target_image):
    """Cluster-level corrected maps hold p-values per cluster, not a peak statistic."""
    return "_level-cluster" in target_image and "_corr-" in target_image


def peak_map_name(target_image):
    """The uncorrected map a cluster-corrected target comes from (peaks are read there).

    ``z_desc-size_level-cluster_corr-FWE_method-montecarlo`` -> ``z``; a description that
    names the cluster statistic (``desc-size``, ``desc-group1MinusGroup2Size``) loses it.
    """
    entities = target_image.split("_corr-", 1)[0].split("_")
    kept = [entities[0]]
    for entity in entities[1:]:
        if entity == "level-cluster":
            continue
        if entity.startswith("desc-"):
            desc = entity[5:]
            for stat in ("Size", "Mass", "size", "mass"):
                if desc.endswith(stat):
                    desc = desc[: -len(stat)]
                    break
            if not desc:
                continue
            entity = f"desc-{desc}"
        kept.append(entity)
    return "_".join(kept)


def _clusters(volume, affine, threshold, cluster_threshold, two_sided):
    """The table and label volumes nilearn's ``get_clusters_table`` gives, cluster by cluster.

    nilearn filters the whole volume once per cluster to find its subpeaks; here its own
    subpeak search (``_local_max``, 8 mm apart) runs on each cluster's bounding box, which
    gives the same peaks, since each search only sees that cluster's voxels (boxes start at
    even subscripts so that rounding a centre of mass half to even does not move). Clusters are
    face-connected, ordered by peak, numbered on as nilearn numbers them (a negative tail's
    ids continue after the positive tail's rows).
    """
    zooms = np.abs(np.linalg.det(affine[:3, :3])).astype(np.float32)
    rows, labels = [], []
    for sign in (1, -1) if two_sided else (1,):
        data = volume * sign
        lab, n = ndimage.label(data > threshold, FACE_CONNECTIVITY)
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        if cluster_threshold and (sizes[1:] < cluster_threshold).any():
            lab, n = ndimage.label((data > threshold) & (sizes[lab] >= cluster_threshold),
                                   FACE_CONNECTIVITY)
            sizes = np.bincount(lab.ravel(), minlength=n + 1)
        if n == 0:
            continue
        ids = np.arange(1, n + 1)
        order = ids[(-np.asarray(ndimage.maximum(data, lab, ids))).argsort()]
        relabel = np.zeros(n + 1, dtype=np.int64)
        relabel[order] = ids
        labels.append(relabel[lab])
        offset = len(rows)
        boxes = ndimage.find_objects(lab)
        for rank, c in enumerate(order):
            # Even corners: a plateau's centre of mass may end in .5, which rounds to even.
            box = tuple(slice(max(b.start - 1, 0) // 2 * 2, b.stop + 1) for b in boxes[c - 1])
            crop = np.where(lab[box] == c, data[box], 0.0)
            corner = np.array([b.start for b in box])
            crop_affine = affine.copy()
            crop_affine[:3, 3] += affine[:3, :3] @ corner
            ijk, vals = _local_max(crop, crop_affine, 8.0)
            xyz = nib.affines.apply_affine(affine, ijk + corner)
            for p in range(min(len(vals), 4)):
                cid = f"{rank + offset + 1}{ascii_lowercase[p - 1] if p else ''}"
                size = int(sizes[c] * zooms) if p == 0 else ""
                rows.append([cid if p else rank + offset + 1, *xyz[p], vals[p] * sign, size])
    table = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    return table, labels


def cluster_table(result, target_image, threshold=None, cluster_threshold=None):
    """Clusters of ``target_image`` above ``threshold`` (and their peaks and subpeaks).

    Parameters
    ----------
    result : MetaResult
    target_image : str
        Map whose supra-threshold clusters are described.
    threshold : float, optional
        Threshold on the target map, in its own units (0 if None: every non-zero voxel).
    cluster_threshold : int, optional
        Minimum cluster size in voxels.

    Returns
    -------
    table : pandas.DataFrame
        ``Cluster ID``, ``X``, ``Y``, ``Z`` (peak, mm), ``Peak Stat``, ``Cluster Size
        (mm3)``. For a cluster-corrected target the peaks are read from the uncorrected
        map (e.g. ``z``), because the corrected map is constant within a cluster.
    labels : dict of str to ndarray of int
        In-mask label vector per tail (``"positive"``, ``"negative"``); 0 outside clusters.
    """
    space = result.space
    values = target_values(result, target_image)
    volume = space.to_volume(values.astype(np.float32))
    two_sided = bool((values < 0).any())
    threshold = 0.0 if threshold is None else float(threshold)
    if threshold < 0:
        raise InputError(f"voxel_thresh must be >= 0 (it applies to both tails), got {threshold}")
    table, labels = _clusters(volume, space.affine, threshold, cluster_threshold or 0, two_sided)
    if table.empty:
        return table, {}
    tails = ["positive", "negative"] if len(labels) == 2 else [_single_tail(table)]
    labels = {tail: space.from_volume(lab).astype(np.int64) for tail, lab in zip(tails, labels)}
    if is_cluster_corrected(target_image):
        table = _peaks_from(result, target_image, labels)
    table = table.astype({"Cluster ID": str})
    table["Cluster ID"] = [
        f"{TAIL_LABELS['positive' if stat > 0 else 'negative']} {cid}"
        for cid, stat in zip(table["Cluster ID"], table["Peak Stat"])
    ]
    return table.reset_index(drop=True), labels


def _single_tail(table):
    stats = table["Peak Stat"].astype(float)
    return "negative" if (stats < 0).all() else "positive"


def _peaks_from(result, target_image, labels):
    """Re-tabulate the target's clusters with peaks of the uncorrected map inside them."""
    name = peak_map_name(target_image)
    if name not in result.maps:
        raise InputError(
            f"peaks of the cluster-corrected map {target_image!r} are read from {name!r}, "
            "which is not in the result"
        )
    support = np.zeros(result.space.n_voxels, dtype=bool)
    for lab in labels.values():
        support |= lab > 0
    peaks = np.where(support, result.get_map(name, return_type="array"), 0.0)
    volume = result.space.to_volume(peaks.astype(np.float32))
    table, _ = _clusters(volume, result.space.affine, 0.0, 0, bool((peaks < 0).any()))
    return table
