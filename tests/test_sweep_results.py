"""Stability sweeps people read: adaptive nulls (same numbers on any workers, chunking or
resumption; iterations recorded per replicate), the stability-vs-target_n and per-cluster
tables, the sweep store that ``dmeta report`` renders, the approximate-refit warning, and
bad input refused as InputError (exit 2 on the command line).
"""

import warnings

import numpy as np
import pytest

import dmeta
from dmeta.datasets import example_path
from dmeta.diagnostics import sweep_summary
from dmeta.diagnostics.sweep import Config, Thresholds, _fingerprint
from dmeta.montecarlo.store import NullStore

#: One subsample configuration with a null per replicate, stopping at a loose precision so
#: that replicates stop at different checkpoints well before max_iters.
ADAPTIVE = dict(policies=["subsample"], target_n=[17], n_resamples=3, random_state=11,
                n_iters="auto", precision=0.25, max_iters=400, refit="full")


@pytest.fixture(scope="module")
def pain():
    return dmeta.datasets.load_example("pain")


@pytest.fixture(scope="module")
def adaptive_reference(client, pain):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dmeta.stability_sweep(pain, chunk_iters=100, **ADAPTIVE)


def test_adaptive_sweep_records_each_replicates_iterations(adaptive_reference):
    ds = adaptive_reference
    iterations = ds["replicate_iterations"].sel(policy="subsample_n-17_refit-full").values
    assert np.isin(iterations, [100, 200, 300, 400]).all(), iterations
    precision = ds["replicate_precision"].values[0]
    assert ((precision <= 0.25) | (iterations == 400)).all()
    summary = sweep_summary.summary_table(ds)
    row = summary.loc["subsample_n-17_refit-full"]
    assert row["Iterations (median)"] == np.median(iterations)
    assert row["Iterations (min)"] == iterations.min()
    assert row["Precision reached"] == precision.max()
    assert ds.attrs["precision"] == 0.25 and ds.attrs["max_iters"] == 400


def test_adaptive_sweep_same_on_one_worker_and_other_chunks(adaptive_reference, pain):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Client(cluster), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other = dmeta.stability_sweep(pain, chunk_iters=50, **ADAPTIVE)
    assert other.identical(adaptive_reference)


def test_adaptive_stop_is_the_same_when_resumed(adaptive_reference, pain, tmp_path,
                                                monkeypatch):
    store = tmp_path / "sweep.zarr"
    write, written = NullStore.write, []

    def interrupted(self, *args):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(1)
        write(self, *args)

    monkeypatch.setattr(NullStore, "write", interrupted)
    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("ignore")
        dmeta.stability_sweep(pain, store=store, chunk_iters=50, **ADAPTIVE)
    monkeypatch.setattr(NullStore, "write", write)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = dmeta.stability_sweep(pain, store=store, chunk_iters=50, **ADAPTIVE)
    assert resumed.identical(adaptive_reference)
    with warnings.catch_warnings(), pytest.raises(dmeta.InputError, match="other inputs"):
        warnings.simplefilter("ignore")
        dmeta.stability_sweep(pain, store=store, **{**ADAPTIVE, "max_iters": 500})


def test_fingerprint_holds_precision_and_max_iters_only_when_adaptive(pain_ale):
    ma = pain_ale.estimator.ma_
    config = Config.build("leave_1_out", 21)
    auto = Thresholds(n_iters="auto")
    assert _fingerprint(ma, config, auto) != _fingerprint(
        ma, config, Thresholds(n_iters="auto", precision=0.1))
    assert _fingerprint(ma, config, auto) != _fingerprint(
        ma, config, Thresholds(n_iters="auto", max_iters=1000))
    assert _fingerprint(ma, config, Thresholds(n_iters=100)) == _fingerprint(
        ma, config, Thresholds(n_iters=100, precision=0.1, max_iters=1000))


