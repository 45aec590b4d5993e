"""Blocks of work as Dask tasks: the one way dmeta runs work on a cluster."""

import warnings

from distributed import as_completed
from tqdm import TqdmWarning

from .connection import session

with warnings.catch_warnings():
    # tqdm.auto draws a widget in Jupyter (when ipywidgets is installed) and text elsewhere;
    # it warns on import that the widget is "experimental", or that ipywidgets is missing
    # and it falls back to text. Either way the bar works, so the warning is only noise.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm


def run_blocks(func, blocks, write, *, shared=(), desc="Blocks", unit="block"):
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
        the keys of blocks no longer needed (an adaptive run that has enough): their tasks
        are cancelled, and a result of theirs that arrives anyway is not written.
    shared : sequence
        Large objects the blocks pass as arguments: each is sent to every worker once, and a
        block argument that *is* one of them (same object) reaches ``func`` as that copy.
    desc, unit : str
        Progress bar label and unit.
    """
    if not blocks:
        return
    with session() as client:
        futures = []
        try:
            copies = client.scatter(list(shared), broadcast=True, hash=False) if shared else []
            copy_of = {id(obj): copy for obj, copy in zip(shared, copies)}
            keys = list(blocks)
            # One message submits every task and one per batch of finished ones fetches
            # their results: per-task round trips would cost milliseconds each.
            columns = zip(*([copy_of.get(id(arg), arg) for arg in blocks[key]] for key in keys))
            futures = client.map(func, *columns, pure=False)
            wanted = dict(zip(keys, futures))
            key_of = dict(zip(futures, keys))
            with tqdm(total=len(futures), desc=desc, unit=unit, leave=False) as bar:
                for batch in as_completed(futures).batches():
                    batch = [f for f in batch if key_of[f] in wanted]
                    for future, result in zip(batch, client.gather(batch)):
                        key = key_of[future]
                        if wanted.pop(key, None) is None:
                            continue
                        dropped = [wanted.pop(k) for k in write(key, result) or () if k in wanted]
                        future.release()
                        bar.update()
                        if dropped:
                            client.cancel(dropped)
                            bar.total -= len(dropped)
                            bar.refresh()
                    if not wanted:
                        break
        finally:
            client.cancel(futures)
