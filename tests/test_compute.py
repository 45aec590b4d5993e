"""dmeta.compute: local clusters, scheduler addresses, configuration files, PBS scripts.

Real SLURM jobs are exercised in test_slurm.py.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import psutil
import pytest
from distributed.core import Status

from dmeta.compute import (
    ClusterError,
    _import_jobqueue,
    active_client,
    close,
    connect,
    load_config,
    session,
)
from dmeta.errors import InputError

CONFIGS = Path(__file__).resolve().parents[1] / "cluster_configs"
LOCAL = dict(dashboard_address=":0", quiet=True)


def _worker_pids(client) -> list[int]:
    return list(client.run(lambda: __import__("os").getpid()).values())


def _all_gone(pids, timeout=15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_session_computes_and_releases_workers():
    with session("local", workers=2, **LOCAL) as client:
        assert active_client() is client
        assert len(client.nthreads()) == 2
        assert set(client.nthreads().values()) == {1}  # single-threaded workers
        assert client.dashboard_link.startswith("http")
        pids = _worker_pids(client)
        cluster = client.cluster
        assert int(da.ones(1000, chunks=100).sum().compute()) == 1000
        # cluster=None (the default, as estimators call it) reuses the active
        # client and leaves it open.
        with session() as inner:
            assert inner is client
        with session(None) as inner:
            assert inner is client
        assert client.status == "running"
        assert client.submit(sum, [1, 2]).result() == 3
    assert client.status == "closed"
    assert cluster.status == Status.closed
    assert _all_gone(pids), "worker processes outlived the session"
    assert active_client() is not client


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_local_session_releases_workers_on_exception(exc):
    with pytest.raises(exc):
        with session("local", workers=1, **LOCAL) as client:
            pids = _worker_pids(client)
            cluster = client.cluster
            raise exc("boom")
    assert cluster.status == Status.closed
    assert _all_gone(pids)
    assert active_client() is not client


def test_session_none_without_client_starts_local_one(monkeypatch):
    import dmeta.compute.connection

    # Other modules' session-wide clients may be active; this test is about having none.
    monkeypatch.setattr(dmeta.compute.connection, "active_client", lambda: None)
    with session(None, workers=1, **LOCAL) as client:
        assert client.cluster is not None and len(client.nthreads()) == 1
    assert client.status == "closed"


def test_unreachable_scheduler_fails_within_bounded_time():
    address = f"tcp://127.0.0.1:{_free_port()}"
    outcome = {}

    def attempt():
        t0 = time.monotonic()
        try:
            connect(address, quiet=True)  # default connect timeout (10 s)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome["exc"] = exc
        outcome["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "connect() to an unreachable scheduler hung for 30 s"
    assert isinstance(outcome.get("exc"), ClusterError), outcome
    assert f"cannot reach scheduler at {address}" in str(outcome["exc"])
    assert outcome["seconds"] < 30


def test_unknown_cluster_is_input_error():
    with pytest.raises(InputError, match="unknown cluster 'sge'"):
        connect("sge")


@pytest.mark.skipif(shutil.which("qsub") is not None, reason="a real PBS is installed")
def test_pbs_without_qsub_fails_fast(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="'qsub' not found"):
        connect("pbs", workers=1, cores=1, memory="1GB", quiet=True,
                scheduler_options={"dashboard_address": ":0"})
    assert time.monotonic() - t0 < 30


def test_missing_batch_resources_is_cluster_error(monkeypatch):
    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ClusterError, match="cluster_configs/slurm.yaml"):
            connect("slurm", quiet=True)


def test_load_config_merges_and_restores():
    before = dask.config.get("jobqueue.pbs.queue", None)
    with load_config(CONFIGS / "pbs.yaml"):
        assert dask.config.get("jobqueue.pbs.queue") == "workq"
        assert dask.config.get("jobqueue.pbs.cores") == 4
        # keys the file does not set keep dask-jobqueue's defaults
        assert dask.config.get("jobqueue.pbs.worker-command") == "distributed.cli.dask_worker"
        assert dask.config.get("jobqueue.slurm.walltime") is not None
        assert dask.config.get("dmeta.cluster.wait-timeout") == 600
    assert dask.config.get("jobqueue.pbs.queue", None) == before


def test_pbs_job_script_from_shipped_config(tmp_path, monkeypatch):
    PBSCluster = _import_jobqueue().PBSCluster

    monkeypatch.chdir(tmp_path)  # log-directory is relative
    with load_config(CONFIGS / "pbs.yaml"):
        with PBSCluster(scheduler_options={"dashboard_address": ":0"}) as cluster:
            script = cluster.job_script()
    lines = script.splitlines()
    assert "#PBS -N dmeta-worker" in lines
    assert "#PBS -q workq" in lines
    assert "#PBS -l walltime=02:00:00" in lines
    assert "#PBS -l select=1:ncpus=4:mem=16GB" in lines
    assert "#PBS -e dask-logs/" in lines
    assert "cd $PBS_O_WORKDIR" in lines
    assert any(line.startswith("export OMP_NUM_THREADS=1") for line in lines)
    # prologue lines come before the worker command
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert lines.index("cd $PBS_O_WORKDIR") < lines.index(worker)
    assert worker.startswith(sys.executable)
    assert "--nworkers 4" in worker and "--nthreads 1" in worker
    assert "--local-directory ${TMPDIR:-/tmp}" in worker
    assert "--memory-limit 4.00GiB" in worker
    assert "--death-timeout 120" in worker


def test_slurm_job_script_from_shipped_config(tmp_path, monkeypatch):
    SLURMCluster = _import_jobqueue().SLURMCluster

    monkeypatch.chdir(tmp_path)
    with load_config(CONFIGS / "slurm.yaml"):
        with SLURMCluster(scheduler_options={"dashboard_address": ":0"}) as cluster:
            script = cluster.job_script()
    lines = script.splitlines()
    assert "#SBATCH -J dmeta-worker" in lines
    assert "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --mem=16G" in lines
    assert "#SBATCH -t 02:00:00" in lines
    assert not any(line.startswith("#SBATCH -p") for line in lines)  # queue: null
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    assert "--nworkers 4" in worker and "--nthreads 1" in worker


def test_close_is_safe_twice():
    client = connect("local", workers=1, **LOCAL)
    close(client)
    close(client)
    assert client.status == "closed"


def test_ctrl_c_still_raises_keyboardinterrupt_after_jobqueue_import():
    # dask_jobqueue's import replaces SIGINT's handler by sys.exit() (exit status
    # 0, no KeyboardInterrupt); dmeta.compute undoes that.
    code = (
        "import os, signal, time\n"
        # As an interactive Python starts: a shell's background job inherits SIGINT ignored.
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from dmeta.compute import _import_jobqueue\n"
        "_import_jobqueue()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "KeyboardInterrupt", proc.stderr
    handler = signal.getsignal(signal.SIGINT)
    assert getattr(handler, "__module__", None) != "dask_jobqueue.runner"
