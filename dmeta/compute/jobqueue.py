"""Dask workers as SLURM or PBS batch jobs, through dask-jobqueue.

Jobs are configured by ``jobqueue.slurm.*`` / ``jobqueue.pbs.*`` in dask's
configuration (see :mod:`dmeta.compute`).  This module submits them, waits for
the first worker, and turns what went wrong (a refused submission, jobs that
died, a busy queue) into a :class:`ClusterError` with the tail of the job's log.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import dask.config
import distributed

from .dashboard import announce
from .errors import ClusterError

logger = logging.getLogger(__name__)

BATCH_SYSTEMS = ("slurm", "pbs")


def _submit_error_text(exc: Exception, command: str) -> str:
    """One line from dask-jobqueue's multi-line "Command exited..." error."""
    text = str(exc)
    if "stderr:" in text:
        code = ""
        for line in text.splitlines():
            if line.startswith("Exit code:"):
                code = line.split(":", 1)[1].strip()
        err = " / ".join(
            line.strip() for line in text.split("stderr:", 1)[1].splitlines() if line.strip()
        )
        return f"{command} exited with status {code or '?'}: {err or '(no message)'}"
    return " ".join(text.split())


def _recording_job_class(base: type, errors: list[str]) -> type:
    """Subclass a dask-jobqueue Job so that a failed submission is recorded.

    dask-jobqueue submits jobs in a background callback where an ``sbatch`` /
    ``qsub`` failure is only logged; recording it lets :func:`connect` stop
    waiting at once and report the scheduler's own message.
    """

    class RecordingJob(base):
        async def start(self):
            try:
                await super().start()
            except Exception as exc:  # sbatch/qsub failed or is not installed
                if isinstance(exc, FileNotFoundError):
                    msg = (
                        f"'{self.submit_command}' not found: is this a "
                        f"{self.config_name.upper()} login node?"
                    )
                else:
                    msg = _submit_error_text(exc, self.submit_command)
                errors.append(msg)
                logger.info("job submission failed: %s", msg)
                # Mark it started (without a job id) so dask does not log a
                # traceback from its callback; connect() raises ClusterError.
                self.status = distributed.core.Status.running

    RecordingJob.__name__ = base.__name__
    RecordingJob.__qualname__ = base.__qualname__
    return RecordingJob


def _job_ids(cluster) -> list[str]:
    return [str(j.job_id) for j in list(cluster.workers.values()) if getattr(j, "job_id", None)]


def _queued_slurm_jobs(job_ids: list[str]) -> dict[str, str] | None:
    """Map job id -> "STATE reason" for the jobs squeue still lists, None if unknown."""
    if not job_ids or shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(job_ids), "-o", "%i %T %r"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        return None
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.split(None, 1)
        if parts:
            jobs[parts[0]] = parts[1] if len(parts) > 1 else ""
    return jobs


def _job_log_tail(cluster, job_id: str, lines: int = 15) -> str:
    """Last lines of a worker job's output file, if we can find it."""
    log_dir = getattr(cluster, "_job_kwargs", {}).get("log_directory")
    candidates = []
    if log_dir:
        candidates += sorted(glob.glob(os.path.join(log_dir, f"*{job_id}*")))
    candidates += [f"slurm-{job_id}.out"]
    for path in candidates:
        try:
            with open(path, errors="replace") as f:
                text = f.read().strip().splitlines()[-lines:]
        except OSError:
            continue
        if text:
            return f"\n--- {path} ---\n" + "\n".join(text)
    return ""


def _wait_for_batch_worker(client, cluster, kind: str, errors: list[str], timeout: float):
    """Wait until one worker job has joined; fail fast on submission errors."""
    deadline = time.monotonic() + timeout
    next_queue_check = time.monotonic() + 3.0
    while True:
        if errors:
            raise ClusterError(f"{kind.upper()} job submission failed: {errors[0]}")
        try:
            client.wait_for_workers(1, timeout=1.0)
            return
        except (TimeoutError, OSError):
            pass
        now = time.monotonic()
        job_ids = _job_ids(cluster)
        if kind == "slurm" and now >= next_queue_check:
            next_queue_check = now + 3.0
            queued = _queued_slurm_jobs(job_ids)
            # Every job left the queue without a worker ever joining: it crashed
            # (wrong python, missing module, no route to the scheduler...).
            if queued is not None and job_ids and not queued and not errors:
                try:
                    client.wait_for_workers(1, timeout=1.0)
                    return
                except (TimeoutError, OSError):
                    pass
                raise ClusterError(
                    f"SLURM job(s) {', '.join(job_ids)} ended before a Dask worker "
                    f"connected to {client.scheduler.address}; check the job output "
                    "(log-directory), the python and job-script-prologue settings and "
                    "the network interface." + _job_log_tail(cluster, job_ids[0])
                )
        if now >= deadline:
            state = ""
            if kind == "slurm":
                queued = _queued_slurm_jobs(job_ids) or {}
                state = "; ".join(f"job {i}: {s}" for i, s in queued.items())
            raise ClusterError(
                f"no {kind.upper()} worker joined within {timeout:.0f} s "
                f"(jobs {', '.join(job_ids) or 'none'}{': ' + state if state else ''}); "
                "the queue may be busy: raise dmeta.cluster.wait-timeout "
                "(e.g. DASK_DMETA__CLUSTER__WAIT_TIMEOUT=3600) or pick another queue."
            )


