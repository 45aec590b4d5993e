"""Shared parameter documentation: the text of parameters many public docstrings describe.

As nilearn's ``fill_doc``: a docstring writes ``%(seed)s`` on a line of its own where the
parameter's entry goes, and :func:`fill_doc` puts the entry from :data:`docdict` there,
indented to the placeholder's column. A parameter is then described once, and ALE,
FWECorrector and stability_sweep say the same of ``chunk_iters``.

Where a parameter means something else in another context, the variant is an entry of its
own, named ``<parameter>_<context>`` (``seed`` of a Monte Carlo null, ``seed_permutation``
of relabellings); a parameter only one docstring has is written out there.

Only whole-line placeholders are replaced (not ``%`` formatting), so the other ``%`` signs
of a docstring ("12% of voxels") need no escaping; a placeholder that does not stand on a
line of its own, or names no entry, fails at import instead of reaching the rendered page.
"""

from __future__ import annotations

import re
import textwrap
from typing import TypeVar

__all__ = ["docdict", "fill_doc"]

_T = TypeVar("_T")

#: Entry name -> numpydoc text: ``name : type``, then the description indented by four
#: spaces, written at the left margin.
docdict: dict[str, str] = {}

# -- ALE estimators -----------------------------------------------------------------------

docdict["kernel_fwhm"] = """\
kernel_fwhm : float, optional
    One kernel FWHM (mm) for every analysis, instead of one from each sample size."""

docdict["sample_size"] = """\
sample_size : int, optional
    One sample size for every analysis's kernel, instead of each analysis's own."""

docdict["mask"] = """\
mask : str, os.PathLike, nibabel image or Space, optional
    Analysis mask; the bundled MNI152 2 mm brain mask by default."""

# -- Monte Carlo nulls of random-foci datasets --------------------------------------------

docdict["n_iters"] = """\
n_iters : int
    Monte Carlo iterations, each a random-foci dataset: every analysis's foci at random
    in-mask voxels, and the ALE they give."""

docdict["n_iters_auto"] = """\
n_iters : int or "auto"
    Monte Carlo iterations, each a random-foci dataset: every analysis's foci at random
    in-mask voxels, and the ALE they give. ``"auto"`` runs until every critical value the
    result uses is known to ``precision`` (see :mod:`dmeta.montecarlo.adaptive`)."""

docdict["precision"] = """\
precision : float
    With ``n_iters="auto"``: the largest accepted relative Monte Carlo error of each
    critical value (a 95th percentile of the null), the half-width of its 95%
    order-statistic interval over the value; in (0, 1)."""

docdict["max_iters"] = """\
max_iters : int
    With ``n_iters="auto"``: the iterations at which the run stops whatever its precision."""

docdict["seed"] = """\
seed : int, optional
    Root seed of the Monte Carlo null: iteration ``i`` draws from a generator seeded with
    ``(seed, i)``. None draws a seed, which the result records."""

docdict["chunk_iters"] = """\
chunk_iters : int, optional
    Monte Carlo iterations per Dask task; results do not depend on it."""

docdict["store"] = """\
store : str or os.PathLike, optional
    Zarr store in which the null is kept block by block, so that an interrupted run
    resumes and a longer one extends it. The store keeps the seed (used when ``seed`` is
    None) and the block size it was created with, and refuses a null of other inputs."""

docdict["voxel_thresh"] = """\
voxel_thresh : float
    Cluster-forming threshold: the uncorrected p, under the approximate null, that a
    voxel's ALE must fall below to be in a cluster."""

# -- Relabellings of an ALE subtraction ---------------------------------------------------

docdict["n_iters_permutation"] = """\
n_iters : int or "auto"
    Number of random relabellings of the pooled analyses (group sizes kept). ``"auto"``
    runs until the voxel-level FWE critical value (the 95th percentile of each
    relabelling's maximum absolute difference) is known to ``precision``, in blocks
    dividing 100 relabellings (see :mod:`dmeta.montecarlo.adaptive`), and never stops before
    2 / ``voxel_thresh`` relabellings, so that p-values below ``voxel_thresh`` exist."""

docdict["precision_permutation"] = """\
precision : float
    With ``n_iters="auto"``: the largest accepted relative Monte Carlo error of the
    voxel-level FWE critical value, the half-width of its 95% order-statistic interval
    over the value; in (0, 1)."""

docdict["seed_permutation"] = """\
seed : int, optional
    Root seed; relabelling ``i`` draws from a generator seeded with ``(seed, i)``. None
    draws a seed, which the result records (``result.attrs["params"]["seed"]``)."""

docdict["chunk_iters_permutation"] = """\
chunk_iters : int, optional
    Relabellings per Dask task; results do not depend on it."""

docdict["chunk_voxels"] = """\
chunk_voxels : int, optional
    In-mask voxels per Dask task; results do not depend on it."""

# -- Cluster diagnostics of a corrected map -----------------------------------------------

