"""Making, reusing and releasing the client dmeta computes through.

:func:`connect` starts a local cluster, submits batch workers (see
:mod:`dmeta.compute.jobqueue`) or reaches a running scheduler at a ``tcp://``
address; :func:`close` releases what it started; :func:`session` wraps both in a
context manager and reuses the :func:`active_client` when asked to.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import dask.system
import distributed

from ..errors import InputError
from .config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_WAIT_TIMEOUT, config_seconds
from .dashboard import announce
from .errors import ClusterError
from .jobqueue import BATCH_SYSTEMS, start_batch

logger = logging.getLogger(__name__)


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
        announce(client, f"local cluster with {n} worker(s)", quiet)
        return client

    if kind in BATCH_SYSTEMS:
        if timeout is None:
            timeout = config_seconds("dmeta.cluster.wait-timeout", DEFAULT_WAIT_TIMEOUT)
        return start_batch(kind, workers, threads_per_worker, timeout, quiet, options)

    if "://" in cluster:
        address = cluster.strip()
        if timeout is None:
            timeout = config_seconds("dmeta.cluster.connect-timeout", DEFAULT_CONNECT_TIMEOUT)
        try:
            client = distributed.Client(address, timeout=timeout, **options)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach scheduler at {address} within {timeout:g} s: {exc}"
            ) from exc
        announce(client, f"connected to scheduler {address}", quiet)
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
