"""A worker lost mid-run costs only its tasks; a killed client resumes from its store."""

import os
import signal
import subprocess
import sys
import time

import pytest
from distributed import Client, LocalCluster

import dmeta
from dmeta.datasets import example_path
from dmeta.montecarlo.store import NullStore


def test_worker_killed_mid_run_gives_identical_nulls(client, knowledge_ale, monkeypatch):
    corrector = dmeta.FWECorrector(n_iters=48, seed=21, chunk_iters=4)
    undisturbed = corrector.transform(knowledge_ale).nulls
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as victim_client:
        original = NullStore.write
        killed = []

        def kill_a_worker_after_first_block(self, *args):
            original(self, *args)
            if not killed:
                pids = victim_client.run(os.getpid)
                pid = next(iter(pids.values()))
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        monkeypatch.setattr(NullStore, "write", kill_a_worker_after_first_block)
        with victim_client.as_current():
            disturbed = corrector.transform(knowledge_ale).nulls
    assert killed
    assert disturbed.identical(undisturbed)


@pytest.mark.parametrize("budget", [
    ["--n-iters", "400", "--chunk-iters", "20"],
    ["--n-iters", "auto", "--precision", "0.1", "--max-iters", "3000", "--chunk-iters", "20"],
], ids=["fixed", "adaptive"])
def test_client_killed_with_sigkill_resumes_from_its_store(client, tmp_path, budget):
    """kill -9 of a running `dmeta ale`, then the same command: same as one clean run (an
    adaptive run stops at the same iteration)."""
    out = tmp_path / "run.zarr"
    command = [sys.executable, "-m", "dmeta.cli", "ale", str(example_path("semantic_knowledge")),
               "--out", str(out), *budget, "--seed", "8", "--workers", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    filled = out / "montecarlo" / "fwe" / "filled" / "c"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if filled.exists() and len(list(filled.iterdir())) >= 3:
            break
        time.sleep(0.2)
    if proc.poll() is not None:
        pytest.fail("the run ended before it could be killed; raise --n-iters")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    resumed = dmeta.open_result(out)
    clean = tmp_path / "clean.zarr"
    subprocess.run([*command[:6], str(clean), *command[7:]], check=True, capture_output=True,
                   timeout=600)
    assert resumed.nulls.identical(dmeta.open_result(clean).nulls)
    if "auto" in budget:
        n = resumed.nulls.sizes["iteration"]
        assert n < 3000 and resumed.attrs["corrections"][
            "corr-FWE_method-montecarlo"]["n_iters"] == n
