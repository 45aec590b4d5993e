"""run_blocks, the one way dmeta runs work on Dask: results written as blocks finish, shared
objects shipped once, errors propagated with the pending tasks cancelled, nothing started for
no blocks."""

import time

import numpy as np
import pytest

from dmeta.compute import blocks as blocks_module
from dmeta.compute import run_blocks


def _after(seconds, value):
    time.sleep(seconds)
    return value


def _row(array, n):
    return array[n].copy()


def _fail_or_wait(fail):
    if fail:
        raise ValueError("block failed")
    time.sleep(2)


def _spy(monkeypatch, client, method):
    """The first argument of every call of ``client.<method>``, kept in a list."""
    calls, original = [], getattr(client, method)

    def spy(first, **kwargs):
        calls.append(first)
        return original(first, **kwargs)

    monkeypatch.setattr(client, method, spy)
    return calls


def test_results_are_written_as_blocks_finish(client):
    written = []
    run_blocks(_after, {"slow": (1.5, "s"), "fast": (0.0, "f")},
               lambda key, result: written.append((key, result)))
    assert written == [("fast", "f"), ("slow", "s")]


def test_shared_objects_are_scattered_once(client, monkeypatch):
    array = np.arange(12.0).reshape(4, 3)
    scattered = _spy(monkeypatch, client, "scatter")
    rows = {}
    run_blocks(_row, {n: (array, n) for n in range(4)}, rows.__setitem__, shared=[array])
    assert len(scattered) == 1 and scattered[0][0] is array
    np.testing.assert_array_equal(np.stack([rows[n] for n in range(4)]), array)


def test_error_propagates_and_pending_blocks_are_cancelled(client, monkeypatch):
    cancelled = _spy(monkeypatch, client, "cancel")
    written = []
    blocks = {"bad": (True,), **{n: (False,) for n in range(3)}}
    with pytest.raises(ValueError, match="block failed"):
        run_blocks(_fail_or_wait, blocks, lambda key, result: written.append(key))
    [futures] = cancelled
    assert not written and len(futures) == 4
    assert sum(future.status == "cancelled" for future in futures) >= 3


def test_no_blocks_start_nothing(monkeypatch):
    def no_session():
        raise AssertionError("a cluster was asked for")

    monkeypatch.setattr(blocks_module, "session", no_session)
    run_blocks(_after, {}, lambda key, result: None, shared=[np.zeros(3)])
