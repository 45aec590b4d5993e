"""Monte Carlo FWE agrees with NiMARE 0.22.1 within Monte Carlo error at 5,000 iterations.

Tolerance: with n = 5000 iterations per run, the sample 95th percentile of one run falls
between the other run's (95 -/+ d)th percentiles, d = 3 * sqrt(2 * 0.95 * 0.05 / n) = 1.3
percentage points (three standard errors of the difference of two independent empirical
CDFs at the 95th percentile). The cluster-size-corrected significant voxels (z > 1.645) must
overlap NiMARE's with Dice >= 0.9.
"""

import warnings

import numpy as np
import pytest

import dmeta

nimare = pytest.importorskip("nimare")
from nimare.correct import FWECorrector as NiMAREFWECorrector  # noqa: E402
from nimare.meta.cbma import ALE as NiMAREALE  # noqa: E402

from nimare_reference import nimare_dataset  # noqa: E402

N_ITERS = 5000
SIZE_MAP = "z_desc-size_level-cluster_corr-FWE_method-montecarlo"


def _within_mc_error(ours, theirs, q=0.95):
    d = 3 * np.sqrt(2 * q * (1 - q) / N_ITERS)
    low, high = np.quantile(theirs, [q - d, q + d])
    return low <= np.quantile(ours, q) <= high


@pytest.mark.parametrize("name", ["pain", "semantic_knowledge"])
def test_fwe_nulls_and_clusters_match_nimare(client, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dmeta.ALE().fit(dmeta.datasets.load_example(name))
        ours = dmeta.FWECorrector(n_iters=N_ITERS, seed=1).transform(ours)
        fitted = NiMAREALE(mask=ours.space.mask_img, random_state=1).fit(
            nimare_dataset(name, ours.space)
        )
        theirs = NiMAREFWECorrector(
            method="montecarlo", voxel_thresh=0.001, n_iters=N_ITERS, n_cores=2
        ).transform(fitted)
    nulls = theirs.estimator.null_distributions_
    assert np.isclose(ours.nulls.attrs["cluster_forming_stat"],
                      fitted.estimator._p_to_summarystat(0.001), atol=1e-9)
    assert _within_mc_error(ours.nulls["max_stat"].values,
                            nulls["values_level-voxel_corr-fwe_method-montecarlo"])
    assert _within_mc_error(ours.nulls["max_cluster_size"].values,
                            nulls["values_desc-size_level-cluster_corr-fwe_method-montecarlo"])
    a = ours.get_map(SIZE_MAP, "array") > 1.645
    b = theirs.get_map(SIZE_MAP, return_type="array") > 1.645
    assert a.any() and b.any()
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.9