docdict["target_image"] = """\
target_image : str
    Map whose clusters are characterised; by default the cluster-size FWE z map."""

docdict["voxel_thresh_target"] = """\
voxel_thresh : float, optional
    Threshold on the target map, in its units (e.g. 3.1 for ``z``); None keeps every
    non-zero voxel, as for an already thresholded, cluster-corrected map."""

docdict["cluster_threshold"] = """\
cluster_threshold : int, optional
    Minimum cluster size in voxels."""

docdict["display_second_group"] = """\
display_second_group : bool
    For a subtraction with clusters in both tails, also characterise the negative tail
    (group 2's analyses); otherwise only group 1's positive tail."""

#: The parameters every cluster diagnostic (FocusCounter, Jackknife) takes, in order.
docdict["diagnostic_parameters"] = "\n".join(
    docdict[name]
    for name in ("target_image", "voxel_thresh_target", "cluster_threshold",
                 "display_second_group")
)

# -- Resampled stability ------------------------------------------------------------------

docdict["n_resamples"] = """\
n_resamples : int, optional
    Replicates; None uses every subset (at most 1000)."""

docdict["random_state"] = """\
random_state : int, optional
    Root seed of the subsets and of the Monte Carlo nulls."""

docdict["cluster_threshold_stability"] = """\
cluster_threshold : int, optional
    A fixed cluster size (voxels) to exceed instead of the Monte Carlo quantile."""

docdict["alpha_stability"] = """\
alpha : float
    Family-wise error rate of the cluster-size threshold."""

docdict["refit"] = """\
refit : {"approximate", "full"}
    ``"approximate"`` (NiMARE's semantics): every replicate is thresholded with the full
    data's approximate null and one Monte Carlo null of the replicates' size.
    ``"full"``: every replicate gets its own approximate null and Monte Carlo null."""

docdict["mask_coverage"] = """\
mask_coverage : {"gm", "brain"}
    Where the random foci of the Monte Carlo null are drawn: grey matter, or the whole
    mask."""

docdict["store_stability"] = """\
store : str or os.PathLike, optional
    Zarr store keeping the Monte Carlo nulls and the finished replicates, so a rerun
    resumes."""

# -- Workflows ----------------------------------------------------------------------------

#: The parameters both workflows take after ``estimator``.
docdict["workflow_steps"] = """\
corrector : FWECorrector, FDRCorrector, "montecarlo" or "fdr", optional
    Default: Monte Carlo FWE.
diagnostics : diagnostic, list of them, "focuscounter" or "jackknife", optional
    Run on the corrected z maps (with Monte Carlo FWE: the cluster-mass map). A diagnostic
    is any object with a ``transform(result)`` method; its ``target_image`` is set to each
    of those maps in turn.
voxel_thresh, cluster_threshold : float, int
    Given to diagnostics that left these parameters at their defaults.
output_dir : str or os.PathLike, optional
    Where to write maps, tables and the methods text."""

# -- Readers ------------------------------------------------------------------------------

docdict["unknown_space"] = """\
unknown_space : {"keep", "drop", "error"}
    Foci in a space that is neither MNI nor Talairach (NeuroStore's ``OTHER``,
    ``UNKNOWN``, no label): used as given with one warning counting them, as NiMARE
    does ("keep"); left out ("drop"); or refused ("error"). See :mod:`dmeta.io.spaces`."""

#: Parameters, Returns and Raises of the readers of one file format.
docdict["reader"] = f"""\
Parameters
----------
path : str or os.PathLike
    The file to read.
{docdict["unknown_space"]}

Returns
-------
CoordinateSet
    Foci in MNI mm (Talairach foci converted), analyses in the order the file gives them.

Raises
------
dmeta.errors.InputError
    If the file is missing or malformed; the message names the file and the place."""

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_WHOLE_LINE = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj: _T) -> _T:
    """Replace each ``%(name)s`` line of ``obj``'s docstring with ``docdict[name]``.

    A decorator for functions and classes; returns ``obj``. Each entry is indented to its
    placeholder's column, so it reads as if written there.

    Raises
    ------
    KeyError
        If a placeholder names no entry of :data:`docdict`.
    ValueError
        If a placeholder shares its line with other text (entries are whole blocks).
    """
    doc = obj.__doc__
    if not doc:  # python -OO strips docstrings
        return obj
    filled = _WHOLE_LINE.sub(_entry, doc)
    stray = _PLACEHOLDER.search(filled)
    if stray is not None:
        raise ValueError(f"{getattr(obj, '__qualname__', obj)}: placeholder {stray.group(0)} "
                         "must stand on a line of its own")
    obj.__doc__ = filled
    return obj


def _entry(match: re.Match) -> str:
    indent, name = match.groups()
    if name not in docdict:
        raise KeyError(f"no shared documentation for %({name})s; docdict has "
                       f"{', '.join(sorted(docdict))}")
    return textwrap.indent(docdict[name], indent)
