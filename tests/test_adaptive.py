"""Adaptive Monte Carlo: an interval that covers, a stop that depends on the seed alone, and
a resumed run that stops where an uninterrupted one would."""

import warnings

import numpy as np
import pytest
from scipy import stats

import dmeta
from dmeta.approximate_null import hist_to_threshold
from dmeta.errors import InputError
from dmeta.montecarlo import NullPlan, StoppingRule, iteration_budget, run_null
from dmeta.montecarlo.adaptive import STEP, quantile_interval, relative_error
from dmeta.montecarlo.store import NULL_NAMES, NullStore

RULE = StoppingRule(precision=0.1, max_iters=1500, columns=NULL_NAMES)


@pytest.fixture(scope="module")
def toy_ale(toy_groups, toy_space):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dmeta.ALE(mask=toy_space.mask_img).fit(toy_groups[0])


@pytest.fixture(scope="module")
def toy_plan(toy_ale):
    ale = toy_ale.estimator
    return NullPlan(ale.ma_, hist_to_threshold(ale.null_weights_, ale.bins_, 0.05))


def test_interval_ranks_come_from_the_binomial():
    values = np.arange(1, 1001, dtype=float)[::-1]
    estimate, lower, upper = quantile_interval(values, 0.95)
    low = stats.binom.ppf(0.025, 1000, 0.95)
    high = stats.binom.ppf(0.975, 1000, 0.95) + 1
    assert (lower, upper) == (low, high)
    assert lower <= estimate == np.quantile(values, 0.95) <= upper
    coverage = stats.binom.cdf(high - 1, 1000, 0.95) - stats.binom.cdf(low - 1, 1000, 0.95)
    assert coverage >= 0.95


def test_too_few_iterations_leave_the_interval_open():
    _, _, upper = quantile_interval(np.arange(50.0), 0.95)
    assert upper == np.inf
    assert relative_error(np.arange(50.0), 0.95) == np.inf
    assert relative_error(np.zeros(200), 0.95) == 0.0


@pytest.mark.parametrize("draw, truth", [
    # The maximum of a null map: light-tailed and continuous.
    (lambda rng, n: rng.gumbel(0.02, 0.002, n), stats.gumbel_r(0.02, 0.002).ppf(0.95)),
    # The largest cluster: skewed, discrete, with ties.
    (lambda rng, n: np.ceil(rng.lognormal(4.0, 0.6, n)),
     np.ceil(stats.lognorm(0.6, scale=np.exp(4.0)).ppf(0.95))),
])
def test_stopping_rule_covers_the_true_quantile_over_many_seeds(draw, truth):
    """At the stop the interval holds the true 95th percentile, and the estimate is within
    ``precision`` of it, in 95% of 400 independent runs (within binomial noise; measured:
    97.5% and 98.3% for the first, 95.5% and 94.5% for the second)."""
    rule = StoppingRule(precision=0.05, max_iters=20_000, columns=("x",))
    covered, close, used = [], [], []
    for seed in range(400):
        values = draw(np.random.default_rng(seed), rule.max_iters)
        n = rule.stop({"x": values}, values.size)
        estimate, lower, upper = quantile_interval(values[:n], 0.95)
        covered.append(lower <= truth <= upper)
        close.append(abs(estimate - truth) <= rule.precision * truth)
        used.append(n)
    # 0.95 less three binomial standard errors at 400 runs is 0.917.
    assert np.mean(covered) >= 0.92
    assert np.mean(close) >= 0.92
    assert max(used) < rule.max_iters and len(set(used)) > 1


def test_checkpoints_are_multiples_of_the_step_and_the_limit():
    rule = StoppingRule(max_iters=350)
    assert rule.checkpoints() == [100, 200, 300, 350]
    assert rule.checkpoints(200) == [300, 350]
    assert rule.stop({"max_stat": np.ones(350)}, 350) == STEP
    assert rule.stop({"max_stat": np.exp(np.arange(350.0) / 10)}, 350) == 350
    assert rule.stop({"max_stat": np.exp(np.arange(350.0) / 10)}, 349) is None


@pytest.mark.parametrize("chunk_iters", [50, 100])
def test_stop_and_null_depend_on_the_seed_alone(client, toy_plan, chunk_iters):
    """Block sizes 50 and 100 and one or two workers: one stopping point, one null."""
    from distributed import Client, LocalCluster

    two, _ = run_null(toy_plan, RULE, seed=3, chunk_iters=chunk_iters)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster):
            one, _ = run_null(toy_plan, RULE, seed=3, chunk_iters=100)
    assert one.identical(two)
    n = two.sizes["iteration"]
    assert STEP <= n < RULE.max_iters and n % STEP == 0
    fixed, _ = run_null(toy_plan, RULE.max_iters, seed=3, chunk_iters=chunk_iters)
    columns = {name: fixed[name].values for name in NULL_NAMES}
    assert RULE.stop(columns, RULE.max_iters) == n
    assert two.attrs["adaptive"]["converged"]
    assert max(two.attrs["adaptive"]["achieved"].values()) <= RULE.precision
    for name in NULL_NAMES:
        np.testing.assert_array_equal(two[name].values, fixed[name].values[:n])


