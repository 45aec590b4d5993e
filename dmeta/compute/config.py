"""dask configuration for clusters: YAML files and dmeta's cluster timeouts.

The timeout keys (``dmeta.cluster.wait-timeout``, ``dmeta.cluster.connect-timeout``)
are described in :mod:`dmeta.compute`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping

import dask.config
import dask.utils

from ..errors import InputError

DEFAULT_WAIT_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0


def config_seconds(key: str, default: float) -> float:
    """Read a duration from dask's configuration, in seconds.

    Parameters
    ----------
    key : str
        A dask configuration key such as ``"dmeta.cluster.wait-timeout"``.
    default : float
        Seconds to use when the key is not set.

    Returns
    -------
    float
        The configured duration (a number or a string such as ``"5 minutes"``)
        in seconds.
    """
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
