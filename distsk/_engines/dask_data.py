"""What a Dask search sends to the workers ahead of its tasks: its data, once.

Each data leaf of a search's calls (X, y, fit parameters' arrays, each fold's train and
test indices) of ``SCATTER_MIN_BYTES`` or more is scattered to every worker once, keyed
by identity; a task's pickle carries its future in its place (``_units/remote.pack``).
Used by ``DaskRunner`` (searches, :class:`SentData`) and ``DaskExecutor`` (single fits,
:func:`broadcaster`).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import sys
import threading
import time

import numpy as np

from .._cluster.data import OnCluster
from ..exceptions import ClusterUnavailableError

__all__ = ["SentData", "SCATTER_MIN_BYTES", "bounded", "broadcaster", "call_data",
           "data_leaf", "ATOMS", "scatter_one"]

#: Arguments larger than this (bytes) are scattered once instead of sent with each task.
SCATTER_MIN_BYTES = 1_000
#: Data met only inside a task's pickle (not an argument ``prepare`` sent ahead: an
#: array inside an estimator or a closure) is sent on its own from this size (bytes):
#: below, its own round trip to the scheduler costs more than carrying it in the task.
#: A forest grown across halving rounds holds hundreds of tree arrays of a few kB:
#: scattered one by one, halving-trees on a cluster took 1.37x sklearn's time (0.85x
#: with them carried in the task).
LATE_SCATTER_MIN_BYTES = 1_000_000
#: Seconds a single result may take to arrive once its task has finished.
RESULT_TIMEOUT = 60.0
#: Tries of one scatter when workers die during it, and seconds each may take.
SCATTER_TRIES = 3
SCATTER_TIMEOUT = 20.0
#: Seconds a scatter waits for a running worker when the cluster has none (every worker
#: killed at once: nannies restart them, an autoscaler adds them; slow on a busy machine).
WORKER_BACK_TIMEOUT = 120.0


def scatter_one(client, obj):
    """Send ``obj`` to every worker once; the future stands in for it in tasks."""
    if obj is None:
        return None
    if isinstance(obj, OnCluster):  # already in a worker's memory
        return obj.future
    # Wrapped in a list: scatter would otherwise split lists and dicts element-wise.
    # broadcast=True: one send to every worker (not one per task); forests need X
    # on every worker at once.
    return client.scatter([obj], broadcast=True, hash=False, timeout=RESULT_TIMEOUT)[0]


ATOMS = (str, bytes, int, float, complex, bool, type(None), np.generic)


def atoms(values) -> bool:
    return all(isinstance(v, ATOMS) for v in values)


def data_leaf(obj) -> bool:
    """Whether ``obj`` is data that reaches no other object a call could share (a numeric
    array, a sparse matrix, a frame or a list of plain values): sent ahead on its own,
    it still arrives as what every reference to it in the call's pickle names. An
    object array of estimators, a dict or a callback is not: it travels inside the
    call's pickle, with whatever else refers to what it holds (``pack``)."""
    if isinstance(obj, np.ndarray):
        return obj.dtype != object or atoms(obj.ravel(order="K"))
    if type(obj) in (list, tuple):
        return atoms(obj)
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(obj):
        return obj.dtype != object
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(obj, (pandas.DataFrame, pandas.Series)):
        frame = obj.to_frame() if isinstance(obj, pandas.Series) else obj
        return not frame.attrs and all(
            frame.dtypes.iloc[i] != np.dtype(object) or atoms(frame.iloc[:, i].to_numpy())
            for i in range(frame.shape[1]))
    return False


def call_data(items):
    """The objects of ``items`` that may be data to send ahead: each argument, and each
    value of a dict argument (fit parameters)."""
    for _, args, kwargs in items:
        for obj in (*args, *kwargs.values()):
            if isinstance(obj, dict):
                yield from obj.values()
            elif obj is not None and not isinstance(obj, ATOMS):
                yield obj


