"""Predictive FWE correction of ALE: cutoffs predicted by XGBoost models, no Monte Carlo null.

Frahm et al. (2025) simulated tens of thousands of ALE datasets of 10 to 150 experiments and
trained one regressor for the voxel-level FWE cutoff (an ALE value) and one for the
cluster-size FWE cutoff (voxels, clusters formed at uncorrected p < 0.001), each from 26
features of the numbers of experiments, subjects and foci. Predicting takes milliseconds
where a 5,000-iteration null takes minutes to hours. The models are NiMARE 0.22.1's,
re-saved in a format current XGBoost reads (``datasets/data/PROVENANCE.md``); the maps,
their names and the training-range checks are those of NiMARE's
``FWECorrector(method="predictive")``.
"""

from __future__ import annotations

import warnings
from importlib.resources import files
from typing import NamedTuple

import numpy as np
from scipy import stats

from dmeta.ale import ALE
from dmeta.approximate_null import hist_to_threshold
from dmeta.clusters import supra_threshold_clusters
from dmeta.correct import _record_correction
from dmeta.errors import InputError
from dmeta.messages import examples, warn
from dmeta.results import MetaResult
from dmeta.versions import package_version

__all__ = ["Cutoffs", "correct_fwe_predictive", "cutoff_features", "predict_cutoffs"]

SUFFIX = "corr-FWE_method-predictive"
#: The cluster-forming p the cluster-size model was trained with.
CLUSTER_FORMING_P = 0.001
#: Training range of the models; larger inputs are refused, as NiMARE refuses them.
MAX_EXPERIMENTS, MAX_SUBJECTS, MAX_FOCI = 150, 300, 150
#: Fewer experiments than any training dataset had: predicted, with a warning.
MIN_EXPERIMENTS = 10
_MODELS = {"voxel": "vFWE_model.ubj", "cluster_size": "cFWE_model.ubj"}


class Cutoffs(NamedTuple):
    """Predicted FWE cutoffs: keep voxels with ALE >= ``voxel`` and clusters of at least
    ``cluster_size`` voxels."""

    voxel: float
    cluster_size: int


def correct_fwe_predictive(result: MetaResult) -> MetaResult:
    """Return a copy of an ALE result with predictive voxel- and cluster-level FWE maps.

    Parameters
    ----------
    result : MetaResult
        From :meth:`dmeta.ALE.fit`: the cutoffs are predicted from the analyses the fit
        used, with their sample sizes and numbers of foci.

    Returns
    -------
    MetaResult
        With NiMARE's maps ``{p,z,logp}_level-voxel_corr-FWE_method-predictive`` and
        ``{p,z,logp}_desc-size_level-cluster_corr-FWE_method-predictive``: the uncorrected
        values where a voxel passes the cutoff, p = 1 and z = logp = 0 elsewhere (a cutoff
        gives no corrected p-value). ``attrs["corrections"]["corr-FWE_method-predictive"]``
        records the cutoffs, the cluster-forming ALE value and the XGBoost version.

    Raises
    ------
    dmeta.errors.InputError
        If XGBoost is not installed, an analysis has no sample size, or the data are
        outside the models' training range (the message names the parameter).
    """
    ale = result.estimator
    if not isinstance(ale, ALE):
        raise InputError("predictive FWE correction needs the result of ALE.fit in this "
                         "session")
    ale.check_fitted("ma_", "null_weights_", "bins_")
    _import_xgboost()  # a missing extra is reported before problems in the data
    ids = ale.ma_.ids
    n_subjects = result.tables["analyses"]["sample_size"].reindex(ids).to_numpy(dtype=float)
    missing = [i for i, n in zip(ids, n_subjects) if np.isnan(n)]
    if missing:
        raise InputError(
            "predictive FWE cutoffs are predicted from each analysis's sample size, and "
            f"{len(missing)} of {len(ids)} analyses have none ({examples(missing, shown=5)}); "
            "add them to the input, or use FWECorrector(method='montecarlo')"
        )
    cutoffs = predict_cutoffs(n_subjects, ale.ma_.foci.counts, ids=ids)
    # Kept a float64 numpy scalar: NiMARE compares the float32 ALE map with it in float64.
    thresh = hist_to_threshold(ale.null_weights_, ale.bins_, CLUSTER_FORMING_P)
    corrected = result.copy()
    corrected.add_maps(_predictive_maps(result, cutoffs, thresh))
    _record_correction(corrected, SUFFIX, {
        "name": "FWECorrector", "method": "predictive", "voxel_cutoff": cutoffs.voxel,
        "cluster_size_cutoff": cutoffs.cluster_size, "voxel_thresh": CLUSTER_FORMING_P,
        "cluster_forming_stat": float(thresh), "xgboost": package_version("xgboost"),
    })
    corrected.description += (
        " Family-wise error was controlled with cutoffs predicted from the numbers of "
        "experiments, subjects and foci by the XGBoost models of Frahm et al. (2025), "
        f"instead of a Monte Carlo null: ALE >= {cutoffs.voxel:.6g} at the voxel level, and "
        f"face-connected clusters of at least {cutoffs.cluster_size} voxels formed at "
        f"uncorrected p < {CLUSTER_FORMING_P}."
    )
    return corrected


