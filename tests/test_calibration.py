"""False-positive rates under true nulls: short runs of benchmarks/calibration.py.

(a) Random halves of the pain example: with ties counted in both tails ("exact") the ALE
subtraction keeps within its calibration targets; NiMARE's tie rule ("nimare") does not.
(b) Random-foci meta-analyses: Monte Carlo FWE does not call noise significant more often
than 5% of the time (one-sided binomial test at 1%).
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import dmeta
from dmeta.space import Space
from dmeta.stats import p_to_z

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from calibration import (  # noqa: E402
    FWE_ALPHA,
    familywise_p,
    fwe_rates,
    random_foci_like,
    subtraction_rates,
)

SUB_SPLITS, SUB_ITERS = 3, 2000
FWE_DATASETS, FWE_ITERS = 50, 100


@pytest.fixture(scope="module")
def pain():
    return dmeta.datasets.load_example("pain")


@pytest.fixture(scope="module")
def subtraction_null(client, pain):
    """Mean over splits of the in-mask voxel shares below each alpha, per tie mode."""
    table = subtraction_rates(pain, SUB_SPLITS, SUB_ITERS, seed=0)
    return table.groupby("mode").mean(numeric_only=True)


def test_exact_ties_meet_the_calibration_targets(subtraction_null):
    exact = subtraction_null.loc["exact"]
    assert exact["p<0.05"] <= 0.06
    assert exact["p<0.001"] <= 0.003


def test_nimare_ties_show_the_artefact(subtraction_null):
    """NiMARE's one-sided ties give p = 1/n at voxels one or two analyses reach."""
    assert subtraction_null.loc["nimare", "p<0.001"] > 0.003


def test_random_foci_keep_the_template_shape(pain):
    space = Space.from_mask()
    cset = random_foci_like(pain, space, np.random.default_rng(0))
    assert cset.ids == pain.ids
    np.testing.assert_array_equal(cset.sample_sizes, pain.sample_sizes)
    np.testing.assert_array_equal(cset.foci.groupby("id").size(), pain.foci.groupby("id").size())
    assert space.in_mask(space.mm_to_ijk(cset.foci[["x", "y", "z"]].to_numpy())).all()


def test_familywise_p_is_the_corrector_s(client, pain):
    """The p the calibration counts is the one behind FWECorrector's maps."""
    cset = random_foci_like(pain, Space.from_mask(), np.random.default_rng(1))
    corrected = dmeta.FWECorrector(n_iters=50, seed=2).transform(dmeta.ALE().fit(cset))
    p = familywise_p(corrected)
    maps = {"voxel": "z_level-voxel_corr-FWE_method-montecarlo",
            "cluster-size": "z_desc-size_level-cluster_corr-FWE_method-montecarlo",
            "cluster-mass": "z_desc-mass_level-cluster_corr-FWE_method-montecarlo"}
    for level, name in maps.items():
        assert np.isclose(p_to_z(p[level]), corrected.get_map(name, "array").max())


def test_fwe_false_positive_rate(client, pain):
    p_table = fwe_rates(pain, FWE_DATASETS, FWE_ITERS, seed=0, log=lambda _: None)
    for level in p_table.columns:
        k = int((p_table[level] < FWE_ALPHA).sum())
        test = stats.binomtest(k, FWE_DATASETS, FWE_ALPHA, alternative="greater")
        assert test.pvalue >= 0.01, f"{level}: {k}/{FWE_DATASETS} significant"