def broadcaster(client):
    """``share`` for :func:`pack`: each data leaf of ``SCATTER_MIN_BYTES`` or more sent to
    every worker once (by identity), data kept on the cluster as its future."""
    from dask.sizeof import sizeof

    sent: dict[int, tuple[object, object]] = {}

    def share(obj):
        if isinstance(obj, OnCluster):
            return obj.future
        hit = sent.get(id(obj))
        if hit is not None:
            return hit[1]
        if not data_leaf(obj) or sizeof(obj) < SCATTER_MIN_BYTES:
            return None
        future = scatter_one(client, obj)
        sent[id(obj)] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    return share


class SentData:
    """The data one search (or one joblib block) sent ahead to a cluster's workers:
    ``id(obj) -> (obj, future)`` (the strong reference keeps ``id(obj)`` unique)."""

    def __init__(self, client, address):
        self.client = client
        self._address = address
        self._lock = threading.Lock()
        self._scattered: dict[int, tuple[object, object]] = {}
        self._small: dict[int, object] = {}
        #: Times each object (by id) was sent to the workers: what tests count.
        self.sent: collections.Counter[int] = collections.Counter()
        #: With ``kept`` (the runner serves several joblib calls), what is sent carries
        #: a content token, so that ``retain`` sends data changed in place again.
        self.tokens: dict[int, str] = {}
        self.kept = False

    def send_ahead(self, items):
        """Scatter every large argument of ``items`` now, in one call, once each.

        Done before any task runs, so no send races a worker that dies mid-search, and
        to every worker, so one dead worker loses no data. (dask's Active Memory Manager
        may later trim replicas; data lost with a worker is then sent again.)
        """
        from dask.sizeof import sizeof

        todo: dict[int, object] = {}
        for obj in call_data(items):
            if isinstance(obj, OnCluster) or id(obj) in todo or id(obj) in self._scattered:
                continue
            if data_leaf(obj) and sizeof(obj) >= SCATTER_MIN_BYTES:
                todo[id(obj)] = obj
        if not todo:
            return
        objs = list(todo.values())
        futures = self.scatter(objs, broadcast=True)
        with self._lock:
            for obj, future in zip(objs, futures):
                self._scattered[id(obj)] = (obj, future)

    def share(self, obj):
        """``pack``'s ``share``: the future standing for ``obj`` in a task, or None (it
        travels inside the task's pickle). Data leaves (``_data_leaf``) once, by
        identity -- those met only inside the pickle from ``LATE_SCATTER_MIN_BYTES``;
        data kept on the cluster as the future of its assembled copy. Called
        for every object a task pickles: the common answers come first."""
        if isinstance(obj, ATOMS):
            return None
        if isinstance(obj, OnCluster):
            return obj.future
        key = id(obj)
        with self._lock:
            hit = self._scattered.get(key)
        if hit is not None and hit[0] is obj:
            return hit[1]
        small = self._small.get(key)
        if small is not None and small is obj:
            return None
        if not data_leaf(obj):
            return None
        from dask.sizeof import sizeof

        if sizeof(obj) < LATE_SCATTER_MIN_BYTES:
            self._small[key] = obj  # the strong ref keeps id(obj) unique
            return None
        (future,) = self.scatter([obj])
        with self._lock:
            self._scattered[key] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    def avoiding(self, holders, others):
        """``share`` for one task that must not wait on the workers ``holders`` (cut
        off, perhaps): data held only there is sent again, to ``others``, and kept in
        its place, so that later tasks (and later copies) use the new copy and nothing
        is sent twice; the rest is shared as usual."""
        with self._lock:
            scattered = dict(self._scattered)
        futures = [f for _, f in scattered.values()]
        if not futures:
            return self.share
        where = bounded(lambda: self.client.who_has(futures), SCATTER_TIMEOUT)
        stuck = {key for key, (_, f) in scattered.items()
                 if not set(where.get(f.key, ())) - set(holders)}
        if not stuck:
            return self.share

        def share(obj):
            key = id(obj)
            if key in stuck and scattered[key][0] is obj:
                (future,) = bounded(lambda: self.client.scatter(
                    [obj], workers=others, hash=False, timeout=SCATTER_TIMEOUT),
                    SCATTER_TIMEOUT)
                with self._lock:
                    self._scattered[key] = (obj, future)
                stuck.discard(key)
                return future
            return self.share(obj)

        return share

    def retain(self, items):
        """Another joblib call: keep the data it passes again unchanged (same object,
        same content token), release the rest; a block then holds one call's data at a
        time, as a search does."""
        from dask.base import tokenize

        passed = {id(obj) for obj in call_data(items)}
        with self._lock:
            scattered = dict(self._scattered)
        unchanged = {key for key, (obj, _) in scattered.items()
                     if key in passed and key in self.tokens
                     and self.tokens[key] == tokenize(obj)}
        with self._lock:
            drop = [f for key, (_, f) in self._scattered.items() if key not in unchanged]
            self._scattered = {key: hit for key, hit in self._scattered.items()
                               if key in unchanged}
            self._small = {key: obj for key, obj in self._small.items() if key in passed}
            self.tokens = {key: token for key, token in self.tokens.items()
                           if key in unchanged}
        for f in drop:
            f.release()

    def scatter(self, objs, broadcast=False):
        # A worker dying while data is sent to it breaks the send; the scheduler then
        # drops it, and the next try goes to the living. The send itself has no
        # deadline in distributed: each try is bounded here (a hung send is abandoned).
        last = None
        if self.kept:
            from dask.base import tokenize

            tokens = [tokenize(obj) for obj in objs]  # taken before the send, as sent
        for attempt in range(SCATTER_TRIES):
            if attempt:
                time.sleep(0.5 * attempt)
                if self.client.status != "running":
                    break
                # Every worker may have died at once: wait for one to be back (the
                # scheduler's own wait is only within the try's bound); none within
                # WORKER_BACK_TIMEOUT ends the tries.
                try:
                    bounded(lambda: self.client.wait_for_workers(
                        1, timeout=WORKER_BACK_TIMEOUT), WORKER_BACK_TIMEOUT + 5)
                except (OSError, cf.TimeoutError, TimeoutError) as exc:
                    last = exc
                    break
            try:
                futures = bounded(
                    lambda: self.client.scatter(objs, hash=False, broadcast=broadcast,
                                                timeout=SCATTER_TIMEOUT),
                    SCATTER_TIMEOUT,
                )
            except (OSError, cf.TimeoutError, TimeoutError) as exc:  # CommClosedError too
                last = exc
                continue
            with self._lock:
                self.sent.update(id(obj) for obj in objs)
                if self.kept:
                    self.tokens.update((id(obj), t) for obj, t in zip(objs, tokens))
            return futures
        raise ClusterUnavailableError(
            f"Could not send the search's data to the workers of {self._address} "
            f"(up to {SCATTER_TRIES} tries of {SCATTER_TIMEOUT:.0f} s, the later ones after "
            f"waiting up to {WORKER_BACK_TIMEOUT:.0f} s for a running worker; last: "
            f"{type(last).__name__}: {last}; {self._running_workers()})."
        ) from last

    def _running_workers(self) -> str:
        """What the scheduler lists now, for the error message."""
        try:
            info = bounded(self.client.scheduler_info, 5)
        except Exception as exc:
            return f"the scheduler did not say which workers run ({type(exc).__name__})"
        states = [w.get("status", "?") for w in info.get("workers", {}).values()]
        return f"the scheduler lists {len(states)} worker(s): {sorted(states)}"

    def forget(self):
        # Which copies died is the scheduler's knowledge, and asking races further
        # deaths; sending everything again once is simple and certain.
        with self._lock:
            self._scattered = {}

    def release(self):
        with self._lock:
            scattered, self._scattered = [f for _, f in self._scattered.values()], {}
            self._small = {}
        for f in scattered:
            f.release()


def bounded(func, timeout):
    """``func()``, abandoned (not waited for) if it takes longer than ``timeout`` s."""
    pool = cf.ThreadPoolExecutor(1)
    try:
        return pool.submit(func).result(timeout=timeout)
    finally:
        pool.shutdown(wait=False)
