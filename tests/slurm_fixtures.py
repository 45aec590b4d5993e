"""Fixtures for tests that run Dask workers as real SLURM jobs on this machine.

Import them into a test module (pytest finds fixtures imported by name)::

    from slurm_fixtures import slurm_available, slurm_cluster  # noqa: F401

    def test_fwe_on_slurm(slurm_cluster):
        with slurm_cluster.as_current():      # make it the client dask uses
            ...                                # compute as usual; workers are SLURM jobs

``slurm_available`` makes sure a SLURM controller answers: as root it runs
``scripts/start-slurm.sh`` (installs Debian's slurm-wlm + munge on first use,
starts a single-node cluster; a no-op taking ~50 ms when it is already up).
Tests are skipped only when SLURM does not answer and we are not root, i.e. the
script cannot run; any other failure (script error) fails the test.

``slurm_cluster`` is one session-wide :func:`dmeta.compute.connect` ``("slurm")``
client with ``SLURM_CLUSTER_JOBS`` one-core worker jobs, cancelled at the end of
the session.  Other tests can still submit their own jobs: the test partition lets
up to 4 jobs share a core.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
START_SCRIPT = REPO / "scripts" / "start-slurm.sh"
SLURM_CLUSTER_JOBS = 2


def sinfo_state() -> str | None:
    """The first node's state as sinfo prints it, or None if SLURM does not answer."""
    if shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    if out.returncode != 0 or not lines:
        return None
    return lines[0]


def ensure_slurm() -> None:
    """Make sure a usable SLURM node answers; start the local one if needed.

    As root the start script always runs: it returns in well under a second when
    its daemons are alive, restarts any that died (sinfo alone can report a node
    idle for a while after its slurmd is gone) and leaves a SLURM it did not set
    up alone.
    """
    if os.geteuid() != 0:
        if sinfo_state() in {"idle", "mixed", "allocated", "completing"}:
            return
        pytest.skip("SLURM is not running and starting it needs root (scripts/start-slurm.sh)")
    proc = subprocess.run(
        ["bash", str(START_SCRIPT)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/start-slurm.sh failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}",
            pytrace=False,
        )


def worker_options(tmp_dir: Path, **overrides) -> dict:
    """dask-jobqueue options for small test jobs that run this repo's code.

    Workers use this interpreter (the venv) and see the repository and tests/
    on their PYTHONPATH (functions defined in test modules are pickled by
    reference), listen on the loopback interface, and write their job output to
    ``tmp_dir``.
    """
    options = dict(
        cores=1,
        processes=1,
        memory="2GiB",
        walltime="00:30:00",
        interface="lo",
        python=sys.executable,
        local_directory=str(tmp_dir),
        log_directory=str(tmp_dir / "logs"),
        death_timeout=30,
        job_script_prologue=[
            f"cd {REPO}",
            # the repository, and tests/ so functions defined in test modules unpickle
            f"export PYTHONPATH={REPO}:{REPO / 'tests'}${{PYTHONPATH:+:$PYTHONPATH}}",
            "export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1",
        ],
        scheduler_options={"dashboard_address": ":0"},
        quiet=True,
        timeout=120,
    )
    options.update(overrides)
    return options


def squeue_states(job_ids) -> dict[str, str]:
    """{job id: state} for the given jobs that squeue still lists (pending/running)."""
    ids = [str(i) for i in job_ids]
    out = subprocess.run(
        ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"],
        capture_output=True, text=True, timeout=10,
    )
    return dict(line.split() for line in out.stdout.splitlines() if line.strip())


def slurm_job_ids(client) -> set[str]:
    """SLURM job ids of the client's workers, read from each worker's environment."""
    ids = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
    return {str(v) for v in ids.values() if v}


@pytest.fixture(scope="session")
def slurm_available() -> None:
    """SLURM answers on this machine (started by scripts/start-slurm.sh if needed)."""
    ensure_slurm()


@pytest.fixture(scope="session")
def slurm_cluster(slurm_available, tmp_path_factory):
    """A Dask client whose workers are ``SLURM_CLUSTER_JOBS`` real SLURM jobs.

    Session-scoped: started once, jobs cancelled at the end of the test session.
    The client is made with ``set_as_default`` semantics by ``connect``; tests
    that also start local clients should use ``with slurm_cluster.as_current():``.
    """
    from dmeta.compute import close, connect

    tmp = tmp_path_factory.mktemp("slurm-cluster")
    client = connect("slurm", jobs=SLURM_CLUSTER_JOBS, **worker_options(tmp))
    try:
        client.wait_for_workers(SLURM_CLUSTER_JOBS, timeout=120)
        yield client
    finally:
        close(client)