def predict_cutoffs(n_subjects, n_foci, ids=None) -> Cutoffs:
    """Predict the voxel-level and cluster-size FWE cutoffs of an ALE meta-analysis.

    Parameters
    ----------
    n_subjects, n_foci : array_like, shape (n_experiments,)
        Sample size and number of foci of each experiment.
    ids : sequence of str, optional
        Experiment names, for the messages.

    Returns
    -------
    Cutoffs
        The cluster size rounded to whole voxels, as NiMARE rounds it.

    Raises
    ------
    dmeta.errors.InputError
        If XGBoost is missing, or an input is outside the training range: more than 150
        experiments, a sample size not in (0, 300], more than 150 foci in an experiment.
    """
    xgboost = _import_xgboost()
    n_subjects = np.asarray(n_subjects, dtype=float)
    n_foci = np.asarray(n_foci, dtype=float)
    if n_subjects.ndim != 1 or n_subjects.shape != n_foci.shape:
        raise InputError("n_subjects and n_foci must be vectors with one entry per experiment, "
                         f"got shapes {n_subjects.shape} and {n_foci.shape}")
    ids = list(ids) if ids is not None else [f"#{i}" for i in range(n_subjects.size)]
    _check_training_range(n_subjects, n_foci, ids)
    features = xgboost.DMatrix(cutoff_features(n_subjects, n_foci))
    voxel, cluster_size = (
        float(xgboost.Booster(model_file=_model_path(name)).predict(features)[0])
        for name in ("voxel", "cluster_size")
    )
    return Cutoffs(voxel, round(cluster_size))


def cutoff_features(n_subjects, n_foci) -> np.ndarray:
    """The 26 features the models take, as a (1, 26) row, in the models' column order.

    The number of experiments; sum, mean, median, SD, max, min, skewness and excess
    kurtosis of the sample sizes, then of the foci counts; mean, SD, max and min of foci per
    subject; foci per experiment; and the foci of experiments with more than 20, 16-20,
    11-15 and at most 10 subjects. Skewness and kurtosis of constant values are 0.
    """
    subjects = np.asarray(n_subjects, dtype=float)
    foci = np.asarray(n_foci, dtype=float)
    ratio = foci / subjects
    bands = (subjects > 20, (subjects > 15) & (subjects <= 20),
             (subjects > 10) & (subjects <= 15), subjects <= 10)
    row = [subjects.size, *_describe(subjects), *_describe(foci),
           ratio.mean(), ratio.std(), ratio.max(), ratio.min(), foci.sum() / subjects.size,
           *(foci[band].sum() for band in bands)]
    return np.array([row], dtype=float)


def _describe(values):
    """Sum, mean, median, SD, max, min, skewness and excess kurtosis (0 where undefined)."""
    with warnings.catch_warnings():
        # Constant values: scipy warns of lost precision and returns nan.
        warnings.simplefilter("ignore", RuntimeWarning)
        shape = [stats.skew(values), stats.kurtosis(values)]
    return [values.sum(), values.mean(), np.median(values), values.std(), values.max(),
            values.min(), *(0.0 if np.isnan(s) else float(s) for s in shape)]


def _check_training_range(n_subjects, n_foci, ids):
    """InputError naming the parameter, value and range beyond the models' training, as
    NiMARE refuses them; a warning below the fewest experiments trained on, which NiMARE
    does not check."""
    n = n_subjects.size
    if n > MAX_EXPERIMENTS:
        raise _out_of_range(f"n_experiments={n}", f"at most {MAX_EXPERIMENTS}")
    for name, values, outside, allowed in (
        ("sample_size", n_subjects, ~((n_subjects > 0) & (n_subjects <= MAX_SUBJECTS)),
         f"0 < sample_size <= {MAX_SUBJECTS}"),
        ("n_foci", n_foci, ~((n_foci >= 0) & (n_foci <= MAX_FOCI)), f"at most {MAX_FOCI}"),
    ):
        if outside.any():
            bad = [f"{name}={values[i]:g} of analysis {ids[i]}" for i in np.flatnonzero(outside)]
            raise _out_of_range(examples(bad, shown=3), allowed)
    if n < MIN_EXPERIMENTS:
        warn(f"predictive FWE cutoffs for n_experiments={n}: the models were trained on "
             f"datasets of {MIN_EXPERIMENTS} to {MAX_EXPERIMENTS} experiments, so this is "
             "an extrapolation; FWECorrector(method='montecarlo') does not need one")


def _out_of_range(what, allowed):
    return InputError(f"predictive FWE cutoffs: {what} is outside the models' training range "
                      f"({allowed}); use FWECorrector(method='montecarlo')")


def _import_xgboost():
    """XGBoost, an optional dependency: only this correction needs it."""
    try:
        import xgboost
    except ImportError as err:
        raise InputError('FWECorrector(method="predictive") needs XGBoost: '
                         'pip install "dmeta[predictive]"') from err
    return xgboost


def _model_path(name):
    return str(files("dmeta.datasets").joinpath("data", "ml_models", _MODELS[name]))


def _predictive_maps(result, cutoffs, thresh):
    """NiMARE's six maps: p, z and logp kept where a voxel passes each cutoff."""
    stat = result.get_map("stat", return_type="array")
    space = result.space
    labels, sizes, _ = supra_threshold_clusters(space.to_volume(stat), thresh)
    large = sizes >= cutoffs.cluster_size
    large[0] = False  # background, whatever the cutoff
    keep = {
        "level-voxel": stat >= cutoffs.voxel,
        "desc-size_level-cluster": space.from_volume(large[labels]),
    }
    uncorrected = {kind: result.get_map(kind, return_type="array")
                   for kind in ("p", "z", "logp")}
    maps = {}
    for level, mask in keep.items():
        for kind, values in uncorrected.items():
            outside = np.float32(1 if kind == "p" else 0)
            maps[f"{kind}_{level}_{SUFFIX}"] = np.where(mask, values, outside).astype(np.float32)
    return maps