def test_blocks_past_the_stop_are_not_started(client, toy_plan, monkeypatch):
    """Blocks go out in order, one per worker thread and one more: once the run stops, at
    most those in flight are written beyond it, not every block up to max_iters."""
    written = []
    original = NullStore.write

    def count(self, start, *args):
        written.append(start)
        original(self, start, *args)

    monkeypatch.setattr(NullStore, "write", count)
    nulls, _ = run_null(toy_plan, RULE, seed=3, chunk_iters=50)
    n = nulls.sizes["iteration"]
    assert n <= RULE.max_iters // 2  # the toy null stops early: a fair test
    in_flight = sum(client.nthreads().values()) + 1
    assert len(written) <= n // 50 + in_flight


def test_interrupted_adaptive_run_stops_where_an_uninterrupted_one_does(
        client, toy_plan, tmp_path, monkeypatch, crash_after_writes):
    uninterrupted, _ = run_null(toy_plan, RULE, seed=8, chunk_iters=50)
    store = tmp_path / "run.zarr"
    crash_after_writes(2)
    with pytest.raises(KeyboardInterrupt):
        run_null(toy_plan, RULE, seed=8, chunk_iters=50, store=store)
    monkeypatch.undo()
    resumed, _ = run_null(toy_plan, RULE, seed=8, store=store)
    assert resumed.identical(uninterrupted)
    # A finished adaptive null answers again from the store, without new blocks.
    monkeypatch.setattr(NullStore, "write", lambda *args: pytest.fail("recomputed a block"))
    again, _ = run_null(toy_plan, RULE, seed=8, store=store)
    assert again.identical(uninterrupted)


def test_a_longer_fixed_run_in_the_store_gives_the_same_stop(client, toy_plan, tmp_path):
    store = tmp_path / "run.zarr"
    run_null(toy_plan, 700, seed=4, chunk_iters=100, store=store)
    from_store, _ = run_null(toy_plan, RULE, seed=4, store=store)
    fresh, _ = run_null(toy_plan, RULE, seed=4)
    assert from_store.identical(fresh)


def test_adaptive_run_never_mixes_another_seed(client, toy_plan, tmp_path):
    store = tmp_path / "run.zarr"
    run_null(toy_plan, RULE, seed=1, store=store)
    with pytest.raises(InputError, match="other inputs or parameters"):
        run_null(toy_plan, RULE, seed=2, store=store)


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": 0}, "precision must be a number in \\(0, 1\\)"),
    ({"precision": 1.5}, "precision must be a number in \\(0, 1\\)"),
    ({"precision": "tight"}, "precision must be a number in \\(0, 1\\)"),
    ({"max_iters": 0}, "max_iters must be a positive integer"),
    ({"max_iters": 50}, "max_iters must be at least one block \\(100 iterations\\)"),
    ({"chunk_iters": 250}, "blocks of a divisor of 100"),
])
def test_bad_adaptive_settings_are_named(client, knowledge_ale, kwargs, message):
    corrector = dmeta.FWECorrector(n_iters="auto", seed=1, **kwargs)
    with pytest.raises(InputError, match=message):
        corrector.transform(knowledge_ale)


def test_n_iters_is_a_count_or_auto():
    assert iteration_budget(300) == 300
    assert iteration_budget("auto", 0.1, 900) == StoppingRule(0.1, 900)
    for bad in ("many", 0, 2.5, True):
        with pytest.raises(InputError, match="n_iters must be a positive integer"):
            iteration_budget(bad)


def test_store_with_blocks_off_the_checkpoints_is_refused(client, toy_plan, tmp_path):
    store = tmp_path / "run.zarr"
    run_null(toy_plan, 300, seed=1, chunk_iters=75, store=store)
    with pytest.raises(InputError, match=f"{store}.*blocks of 75"):
        run_null(toy_plan, RULE, seed=1, store=store)


def test_fwe_reports_what_the_adaptive_run_did(client, knowledge_ale, tmp_path):
    corrected = dmeta.FWECorrector(n_iters="auto", precision=0.2, max_iters=800, seed=2,
                                   vfwe_only=True).transform(knowledge_ale)
    record = corrected.attrs["corrections"]["corr-FWE_method-montecarlo"]
    n = corrected.nulls.sizes["iteration"]
    assert record["n_iters"] == n and record["n_iters_requested"] == "auto"
    assert record["precision"] == 0.2 and record["max_iters"] == 800
    assert record["converged"] == (record["achieved_precision"] <= 0.2)
    assert f"the run stopped at {n}, the first multiple of 100" in corrected.description or (
        "reached its limit of 800" in corrected.description)
    corrected.to_zarr(tmp_path / "run.zarr")
    reopened = dmeta.open_result(tmp_path / "run.zarr")
    assert reopened.attrs["corrections"]["corr-FWE_method-montecarlo"] == record


def _significant(result, level):
    return result.get_map(f"logp_{level}_corr-FWE_method-montecarlo", "array") > -np.log10(0.05)


def test_pain_at_five_percent_stops_early_and_agrees_with_ten_thousand(client, pain_ale):
    """precision=0.05 on pain stops well short of 5,000 iterations (2,300 with this seed),
    and its cluster-level FWE maps match an independent 10,000-iteration run."""
    auto = dmeta.FWECorrector(n_iters="auto", precision=0.05, seed=1).transform(pain_ale)
    fixed = dmeta.FWECorrector(n_iters=10_000, seed=2).transform(pain_ale)
    assert auto.nulls.sizes["iteration"] <= 3000
    for level in ("desc-size_level-cluster", "desc-mass_level-cluster"):
        a, b = _significant(auto, level), _significant(fixed, level)
        assert b.any()
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.95
