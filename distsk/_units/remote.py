"""What a Dask worker runs for distsk's own tasks, importable without scikit-learn.

The scheduler unpickles every task it receives, functions included. Task functions
defined here (and ``distsk/__init__`` importing its submodules lazily) keep a
scheduler from importing scikit-learn, scipy and distsk's engines -- about 145 MB --
only to pass the task on; the work itself travels as bytes (``pack``, then ``call`` for
single fits and sub-forests, ``run_batch`` / ``run_suspect`` for a search's units).
"""

from __future__ import annotations

import pickle

__all__ = ["CloneOfFirst", "pack", "unpack", "unfitted_copy", "call", "run_batch",
           "run_suspect", "drop_topics"]


class CloneOfFirst:
    """Stands for an unfitted copy of the first item's estimator (``args[0]``)."""

    __slots__ = ()

    def __reduce__(self):
        return (CloneOfFirst, ())


def pack(items, share=None, same_estimators=False):
    """``(blob, data)``: ``items`` -- ``(func, args, kwargs)`` triples -- as one pickle,
    with the Dask futures standing for some of their objects listed once in ``data``:
    each argument that is a future, and each object anywhere in the items (an argument,
    a fit parameter, an array inside an estimator or a closure) for which ``share``
    returns a future (the future of its copy scattered to the workers), else None.

    One pickle, as joblib pickles a call: an object the items reach twice (a fit
    parameter also held by a callback's closure) arrives as one object, and an object
    ``share`` sent ahead arrives as the very object that every other reference to it
    in these items names (the pickle holds a reference to its future, wherever it is).

    ``same_estimators``: an item whose estimator is an unfitted copy of the first
    item's (a search hands every fit its own clone of one estimator) travels as a
    :class:`CloneOfFirst` and is cloned from the first on the worker: one estimator
    pickled per batch instead of one per fit.

    Passed as ``client.submit(task, ..., blob, data)``, Dask resolves ``data`` on the
    worker while the scheduler only ever sees bytes.
    """
    import io

    from distributed import Future

    data: list = []
    index: dict = {}
    if same_estimators and len(items) > 1 and items[0][1]:
        first = items[0][1][0]
        items = [items[0]] + [
            (f, [CloneOfFirst(), *args[1:]], kwargs)
            if args and unfitted_copy(args[0], first) else (f, args, kwargs)
            for f, args, kwargs in items[1:]
        ]
    # Arguments that are futures already (data the caller scattered) stand for their
    # values; a future elsewhere (inside a fit parameter) travels as a future.
    passed = {id(obj): obj for _, args, kwargs in items
              for obj in (*args, *kwargs.values()) if isinstance(obj, Future)}

    def persistent_id(obj):
        future = passed.get(id(obj))
        if future is None and share is not None:
            future = share(obj)
        if future is None:
            return None
        if future.key not in index:
            index[future.key] = len(data)
            data.append(future)
        return index[future.key]

    buffer = io.BytesIO()
    _pickler_class()(buffer, persistent_id).dump(
        [(f, list(args), dict(kwargs)) for f, args, kwargs in items])
    return buffer.getvalue(), data


_PICKLER = None


def _pickler_class():
    """cloudpickle's Pickler, with objects standing for futures (``pack``); made on
    first use, as cloudpickle is imported only where tasks are packed."""
    global _PICKLER
    if _PICKLER is None:
        import cloudpickle

        class _FuturePickler(cloudpickle.Pickler):
            def __init__(self, file, persistent_id):
                super().__init__(file)
                self._standing_for = persistent_id

            def persistent_id(self, obj):
                return self._standing_for(obj)

        _PICKLER = _FuturePickler
    return _PICKLER


class _Unpickler(pickle.Unpickler):
    """Each object ``pack`` replaced by a future's index: that future's value."""

    def __init__(self, file, data):
        super().__init__(file)
        self._data = data

    def persistent_load(self, pid):
        return self._data[pid]


def unpack(blob, data):
    """The items :func:`pack` made, with each future's value in its place."""
    import io

    items = _Unpickler(io.BytesIO(blob), data).load()
    if any(args and isinstance(args[0], CloneOfFirst) for _, args, _ in items):
        from sklearn.base import clone

        first = items[0][1][0]
        for _, args, _ in items:
            if args and isinstance(args[0], CloneOfFirst):
                args[0] = clone(first)
    return items


def unfitted_copy(a, b) -> bool:
    """Whether estimator ``a`` is an unfitted copy of ``b`` (what ``clone(b)`` makes):
    same class, no fitted attribute (sklearn's rule: a name ending in ``_``) and equal
    state -- compared here only for plain values, arrays and nested estimators;
    anything else (a RandomState, a callback) makes it False, and the estimator then
    travels as it is."""
    if type(a) is not type(b) or not hasattr(a, "get_params"):
        return False
    state, other = vars(a), vars(b)
    if state.keys() != other.keys() or any(
            k.endswith("_") and not k.startswith("__") for k in state):
        return False
    return all(_same(state[k], other[k]) for k in state)


def _same(x, y) -> bool:
    if x is y:
        return True
    if type(x) is not type(y):
        return False
    if isinstance(x, (str, bytes, int, float, complex, bool)):
        return bool(x == y)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(map(_same, x, y))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if hasattr(x, "get_params") and not isinstance(x, type):
        return unfitted_copy(x, y)
    if type(x).__name__ == "ndarray" and type(x).__module__ == "numpy":
        import numpy as np

        return x.dtype == y.dtype and x.shape == y.shape and bool(np.array_equal(x, y))
    return False


def call(blob, data):
    """Run the one function :func:`pack` packed, with its data resolved by Dask."""
    ((func, args, kwargs),) = unpack(blob, data)
    return func(*args, **kwargs)


def run_batch(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in this worker."""
    from .worker import run_unit_on_worker

    return run_unit_on_worker(kind, unpack(blob, data), capture_stdout, topic)


def run_suspect(kind, blob, data, capture_stdout, topic):
    """Run a packed unit in a child process of this worker."""
    from .worker import run_unit_isolated

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