def test_approximate_refit_warns_below_80_percent_of_the_analyses():
    with pytest.warns(UserWarning, match=r"refit='approximate'.*128 voxels.*793"):
        Config.build("subsample", 21, target_n=16, n_resamples=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Config.build("subsample", 21, target_n=17, n_resamples=2, random_state=0)
        Config.build("subsample", 21, target_n=10, n_resamples=2, random_state=0,
                     refit="full")
        Config.build("leave_1_out", 21)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_iters": "auto", "precision": 0.0}, "precision must be a number in"),
    ({"n_iters": "auto", "precision": 1.5}, "precision must be a number in"),
    ({"n_iters": "auto", "max_iters": 50}, "max_iters must be at least one block"),
    ({"n_iters": "auto", "max_iters": 0}, "max_iters must be a positive integer"),
    ({"n_iters": "often"}, "n_iters must be a positive integer"),
])
def test_bad_adaptive_parameters_are_input_errors(pain, kwargs, message):
    with pytest.raises(dmeta.InputError, match=message):
        dmeta.stability_sweep(pain, **kwargs)
    with pytest.raises(dmeta.InputError, match=message):
        dmeta.ResampledStability(**kwargs).transform(object())


def test_cluster_overlaps_and_target_n_table(toy_space):
    support = np.zeros(toy_space.n_voxels, dtype=bool)
    support[:3] = True
    support[-2:] = True
    stat = np.linspace(0, 1, toy_space.n_voxels)
    labels, clusters = sweep_summary.full_data_clusters(toy_space, support, stat)
    assert sorted(clusters["size (voxels)"]) == sorted(np.bincount(labels)[1:].tolist())
    assert list(clusters["size (voxels)"]) == sorted(clusters["size (voxels)"], reverse=True)
    n = len(clusters)
    replicates = [support, np.zeros_like(support), labels == 1]
    sizes, survival = sweep_summary.replicate_overlaps(labels, replicates, n)
    assert sizes.tolist() == [5, 0, int((labels == 1).sum())]
    assert survival[0] == pytest.approx(2 / 3) and (survival[1:] == 1 / 3).all()


def test_cli_sweep_store_reports(client, tmp_path, capsys):
    from dmeta.cli import main

    out, html = tmp_path / "sweep.zarr", tmp_path / "report"
    argv = ["stability", str(example_path("pain")), "--policy", "subsample", "leave_1_out",
            "--target-n", "15", "18", "--n-resamples", "3", "--n-iters", "auto",
            "--precision", "0.3", "--max-iters", "300", "--chunk-iters", "100", "--seed", "3",
            "--out", str(out)]
    assert main(argv) == 0
    printed, errors = capsys.readouterr()
    assert all(label in printed for label in ("subsample_n-15", "subsample_n-18", "leave_1_out"))
    assert "Iterations (median)" in printed and "precision reached" in printed
    assert "warning: subsample_n-15: refit='approximate'" in errors  # 15 < 0.8 * 21
    assert "subsample_n-18: refit" not in errors
    assert main(["report", str(out), "--html", str(html)]) == 0
    page = (html / "index.html").read_text()
    for text in ("Resampling sweep", "Stability against target_n", "Per-cluster stability",
                 "n_iters=&#x27;auto&#x27;", "subsample_n-18_diag-ResampledStability"):
        assert text in page, text
    assert (html / "figures" / "sweep_target-n.png").is_file()
    result = dmeta.open_result(out)
    clusters = result.tables[sweep_summary.CLUSTERS]
    assert {"subsample_n-15 survival", "leave_1_out mean stability"} <= set(clusters.columns)
    capsys.readouterr()
    assert main(argv[:-2] + ["--max-iters", "400", "--out", str(out)]) == 2
    assert main(argv[:-2] + ["--precision", "1.5", "--out", str(out)]) == 2
    assert main([*argv[:-4], "--max-iters", "50", "--out", str(out)]) == 2
    with pytest.raises(SystemExit) as exc:
        main([*argv[:-2], "--n-iters", "often", "--out", str(out)])
    assert exc.value.code == 2


def test_resampled_stability_auto_records_iterations(client, pain_ale):
    out = dmeta.ResampledStability(target_image="z", resampling_policy="leave_k_out", k=2,
                                   n_resamples=3, random_state=4, n_iters="auto",
                                   precision=0.3, max_iters=300).transform(pain_ale)
    summary = out.tables["z_diag-ResampledStability_tab-summary"]
    assert summary["n_iters_max"][0] in (100, 200, 300)
    assert summary["n_iters_min"][0] == summary["n_iters_max"][0]  # one shared null
    record = out.attrs["diagnostics"]["z_diag-ResampledStability"]
    assert record["n_iters"] == "auto" and record["precision"] == 0.3
    assert record["Precision reached"] <= 0.3 or record["Iterations (max)"] == 300
