"""Blocks of work as Dask tasks: the one way dmeta runs work on a cluster."""

import warnings
from collections import deque

from distributed import as_completed
from tqdm import TqdmWarning

from .connection import session

with warnings.catch_warnings():
    # tqdm.auto draws a widget in Jupyter (when ipywidgets is installed) and text elsewhere;
    # it warns on import that the widget is "experimental", or that ipywidgets is missing
    # and it falls back to text. Either way the bar works, so the warning is only noise.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm


def run_blocks(func, blocks, write, *, shared=(), desc="Blocks", unit="block", in_order=False):
    """Run ``func(*args)`` for every block as a Dask task; ``write(key, result)`` each result.

    Tasks run in :func:`session` (the active client, else a local cluster); with no blocks
    nothing starts. Results are written as they arrive, in this process, so what ``write``
    keeps (a store, an accumulator) survives a crash or an interrupt, except the blocks in
    flight. On an error or ``KeyboardInterrupt`` the tasks still pending are cancelled and
    the error propagates as raised.

    Parameters
    ----------
    func : callable
        Runs on a worker.
    blocks : mapping of key to tuple
        Each block's arguments to ``func``, by a key handed back to ``write``.
    write : callable
        ``write(key, result)``, called as each block finishes (in any order). It may return
        the keys of blocks no longer needed (an adaptive run that has enough): they are not
        started, and those already running are left to finish (a thread cannot be stopped;
        cancelling would only leave it running behind the scheduler's back) and not written.
    shared : sequence
        Large objects the blocks pass as arguments: each is sent to every worker once, and a
        block argument that *is* one of them (same object) reaches ``func`` as that copy.
    desc, unit : str
        Progress bar label and unit.
    in_order : bool
        Submit the blocks in the order of ``blocks``, one per worker thread and one more at a
        time, instead of all at once: blocks then finish roughly in order, and blocks an
        adaptive run turns out not to need are never started.
    """
    if not blocks:
        return
    with session() as client:
        in_flight, draining, key_of = {}, {}, {}
        try:
            copies = client.scatter(list(shared), broadcast=True, hash=False) if shared else []
            copy_of = {id(obj): copy for obj, copy in zip(shared, copies)}
            queue, waiting = deque(blocks), set(blocks)  # keys not yet submitted

            def submit(count):
                # One message submits a whole batch, and one per batch of finished ones
                # fetches their results: per-task round trips would cost milliseconds each.
                keys = []
                while queue and len(keys) < count:
                    key = queue.popleft()
                    if key in waiting:
                        waiting.discard(key)
                        keys.append(key)
                if not keys:
                    return []
                columns = zip(*([copy_of.get(id(arg), arg) for arg in blocks[key]]
                                for key in keys))
                futures = client.map(func, *columns, pure=False)
                in_flight.update(zip(keys, futures))
                key_of.update(zip(futures, keys))
                return futures

            def window():
                # One block running per thread and one waiting: a block past an adaptive
                # run's stop that already started is left to finish, so few may start.
                return sum(client.nthreads().values()) + 1 if in_order else len(queue)

            finished = as_completed(submit(window()))
            with tqdm(total=len(blocks), desc=desc, unit=unit, leave=False) as bar:
                for batch in finished.batches():
                    for future in batch:
                        if draining.pop(key_of[future], None) is not None:
                            future.release()
                    batch = [f for f in batch if key_of[f] in in_flight]
                    for future, result in zip(batch, client.gather(batch)):
                        key = key_of[future]
                        if in_flight.pop(key, None) is None:  # dropped in this batch
                            draining.pop(key, None)
                            future.release()
                            continue
                        dropped = {k for k in write(key, result) or ()
                                   if k in in_flight or k in waiting}
                        future.release()
                        bar.update()
                        if dropped:
                            waiting.difference_update(dropped)
                            draining.update((k, in_flight.pop(k)) for k in dropped
                                            if k in in_flight)
                            bar.total -= len(dropped)
                            bar.refresh()
                    if waiting:
                        finished.update(submit(window() - len(in_flight) - len(draining)))
                    if not in_flight and not draining:
                        break
        finally:
            client.cancel([*in_flight.values(), *draining.values()])
