"""What a Dask worker runs for distsk's own tasks, importable without scikit-learn.

The scheduler unpickles every task it receives, functions included. Task functions
defined here (and ``distsk/__init__`` importing its submodules lazily) keep a
scheduler from importing scikit-learn, scipy and distsk's engines -- about 145 MB --
only to pass the task on; the work itself travels as bytes (``pack`` / ``call`` for
single fits and sub-forests, ``DaskRunner._pack`` for a search's units).
"""

from __future__ import annotations

import pickle

__all__ = ["Ref", "pack", "call", "run_batch", "run_suspect"]


class Ref:
    """Stands for the ``i``-th scattered argument of a packed unit."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        return (Ref, (self.i,))


def _resolver(data):
    def get(obj):
        return data[obj.i] if isinstance(obj, Ref) else obj

    return get


def _unpack(blob, data):
    get = _resolver(data)
    return [(f, [get(a) for a in args], {k: get(v) for k, v in kwargs.items()})
            for f, args, kwargs in pickle.loads(blob)]


def pack(func, args, kwargs=None):
    """``(blob, data)`` for :func:`call`: futures among ``args`` / ``kwargs`` go beside."""
    import cloudpickle
    from distributed import Future

    data: list = []

    def ref(obj):
        if isinstance(obj, Future):
            data.append(obj)
            return Ref(len(data) - 1)
        return obj

    blob = cloudpickle.dumps(
        (func, [ref(a) for a in args], {k: ref(v) for k, v in (kwargs or {}).items()})
    )
    return blob, data


def call(blob, data):
    """Run a function packed by :func:`pack`, with its data resolved by Dask."""
    func, args, kwargs = pickle.loads(blob)
    get = _resolver(data)
    return func(*[get(a) for a in args], **{k: get(v) for k, v in kwargs.items()})


def run_batch(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in this worker."""
    from ._executors._dask import _run_unit_on_worker

    return _run_unit_on_worker(kind, _unpack(blob, data), capture_stdout, topic)


def run_suspect(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in a child process of this worker."""
    from ._executors._dask import _run_unit_isolated

    return _run_unit_isolated(kind, _unpack(blob, data), capture_stdout, topic)
