"""Adaptive relabellings and voxelwise nulls: ALESubtraction(n_iters="auto"), its FWE nulls,
ALE(null_method="montecarlo", n_iters="auto"), and the command line's --n-iters auto."""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.approximate_null import hist_to_threshold
from dmeta.cli import main
from dmeta.datasets import example_path
from dmeta.errors import InputError
from dmeta.montecarlo import StoppingRule
from dmeta.montecarlo.adaptive import STEP, quantile_interval
from dmeta.montecarlo.store import NULL_NAMES

PRECISION, MAX_ITERS = 0.05, 800
#: The toy fits' voxel_thresh: adaptive fits then take at least 2 / 0.01 = 200 relabellings.
VOXEL_THRESH = 0.01
ALE_PRECISION = 0.05
FWE_THRESH = 0.05  # a quantile the toy grid's few hundred values per relabelling resolve


def _fit(space, groups, **params):
    params = {"n_iters": "auto", "precision": PRECISION, "max_iters": MAX_ITERS, "seed": 3,
              "mask": space.mask_img, "voxel_thresh": VOXEL_THRESH, **params}
    return dmeta.ALESubtraction(**params).fit(*groups)


@pytest.fixture(scope="module")
def auto_fit(client, toy_space, toy_groups):
    return _fit(toy_space, toy_groups)


def _same_result(a, b):
    assert a.nulls.identical(b.nulls)
    for name in a.maps.data_vars:
        np.testing.assert_array_equal(a.get_map(name, "array"), b.get_map(name, "array"))


@pytest.mark.parametrize("chunk_iters", [50, 100])
def test_adaptive_relabellings_depend_on_the_seed_alone(auto_fit, toy_space, toy_groups,
                                                        chunk_iters):
    """Blocks of 50 or 100 on two workers, blocks of 100 on one: one stop, one result."""
    from distributed import Client, LocalCluster

    _same_result(_fit(toy_space, toy_groups, chunk_iters=chunk_iters), auto_fit)
    if chunk_iters == 100:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
            with Client(cluster):
                _same_result(_fit(toy_space, toy_groups, chunk_iters=chunk_iters), auto_fit)


def test_adaptive_fit_stops_where_the_rule_says(auto_fit, toy_space, toy_groups):
    """The stop is the rule's on the fixed run's maxima; the maps are a fixed run's of that
    many relabellings; the record, the nulls and the methods text say so."""
    n = auto_fit.nulls.sizes["iteration"]
    fixed = _fit(toy_space, toy_groups, n_iters=MAX_ITERS)
    rule = StoppingRule(PRECISION, MAX_ITERS, ("max_stat",), min_iters=200)
    assert rule.stop({"max_stat": fixed.nulls["max_stat"].values}, MAX_ITERS) == n
    assert 200 <= n < MAX_ITERS and n % STEP == 0
    same_count = _fit(toy_space, toy_groups, n_iters=n)
    for name in auto_fit.maps.data_vars:
        np.testing.assert_array_equal(auto_fit.get_map(name, "array"),
                                      same_count.get_map(name, "array"))
    record = auto_fit.attrs["permutations"]
    assert record["n_iters"] == n and record["n_iters_requested"] == "auto"
    assert record["converged"] and record["achieved_precision"] <= PRECISION
    assert auto_fit.attrs["params"]["n_iters"] == "auto"
    assert auto_fit.nulls.attrs["adaptive"]["converged"]
    assert f"over {n} random reassignments" in auto_fit.description
    assert "set adaptively: the run stopped at" in auto_fit.description


def test_adaptive_fit_can_resolve_the_uncorrected_threshold(client, toy_space, toy_groups):
    """At voxel_thresh 0.001 the fit takes at least 2,000 relabellings, so that a voxel's
    p-value (at least 1 / n) can fall below 0.001, however early the maxima settle."""
    fit = _fit(toy_space, toy_groups, voxel_thresh=0.001, max_iters=3000)
    n = fit.nulls.sizes["iteration"]
    assert 2000 <= n <= 3000
    assert fit.get_map("p_desc-group1MinusGroup2", "array").min() >= 1 / n


