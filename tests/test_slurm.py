"""dmeta.compute on a real SLURM: Dask workers run as SLURM jobs on this machine.

SLURM comes from scripts/start-slurm.sh (single node, no slurmdbd).  With
accounting_storage/none there is no sacct, so the tests see jobs through
``squeue`` while they run and through the jobcomp/filetxt log
(``JobCompLoc``, one ``JobId=... JobState=...`` line per finished job) afterwards.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from dmeta.compute import ClusterError, active_client, connect, session
from slurm_fixtures import (  # noqa: F401  (fixtures are used by name)
    SLURM_CLUSTER_JOBS,
    slurm_available,
    slurm_cluster,
    slurm_job_ids,
    squeue_states,
    worker_options,
)


def _slurm_config() -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                         timeout=10)
    conf = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()
    return conf


def _wait_gone(job_ids, timeout=20.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    states = squeue_states(job_ids)
    while states and time.monotonic() < deadline:
        time.sleep(0.5)
        states = {k: v for k, v in squeue_states(job_ids).items() if v != "COMPLETING"}
    return states


def _slurm_job_id(_):
    import os

    return os.environ.get("SLURM_JOB_ID")


def test_computation_runs_on_slurm_jobs(slurm_cluster):
    client = slurm_cluster
    workers = client.scheduler_info(n_workers=-1)["workers"]
    assert len(workers) == SLURM_CLUSTER_JOBS
    job_ids = slurm_job_ids(client)
    assert len(job_ids) == SLURM_CLUSTER_JOBS, "every worker runs inside its own SLURM job"
    # squeue sees the jobs running while the computation happens.
    assert set(squeue_states(job_ids).values()) == {"RUNNING"}

    x = da.arange(100_000, chunks=10_000, dtype="int64")
    with client.as_current():
        total = (x * x).sum().compute()
        where = client.run(lambda: __import__("os").environ.get("SLURM_JOB_PARTITION"))
    assert int(total) == int(np.sum(np.arange(100_000, dtype="int64") ** 2))
    assert set(where.values()) == {"debug"}
    # Tasks run inside the SLURM jobs.
    ran_in = client.gather(client.map(_slurm_job_id, range(20), pure=False))
    assert set(ran_in) <= job_ids
    assert client.dashboard_link.startswith("http")


def test_session_cancels_jobs_and_jobcomp_logs_them(slurm_available, tmp_path):
    with session("slurm", workers=1, **worker_options(tmp_path)) as client:
        (job_id,) = slurm_job_ids(client)
        assert squeue_states([job_id]) == {job_id: "RUNNING"}
        assert client.submit(sum, [1, 2, 3]).result() == 6
    assert active_client() is not client
    # session() closed the cluster: the worker job was cancelled.
    assert _wait_gone([job_id]) == {}
    conf = _slurm_config()
    if conf.get("JobCompType") == "jobcomp/filetxt":
        log = Path(conf["JobCompLoc"])
        deadline = time.monotonic() + 15
        lines = []
        while time.monotonic() < deadline:
            lines = [line for line in log.read_text().splitlines() if f"JobId={job_id} " in line]
            if lines:
                break
            time.sleep(0.5)
        assert lines, f"job {job_id} not in {log}"
        assert re.search(r"JobState=(CANCELLED|COMPLETED)", lines[-1]), lines[-1]


def test_bad_partition_fails_fast(slurm_available, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="(?i)invalid partition"):
        connect("slurm", workers=1, **worker_options(tmp_path, queue="no-such-partition"))
    assert time.monotonic() - t0 < 30


def test_worker_job_that_crashes_fails_fast(slurm_available, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="ended before a Dask worker connected") as err:
        connect("slurm", workers=1, **worker_options(tmp_path, python="/nonexistent/python"))
    assert time.monotonic() - t0 < 45
    assert "/nonexistent/python" in str(err.value)  # the job's output is quoted


def test_pending_job_times_out_and_is_cancelled(slurm_available, tmp_path):
    t0 = time.monotonic()
    opts = worker_options(tmp_path, timeout=4, job_extra_directives=["--begin=now+3600"])
    with pytest.raises(ClusterError, match="no SLURM worker joined within 4 s") as err:
        connect("slurm", workers=1, **opts)
    assert time.monotonic() - t0 < 30
    job_ids = re.findall(r"job (\d+): PENDING", str(err.value))
    assert job_ids, str(err.value)
    assert _wait_gone(job_ids) == {}, "the pending job must be cancelled"


def test_fwe_on_slurm_equals_a_local_run(slurm_cluster, client, knowledge_ale):
    """The Monte Carlo FWE null computed by SLURM worker jobs is the local one, bit for bit."""
    import dmeta

    corrector = dmeta.FWECorrector(n_iters=24, seed=13, chunk_iters=4)
    with client.as_current():
        local = corrector.transform(knowledge_ale)
    with slurm_cluster.as_current():
        before = slurm_job_ids(slurm_cluster)
        on_slurm = corrector.transform(knowledge_ale)
        job_ids = slurm_cluster.run(lambda: __import__("os").environ.get("SLURM_JOB_ID"))
        ran_on = set(job_ids.values())
    assert ran_on and ran_on <= before
    assert on_slurm.nulls.identical(local.nulls)
    for name in local.maps:
        np.testing.assert_array_equal(on_slurm.get_map(name, "array"),
                                      local.get_map(name, "array"))
