"""Where dmeta's task graphs run: a local cluster, SLURM, PBS or a running scheduler.

Everything in dmeta computes through the active :class:`distributed.Client`.
This package makes one:

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

Every Dask use in dmeta goes through :func:`run_blocks` (one task per block, each result
written as it arrives, one progress bar, pending tasks cancelled on error).

Modules: ``connection`` (connect, close, session, the active client), ``blocks``
(:func:`run_blocks`), ``jobqueue`` (SLURM/PBS batch jobs), ``config`` (YAML files and
timeouts), ``dashboard`` (the dashboard link) and ``errors`` (:class:`ClusterError`).
"""

from .blocks import run_blocks
from .config import load_config
from .connection import active_client, close, connect, session
from .errors import ClusterError
from .jobqueue import _import_jobqueue  # noqa: F401  (re-exported for tests/test_compute.py)

__all__ = [
    "ClusterError",
    "active_client",
    "close",
    "connect",
    "load_config",
    "run_blocks",
    "session",
]
