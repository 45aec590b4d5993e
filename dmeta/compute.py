"""Where dmeta's task graphs run: a local cluster, SLURM, PBS or a running scheduler.

Everything in dmeta computes through the active :class:`distributed.Client`.
This module makes one:

* ``connect("local")`` starts a :class:`distributed.LocalCluster` sized to the
  machine (one single-threaded worker process per core: dmeta's numba kernels
  are single-threaded).
* ``connect("slurm")`` / ``connect("pbs")`` start a scheduler in this process
  (e.g. on a login node) and submit Dask workers as batch jobs through
  dask-jobqueue.  Queue, account, cores, memory, walltime... come from dask's
  configuration (``jobqueue.slurm.*`` / ``jobqueue.pbs.*``, e.g. the files in
  ``cluster_configs/`` copied to ``~/.config/dask/``); keyword options override.
* ``connect("tcp://host:8786")`` attaches to a scheduler that is already running.

:func:`session` wraps this in a context manager that releases workers and batch
jobs on exit, and reuses the active client when asked to (``cluster=None``).

Timeouts come from dask's configuration and can be set in the same YAML files or
through environment variables (``DASK_DMETA__CLUSTER__WAIT_TIMEOUT=3600``):

``dmeta.cluster.wait-timeout`` (default 300 s)
    how long ``connect("slurm"|"pbs")`` waits for the first worker job to start;
``dmeta.cluster.connect-timeout`` (default 10 s)
    how long ``connect("tcp://...")`` tries to reach the scheduler.
"""

from __future__ import annotations

import contextlib
import copy
import glob
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import dask
import dask.config
import dask.system
import dask.utils
import distributed

from .errors import InputError

__all__ = [
    "ClusterError",
    "active_client",
    "close",
    "connect",
    "load_config",
    "session",
]

logger = logging.getLogger(__name__)

DEFAULT_WAIT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
_BATCH = ("slurm", "pbs")


class ClusterError(RuntimeError):
    """The requested cluster could not be started or reached.

    The message is one readable paragraph (what failed and what to check) that the
    command line prints as is.
    """


# --------------------------------------------------------------------------- helpers


def _config_seconds(key: str, default: float) -> float:
    value = dask.config.get(key, default)
    return float(dask.utils.parse_timedelta(value, default="seconds"))


def load_config(path: str | os.PathLike) -> dask.config.set:
    """Apply a dask YAML configuration file (e.g. ``cluster_configs/slurm.yaml``).

    Keys are merged into the current configuration one by one, so keys the file
    does not mention keep their defaults.  The return value can be used as a
    context manager to apply the file only temporarily.

    Parameters
    ----------
    path : str or path-like
        A YAML file with top-level keys such as ``jobqueue:`` or ``dmeta:``.

    Returns
    -------
    dask.config.set
        The applied setting; ``with load_config(p): ...`` restores the previous
        configuration on exit.

    Examples
    --------
    >>> with load_config("cluster_configs/slurm.yaml"):  # doctest: +SKIP
    ...     client = connect("slurm", workers=4)
    """
    import yaml

    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a YAML mapping of dask configuration keys")
    merged = dask.config.update(copy.deepcopy(dask.config.config), data)
    return dask.config.set({key: merged[key] for key in data})


def active_client() -> distributed.Client | None:
    """Return the current :class:`distributed.Client`, or None if there is none.

    This is the client a user created (``Client(...)``, or :func:`connect`/
    :func:`session`), which dask uses by default.  Unlike
    :func:`distributed.get_client` it never starts or connects anything.
    """
    try:
        client = distributed.default_client()
    except ValueError:
        return None
    if client is None or client.status not in ("running", "connecting", "newly-created"):
        return None
    return client