def _import_jobqueue():
    """Import dask_jobqueue, undoing its import-time SIGINT handler.

    ``dask_jobqueue.runner`` (0.8-0.9) installs ``signal.signal(SIGINT,
    lambda *_: sys.exit())`` when imported, which turns Ctrl-C into a silent
    exit with status 0.  Put Python's KeyboardInterrupt back so callers (and the
    command line) see the interruption.
    """
    def from_jobqueue(handler) -> bool:
        return getattr(handler, "__module__", None) == "dask_jobqueue.runner"

    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGINT) if main else None
    import dask_jobqueue

    if main and from_jobqueue(signal.getsignal(signal.SIGINT)):
        restore = before if before is not None and not from_jobqueue(before) else None
        signal.signal(signal.SIGINT, restore or signal.default_int_handler)
    return dask_jobqueue


def start_batch(kind, workers, threads_per_worker, timeout, quiet, options):
    """Submit Dask worker jobs and return a client once the first worker joined.

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        The batch system, one of ``BATCH_SYSTEMS``.
    workers : int or None
        Number of Dask workers to ask for (default one job's worth); ignored
        when ``options`` has ``jobs``.
    threads_per_worker : int or None
        Sets ``processes = cores // threads_per_worker`` unless ``options`` has
        ``processes``.
    timeout : float
        Seconds to wait for the first worker to join.
    quiet : bool
        Do not print the dashboard line and warnings on stderr.
    options : dict
        ``SLURMCluster``/``PBSCluster`` keyword options, plus ``jobs=N`` to ask
        for a number of jobs.

    Returns
    -------
    distributed.Client
        Connected to the new cluster (``client.cluster``).

    Raises
    ------
    ClusterError
        The cluster cannot be configured, a submission failed, the jobs ended
        before a worker joined, or no worker joined within ``timeout``.
    """
    try:
        dask_jobqueue = _import_jobqueue()
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ClusterError(f"--cluster {kind} needs dask-jobqueue: {exc}") from exc
    cls = dask_jobqueue.SLURMCluster if kind == "slurm" else dask_jobqueue.PBSCluster
    options = dict(options)
    jobs = options.pop("jobs", None)
    if threads_per_worker and "processes" not in options:
        cores = options.get("cores") or dask.config.get(f"jobqueue.{kind}.cores", None)
        if cores:
            options["processes"] = max(1, int(cores) // int(threads_per_worker))
    # dask-jobqueue writes log-directory into #SBATCH/#PBS lines verbatim, where
    # "~" or a relative path would not mean what the user meant.
    log_dir = options.get("log_directory") or dask.config.get(
        f"jobqueue.{kind}.log-directory", None
    )
    if log_dir:
        options["log_directory"] = os.path.abspath(
            os.path.expanduser(os.path.expandvars(str(log_dir)))
        )
    errors: list[str] = []
    try:
        cluster = cls(job_cls=_recording_job_class(cls.job_cls, errors), **options)
    except (ValueError, TypeError) as exc:
        raise ClusterError(
            f"cannot configure a {kind.upper()} cluster: {' '.join(str(exc).split())} "
            f"(set jobqueue.{kind}.* in ~/.config/dask/, see cluster_configs/{kind}.yaml)"
        ) from exc
    client = None
    try:
        client = distributed.Client(cluster)
        if jobs:
            cluster.scale(jobs=int(jobs))
        else:
            cluster.scale(n=int(workers or 1))
        n_jobs = len(cluster.worker_spec)
        announce(client, f"asked {kind.upper()} for {n_jobs} worker job(s)", quiet)
        _wait_for_batch_worker(client, cluster, kind, errors, timeout)
        if errors:  # some jobs were refused, others run: go on with fewer workers
            msg = f"{len(errors)} of {n_jobs} {kind.upper()} job(s) refused: {errors[0]}"
            logger.warning(msg)
            if not quiet:
                print(f"dmeta: warning: {msg}", file=sys.stderr, flush=True)
        return client
    except BaseException:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        with contextlib.suppress(Exception):
            cluster.close()
        raise