def test_subtraction_fwe_auto(client, toy_space, toy_groups, monkeypatch):
    """Histogram pass adaptive on the maximum, cluster pass on every critical value; a fit
    with the same settings answers the corrector without new relabellings."""
    fit = _fit(toy_space, toy_groups, vfwe_only=False, voxel_thresh=FWE_THRESH)
    nulls = fit.nulls
    n, n_threshold = nulls.sizes["iteration"], nulls.attrs["threshold_iters"]
    fixed = _fit(toy_space, toy_groups, n_iters=MAX_ITERS, vfwe_only=False,
                 voxel_thresh=FWE_THRESH).nulls
    maxima = {name: fixed[name].values for name in NULL_NAMES}
    assert StoppingRule(PRECISION, MAX_ITERS, NULL_NAMES).stop(maxima, MAX_ITERS) == n
    assert StoppingRule(PRECISION, MAX_ITERS).stop(maxima, MAX_ITERS) == n_threshold <= n
    np.testing.assert_array_equal(nulls["max_stat"], fixed["max_stat"][:n])

    import dmeta.correct

    monkeypatch.setattr(dmeta.correct, "difference_nulls",
                        lambda *a, **k: pytest.fail("recomputed the fit's nulls"))
    corrected = dmeta.FWECorrector(n_iters="auto", precision=PRECISION, max_iters=MAX_ITERS,
                                   voxel_thresh=FWE_THRESH).transform(fit)
    monkeypatch.undo()
    assert corrected.nulls.identical(nulls)
    record = corrected.attrs["corrections"]["corr-FWE_method-montecarlo"]
    assert (record["n_iters"], record["threshold_n_iters"]) == (n, n_threshold)
    assert record["n_iters_requested"] == "auto" and record["max_iters"] == MAX_ITERS
    assert "cluster-forming threshold was read from the first" in corrected.description
    # Without the fit's nulls (another limit), the corrector computes the same stops.
    vfwe_fit = _fit(toy_space, toy_groups)
    again = dmeta.FWECorrector(n_iters="auto", precision=PRECISION, max_iters=MAX_ITERS,
                               voxel_thresh=FWE_THRESH, chunk_iters=50).transform(vfwe_fit)
    assert again.nulls.sizes["iteration"] == n
    assert again.nulls.attrs["threshold_iters"] == n_threshold


def test_resumed_fwe_nulls_stop_at_the_same_iteration(client, toy_space, toy_groups,
                                                      tmp_path):
    import zarr

    store = tmp_path / "run.zarr"
    params = {"vfwe_only": False, "voxel_thresh": FWE_THRESH, "chunk_iters": 50,
              "store": store}
    first = _fit(toy_space, toy_groups, **params)
    groups = zarr.open_group(str(store), mode="a")["montecarlo"]
    for name in groups.group_keys():  # lose a block of every pass, as a killed run would
        groups[name]["filled"][1] = 0
    resumed = _fit(toy_space, toy_groups, **params)
    assert resumed.nulls.identical(first.nulls)
    assert resumed.nulls.attrs["threshold_iters"] < MAX_ITERS  # a stop, not the limit


@pytest.mark.parametrize("params, message", [
    ({"precision": 1.5}, "precision must be a number in"),
    ({"chunk_iters": 30}, "divisor of 100"),
    ({"max_iters": 10}, "max_iters must be at least one block"),
    ({"n_iters": "many"}, "positive integer or 'auto'"),
])
def test_bad_adaptive_subtraction(toy_space, toy_groups, params, message):
    with pytest.raises(InputError, match=message):
        _fit(toy_space, toy_groups, **params)


def test_balanced_subtraction_refuses_auto(toy_space, toy_groups):
    with pytest.raises(InputError, match="does not support n_iters='auto'"):
        dmeta.BalancedALESubtraction(n_iters="auto", mask=toy_space.mask_img).fit(*toy_groups)


# -- ALE with an adaptive voxelwise Monte Carlo null --------------------------------------------