def _announce(client: distributed.Client, what: str, quiet: bool) -> None:
    link = client.dashboard_link
    logger.info("%s; Dask dashboard at %s", what, link)
    if not quiet:
        print(f"dmeta: {what}; Dask dashboard: {link}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- batch jobs


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


def _start_batch(kind, workers, threads_per_worker, timeout, quiet, options):
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
        _announce(client, f"asked {kind.upper()} for {n_jobs} worker job(s)", quiet)
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


# --------------------------------------------------------------------------- public


def connect(
    cluster: str = "local",
    workers: int | None = None,
    threads_per_worker: int | None = None,
    *,
    timeout: float | None = None,
    quiet: bool = False,
    **options: Any,
) -> distributed.Client:
    """Start or reach a Dask cluster and return a client connected to it.

    The client becomes dask's default, so every ``.compute()`` runs there.
    Release it with :func:`close` (or use :func:`session`).  Its dashboard
    address is ``client.dashboard_link`` and is printed to stderr.

    Parameters
    ----------
    cluster : {"local", "slurm", "pbs"} or str
        ``"local"``: worker processes on this machine.  ``"slurm"``/``"pbs"``:
        Dask workers submitted as batch jobs with dask-jobqueue, configured by
        ``jobqueue.slurm.*``/``jobqueue.pbs.*`` in dask's configuration.  A
        scheduler address such as ``"tcp://host:8786"``: connect to it.
    workers : int, optional
        Local: number of worker processes (default: the usable cores).
        SLURM/PBS: number of Dask workers; jobs are submitted to get them
        (``ceil(workers / processes)`` jobs, default one job).  Pass
        ``jobs=N`` instead to ask for a number of jobs.  Ignored for addresses.
    threads_per_worker : int, optional
        Threads per worker process (local default 1: dmeta's kernels are
        single-threaded and scale with processes).  For batch jobs this sets
        ``processes = cores // threads_per_worker`` unless ``processes`` is given.
    timeout : float, optional
        Seconds to wait for the first batch worker (default
        ``dmeta.cluster.wait-timeout``, 300) or for the scheduler at an address
        (default ``dmeta.cluster.connect-timeout``, 10).
    quiet : bool
        Do not print the dashboard line on stderr (it is still logged).
    **options
        Passed to :class:`distributed.LocalCluster`, ``SLURMCluster`` or
        ``PBSCluster`` (e.g. ``queue=``, ``account=``, ``cores=``, ``memory=``,
        ``walltime=``, ``job_script_prologue=``, ``python=``, ``log_directory=``,
        ``interface=``), overriding the configuration files; or to
        :class:`distributed.Client` for an address.

    Returns
    -------
    distributed.Client
        With ``client.cluster`` set for clusters started here (None for an address).

    Raises
    ------
    ClusterError
        The scheduler is unreachable, a batch submission failed (the message
        includes ``sbatch``/``qsub``'s error), the jobs died before a worker
        joined, or no worker joined within the timeout.
    dmeta.errors.InputError
        ``cluster`` is not one of the accepted values.
    """
    if cluster is None:
        cluster = "local"
    if not isinstance(cluster, str):
        raise InputError(f"cluster must be a string, got {cluster!r}")
    kind = cluster.strip().lower()

    if kind == "local":
        n = int(workers) if workers else int(dask.system.CPU_COUNT or os.cpu_count() or 1)
        options.setdefault("processes", True)
        local = distributed.LocalCluster(
            n_workers=n, threads_per_worker=int(threads_per_worker or 1), **options
        )
        try:
            client = distributed.Client(local)
        except BaseException:
            local.close()
            raise
        _announce(client, f"local cluster with {n} worker(s)", quiet)
        return client

    if kind in _BATCH:
        if timeout is None:
            timeout = _config_seconds("dmeta.cluster.wait-timeout", DEFAULT_WAIT_TIMEOUT)
        return _start_batch(kind, workers, threads_per_worker, timeout, quiet, options)

    if "://" in cluster:
        address = cluster.strip()
        if timeout is None:
            timeout = _config_seconds("dmeta.cluster.connect-timeout", DEFAULT_CONNECT_TIMEOUT)
        try:
            client = distributed.Client(address, timeout=timeout, **options)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach scheduler at {address} within {timeout:g} s: {exc}"
            ) from exc
        _announce(client, f"connected to scheduler {address}", quiet)
        return client

    raise InputError(
        f"unknown cluster {cluster!r}: use local, slurm, pbs or a scheduler address "
        "such as tcp://HOST:8786"
    )


def close(client: distributed.Client, timeout: float = 30) -> None:
    """Close a client from :func:`connect` and the cluster it started.

    Local worker processes stop; SLURM/PBS worker jobs are cancelled.  A remote
    scheduler (``connect("tcp://...")``) is left running.  Errors while closing
    are logged, not raised.
    """
    cluster = getattr(client, "cluster", None)
    try:
        client.close(timeout=timeout)
    except Exception as exc:  # pragma: no cover - best effort
        logger.warning("closing the Dask client failed: %s", exc)
    if cluster is not None:
        try:
            cluster.close(timeout=timeout)
        except Exception as exc:  # pragma: no cover - best effort
            logger.warning("closing the Dask cluster failed: %s", exc)


@contextlib.contextmanager
def session(
    cluster: str | None = None, workers: int | None = None, **options: Any
) -> Iterator[distributed.Client]:
    """Context manager yielding a client; releases what it started on exit.

    With ``cluster=None`` (the default) and an active client (see
    :func:`active_client`), that client is yielded and left open: this is what
    estimators use, so they compute wherever the user's client points.
    Otherwise a client is made with :func:`connect` (``cluster=None`` means
    ``"local"`` then) and on exit, also on an exception or ``KeyboardInterrupt``,
    the client is closed and its local workers or batch jobs are released.

    Parameters
    ----------
    cluster : str or None
        As for :func:`connect`; None (default) means "the active client, else a
        new local cluster".  An explicit ``"local"`` always starts a new one.
    workers : int, optional
        As for :func:`connect`.
    **options
        Passed to :func:`connect` (``threads_per_worker``, ``timeout``,
        ``quiet``, cluster options).

    Examples
    --------
    >>> with session("slurm", workers=20) as client:  # doctest: +SKIP
    ...     result = dmeta.FWECorrector(n_iters=10000).transform(ale_result)
    """
    if cluster is None:
        existing = active_client()
        if existing is not None:
            yield existing
            return
        cluster = "local"
    client = connect(cluster, workers, **options)
    try:
        yield client
    finally:
        close(client)
