"""What a Dask worker runs for a search unit, importable without scikit-learn.

The scheduler unpickles every task it receives, functions included. Task functions
defined here (and ``distsk/__init__`` importing its submodules lazily) keep a
scheduler from importing scikit-learn, scipy and distsk's engines -- about 145 MB --
only to pass the task on; the unit itself travels as bytes (see ``DaskRunner._pack``).
"""

from __future__ import annotations

import pickle

__all__ = ["Ref", "run_batch", "run_suspect"]


class Ref:
    """Stands for the ``i``-th scattered argument of a packed unit."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i

    def __reduce__(self):
        return (Ref, (self.i,))


def _unpack(blob, data):
    def get(obj):
        return data[obj.i] if isinstance(obj, Ref) else obj

    return [(f, [get(a) for a in args], {k: get(v) for k, v in kwargs.items()})
            for f, args, kwargs in pickle.loads(blob)]


def run_batch(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in this worker."""
    from ._executors._dask import _run_unit_on_worker

    return _run_unit_on_worker(kind, _unpack(blob, data), capture_stdout, topic)


def run_suspect(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in a child process of this worker."""
    from ._executors._dask import _run_unit_isolated

    return _run_unit_isolated(kind, _unpack(blob, data), capture_stdout, topic)