def _ale(space, cset, **params):
    params = {"null_method": "montecarlo", "n_iters": "auto", "precision": ALE_PRECISION,
              "max_iters": 1500, "seed": 5, "mask": space.mask_img, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dmeta.ALE(**params).fit(cset)


def test_ale_montecarlo_auto(client, toy_space, toy_groups, tmp_path):
    """Same stop for blocks of 50 and 100; the stop is the first multiple of 100 where the
    median batch quantile's interval is within the precision of the pooled one; the p map is
    that of a fixed run of as many iterations."""
    import zarr

    from dmeta.montecarlo import voxelwise_null

    result = _ale(toy_space, toy_groups[0])
    n = result.nulls.sizes["iteration"]
    _same_result(result, _ale(toy_space, toy_groups[0], chunk_iters=50))
    same_count = _ale(toy_space, toy_groups[0], n_iters=n)
    np.testing.assert_array_equal(result.get_map("p", "array"), same_count.get_map("p", "array"))

    # The rule written out on the per-block histograms of a fixed run of the limit.
    ale = result.estimator
    store = tmp_path / "null.zarr"
    voxelwise_null(ale, 1500, seed=5, chunk_iters=100, store=store)
    hist = zarr.open_group(str(store), mode="r")["montecarlo"]["voxelwise"]["hist"][:]

    def quantile(h):
        return hist_to_threshold(h, ale.bins_, 0.001)

    expected = None
    for k in range(1, 16):
        _, lower, upper = quantile_interval([quantile(h) for h in hist[:k]], 0.5)
        if k == 15 or (upper - lower) / 2 <= ALE_PRECISION * quantile(hist[:k].sum(0)):
            expected = 100 * k
            break
    assert n == expected and 600 <= n < 1500
    record = result.attrs["voxelwise_null"]
    assert record["n_iters"] == n and record["converged"]
    assert (f"Monte Carlo null of {n} random-foci datasets. The number of random-foci datasets "
            f"was set adaptively: the run stopped at {n}") in result.description


def test_ale_approximate_keeps_no_monte_carlo_params(toy_space, toy_groups):
    result = _ale(toy_space, toy_groups[0], null_method="approximate")
    assert not {"n_iters", "precision", "max_iters"} & set(result.attrs["params"])
    assert "voxelwise_null" not in result.attrs


# -- Command line ----------------------------------------------------------------------------


def test_cli_subtract_auto_prints_where_it_stopped(client, tmp_path, capsys):
    out = tmp_path / "sub.zarr"
    code = main(["subtract", str(example_path("semantic_knowledge")),
                 str(example_path("semantic_relatedness")), "--out", str(out),
                 "--n-iters", "auto", "--precision", "0.05", "--max-iters", "300",
                 "--seed", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith("Permutations:"))
    record = dmeta.open_result(out).attrs["permutations"]
    assert f"{record['n_iters']} permutations" in line
    assert f"relative precision {record['achieved_precision']:.3f}" in line
    assert f"({record['n_iters']} permutations)" in printed


@pytest.mark.parametrize("command", ["ale", "subtract", "contrast", "scale"])
@pytest.mark.parametrize("argv, message", [
    (["--n-iters", "auto", "--precision", "1.5"], "--precision must be a number in (0, 1)"),
    (["--n-iters", "auto", "--max-iters", "10"], "--max-iters must be at least"),
    (["--precision", "0.1"], "add --n-iters auto"),
])
def test_cli_bad_adaptive_options_exit_2(tmp_path, capsys, command, argv, message):
    """Refused before any input is read (the inputs do not exist)."""
    inputs = {"ale": ["x.txt"], "subtract": ["x.txt", "y.txt"], "contrast": ["x.txt", "y.txt"],
              "scale": ["x.txt", "--base-rate", "y.txt"]}[command]
    assert main([command, *inputs, "--out", str(tmp_path / "o.zarr"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("dmeta: error:") and message in err and "\n" not in err


def test_cli_n_iters_must_be_a_count_or_auto(tmp_path, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(["ale", "x.txt", "--out", str(tmp_path / "o.zarr"), "--n-iters", "many"])
    assert excinfo.value.code == 2
    assert "expected a number of iterations or 'auto', got 'many'" in capsys.readouterr().err


def test_cli_scale_auto_is_refused(tmp_path, capsys):
    assert main(["scale", "x.txt", "--base-rate", "y.txt", "--out", str(tmp_path / "o.zarr"),
                 "--n-iters", "auto"]) == 2
    assert "not supported" in capsys.readouterr().err


def test_report_shows_where_adaptive_runs_stopped(auto_fit, tmp_path):
    n = auto_fit.attrs["permutations"]["n_iters"]
    html = dmeta.report(auto_fit, tmp_path / "report").read_text()
    assert "<h3>Monte Carlo precision</h3>" in html
    assert f"<dt>Permutations</dt><dd>stopped at {n} iterations (limit {MAX_ITERS})" in html
