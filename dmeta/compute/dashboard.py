"""Telling the user where a new client's Dask dashboard is."""

from __future__ import annotations

import logging
import sys

import distributed

logger = logging.getLogger(__name__)


def announce(client: distributed.Client, what: str, quiet: bool) -> None:
    """Log what was started and the dashboard link; also print it unless quiet.

    Parameters
    ----------
    client : distributed.Client
        The new client; its ``dashboard_link`` is announced.
    what : str
        What was started or reached, e.g. ``"local cluster with 4 worker(s)"``.
    quiet : bool
        Only log, do not print the line on stderr.
    """
    link = client.dashboard_link
    logger.info("%s; Dask dashboard at %s", what, link)
    if not quiet:
        print(f"dmeta: {what}; Dask dashboard: {link}", file=sys.stderr, flush=True)
