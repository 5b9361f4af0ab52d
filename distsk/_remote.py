"""What a Dask worker runs for distsk's own tasks, importable without scikit-learn.

The scheduler unpickles every task it receives, functions included. Task functions
defined here (and ``distsk/__init__`` importing its submodules lazily) keep a
scheduler from importing scikit-learn, scipy and distsk's engines -- about 145 MB --
only to pass the task on; the work itself travels as bytes (``pack``, then ``call`` for
single fits and sub-forests, ``run_batch`` / ``run_suspect`` for a search's units).
"""

from __future__ import annotations

import pickle

__all__ = ["Ref", "pack", "unpack", "call", "run_batch", "run_suspect", "drop_topics"]


class Ref:
    """Stands for the ``i``-th scattered argument of a packed unit."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        return (Ref, (self.i,))


def pack(items, share=None):
    """``(blob, data)``: ``items`` -- ``(func, args, kwargs)`` triples -- as one pickle,
    with every Dask future among their arguments (after ``share``, which may swap a
    large argument for the future of its scattered copy) listed once in ``data``.

    Passed as ``client.submit(task, ..., blob, data)``, Dask resolves ``data`` on the
    worker while the scheduler only ever sees bytes.
    """
    import cloudpickle
    from distributed import Future

    data: list = []
    index: dict = {}

    def ref(obj):
        if share is not None:
            obj = share(obj)
        if not isinstance(obj, Future):
            return obj
        if obj.key not in index:
            index[obj.key] = len(data)
            data.append(obj)
        return Ref(index[obj.key])

    return cloudpickle.dumps([
        (f, [ref(a) for a in args], {k: ref(v) for k, v in kwargs.items()})
        for f, args, kwargs in items
    ]), data


def unpack(blob, data):
    """The items :func:`pack` made, with each future's value in its place."""

    def get(obj):
        return data[obj.i] if isinstance(obj, Ref) else obj

    return [(f, [get(a) for a in args], {k: get(v) for k, v in kwargs.items()})
            for f, args, kwargs in pickle.loads(blob)]


def call(blob, data):
    """Run the one function :func:`pack` packed, with its data resolved by Dask."""
    ((func, args, kwargs),) = unpack(blob, data)
    return func(*args, **kwargs)


def run_batch(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in this worker."""
    from ._worker import run_unit_on_worker

    return run_unit_on_worker(kind, unpack(blob, data), capture_stdout, topic)


def run_suspect(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in a child process of this worker."""
    from ._worker import run_unit_isolated

    return run_unit_isolated(kind, unpack(blob, data), capture_stdout, topic)


def drop_topics(prefix, dask_scheduler=None):
    """Forget the scheduler's event topics named ``prefix...`` (run on the scheduler).

    Distributed keeps every topic ever logged to and offers no call to drop one; a
    search's per-batch topics of kept fits would otherwise stay for the scheduler's
    life. ``Scheduler._broker._topics`` is private: tests/test_contracts.py checks it.
    """
    topics = dask_scheduler._broker._topics
    for name in [n for n in topics if n.startswith(prefix)]:
        del topics[name]
    return None
