"""Predictive FWE correction: NiMARE 0.22.1's cutoffs and maps on pain, the training-range
checks, and the message when the optional XGBoost is missing.

NiMARE's models are in XGBoost's old binary format, which XGBoost >= 3.1 cannot load, so the
reference cutoffs were computed once with XGBoost 3.0.5 (in a scratch venv, imported before
the main venv's site-packages are appended to the path), from /work/main:

    python3 -m venv /tmp/xgb30 && /tmp/xgb30/bin/pip install xgboost==3.0.5 numpy scipy
    /tmp/xgb30/bin/python -c "
    import site, sys, warnings, xgboost
    assert xgboost.__version__ == '3.0.5'
    site.addsitedir('.venv/lib/python3.11/site-packages'); sys.path.append('tests')
    from nimare.correct import FWECorrector
    from nimare.meta.cbma import ALE
    from dmeta.datasets import default_mask_path
    from nimare_reference import nimare_dataset
    warnings.simplefilter('ignore')
    result = ALE(mask=str(default_mask_path())).fit(nimare_dataset('pain'))
    nulls = FWECorrector(method='predictive').transform(result).estimator.null_distributions_
    print({k: v for k, v in nulls.items() if 'predictive' in k})"

which printed 0.021086951717734337 (voxel level) and 89.0 (cluster size).
"""

import sys
import warnings

import numpy as np
import pytest

from dmeta.errors import InputError
from dmeta.predictive import SUFFIX, correct_fwe_predictive, cutoff_features, predict_cutoffs

NIMARE_VOXEL_CUTOFF = 0.021086951717734337
NIMARE_CLUSTER_SIZE_CUTOFF = 89


@pytest.fixture(scope="module")
def pain_predictive(pain_ale):
    return correct_fwe_predictive(pain_ale)


def test_cutoffs_on_pain_are_nimare_s(pain_predictive):
    record = pain_predictive.attrs["corrections"][SUFFIX]
    assert abs(record["voxel_cutoff"] - NIMARE_VOXEL_CUTOFF) <= 1e-6
    assert record["cluster_size_cutoff"] == NIMARE_CLUSTER_SIZE_CUTOFF
    assert record["method"] == "predictive" and record["voxel_thresh"] == 0.001
    assert "Frahm et al. (2025)" in pain_predictive.description
    assert "89 voxels" in pain_predictive.description


def test_maps_are_nimare_s_given_the_cutoffs(pain_ale, pain_predictive, monkeypatch):
    """NiMARE's own code, its model call replaced by the reference cutoffs."""
    pytest.importorskip("nimare")
    import nimare.meta.cbma.ale as nimare_ale
    from nimare.correct import FWECorrector
    from nimare.meta.cbma.predictive import feature_extraction

    from nimare_reference import nimare_dataset

    monkeypatch.setattr(nimare_ale, "predict_cutoffs", lambda *counts: {
        "vfwe": NIMARE_VOXEL_CUTOFF, "cfwe": NIMARE_CLUSTER_SIZE_CUTOFF})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = nimare_ale.ALE(mask=pain_ale.space.mask_img)
        theirs = FWECorrector(method="predictive").transform(
            estimator.fit(nimare_dataset("pain")))
    # The models see the same features from both fits.
    ma = pain_ale.estimator.ma_
    ours_features = cutoff_features(
        pain_ale.tables["analyses"]["sample_size"].to_numpy(float), ma.foci.counts)
    np.testing.assert_array_equal(ours_features,
                                  feature_extraction(*estimator._predictive_counts()))
    names = sorted(name for name in theirs.maps if SUFFIX in name)
    assert sorted(name for name in pain_predictive.maps if SUFFIX in name) == names
    assert len(names) == 6
    for name in names:
        ours = pain_predictive.get_map(name, "array")
        expected = theirs.get_map(name, return_type="array")
        outside = 1 if name.startswith("p_") else 0
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(ours != outside, expected != outside, err_msg=name)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4, err_msg=name)
    kept = {level: int(np.sum(pain_predictive.get_map(f"z_{level}_{SUFFIX}", "array") != 0))
            for level in ("level-voxel", "desc-size_level-cluster")}
    assert kept == {"level-voxel": 203, "desc-size_level-cluster": 2330}


def test_features_are_nimare_s_on_random_and_constant_data():
    predictive = pytest.importorskip("nimare.meta.cbma.predictive")
    rng = np.random.default_rng(3)
    cases = [(np.full(12, 20), np.full(12, 8))]  # constant: skewness and kurtosis are 0
    cases += [(rng.integers(1, 301, n), rng.integers(0, 151, n)) for n in (2, 17, 150)]
    for subjects, foci in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = predictive.feature_extraction(len(subjects), subjects, foci)
        np.testing.assert_array_equal(cutoff_features(subjects, foci), expected)


@pytest.mark.parametrize("subjects, foci, message", [
    (np.full(151, 20), np.full(151, 10), r"n_experiments=151 .*\(at most 150\)"),
    (np.r_[301, np.full(19, 20)], np.full(20, 10),
     r"sample_size=301 of analysis a0 .*\(0 < sample_size <= 300\)"),
    (np.r_[0, np.full(19, 20)], np.full(20, 10), r"sample_size=0 of analysis a0"),
    (np.full(20, 20), np.r_[np.full(19, 10), 151], r"n_foci=151 of analysis a19 .*at most 150"),
])
def test_outside_the_training_range_is_refused(subjects, foci, message):
    ids = [f"a{i}" for i in range(len(subjects))]
    with pytest.raises(InputError, match=message):
        predict_cutoffs(subjects, foci, ids=ids)


def test_a_result_outside_the_training_range_names_the_analysis(pain_ale):
    bigger = pain_ale.copy()
    bigger.tables["analyses"].loc["pain_07.nidm-1", "sample_size"] = 400
    with pytest.raises(InputError, match=r"sample_size=400 of analysis pain_07\.nidm-1"):
        correct_fwe_predictive(bigger)
    bigger.tables["analyses"].loc["pain_07.nidm-1", "sample_size"] = np.nan
    with pytest.raises(InputError, match=r"1 of 21 analyses have none \(pain_07\.nidm-1\)"):
        correct_fwe_predictive(bigger)


def test_fewer_experiments_than_trained_on_warns():
    with pytest.warns(UserWarning, match=r"n_experiments=5: .*10 to 150 experiments"):
        cutoffs = predict_cutoffs(np.full(5, 20), np.full(5, 10))
    assert cutoffs.voxel > 0 and cutoffs.cluster_size > 0


def test_missing_xgboost_says_how_to_install_it(pain_ale, monkeypatch):
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost raises ImportError
    with pytest.raises(InputError, match=r'pip install "dmeta\[predictive\]"'):
        correct_fwe_predictive(pain_ale)


def test_only_an_ale_result_is_corrected(pain_ale):
    stored = pain_ale.copy()
    stored.estimator = None
    with pytest.raises(InputError, match="ALE.fit"):
        correct_fwe_predictive(stored)
