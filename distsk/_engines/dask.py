"""Cluster engine: in-memory data, fits on Dask workers through futures.

Strategies (chosen by the planner): ``split-forest`` (sub-forests on the workers, merged
into the exact forest a local fit gives), ``joblib-dask`` (the estimator's own joblib
loops on the cluster), ``single-task`` (the whole fit as one task). Searches use
:class:`DaskRunner`, which sends each large argument to every worker once and runs units
of search work as Dask tasks with inner parallelism pinned.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import functools
import itertools
import pickle
import sys
import threading
import time
import uuid

import numpy as np
from distributed import KilledWorker
from distributed.client import FutureCancelledError
from joblib import parallel_config
from sklearn.base import clone

from .._cluster.data import OnCluster
from .._units.fit_call import FitCall
from .._units.remote import call, drop_topics, pack, run_batch, run_suspect
from .._units.worker import (
    COPY_SUFFIX,
    ChildDied,
    kept_topic,
    merged,
    run_recording,
    wants_stdout,
)
from ..exceptions import ClusterUnavailableError
from .base import (
    ExecutionContext,
    Executor,
    Runner,
    check_picklable,
    fit_estimator,
    fit_received,
    fit_subforest,
    forest_warnings,
    merge_forests,
    reemit,
    with_callers_config,
)
from .child import KILLED_CONFIRMATIONS, convicted

__all__ = ["DaskExecutor", "DaskRunner"]

#: Arguments larger than this (bytes) are scattered once instead of sent with each task.
SCATTER_MIN_BYTES = 1_000
#: Seconds a single result may take to arrive once its task has finished.
RESULT_TIMEOUT = 60.0
#: Times a batch whose scattered inputs were lost is sent again.
MAX_RESUBMITS = 10
#: Consecutive input losses of one unit taken as its own doing (like KilledWorker).
LOSSES_AS_KILLS = 3
#: Tries of one scatter when workers die during it, and seconds each may take.
SCATTER_TRIES = 3
SCATTER_TIMEOUT = 20.0
#: Seconds a search waits for a scheduler that stopped answering before giving up.
SCHEDULER_GRACE = 10.0
_MAX_INT = np.iinfo(np.int32).max


def _scatter(client, obj):
    """Send ``obj`` to every worker once; the future stands in for it in tasks."""
    if obj is None:
        return None
    if isinstance(obj, OnCluster):  # already in a worker's memory
        return obj.future
    # Wrapped in a list: scatter would otherwise split lists and dicts element-wise.
    # broadcast=True: one send to every worker (not one per task); forests need X
    # on every worker at once.
    return client.scatter([obj], broadcast=True, hash=False, timeout=RESULT_TIMEOUT)[0]


_ATOMS = (str, bytes, int, float, complex, bool, type(None), np.generic)


def _atoms(values) -> bool:
    return all(isinstance(v, _ATOMS) for v in values)


def _data_leaf(obj) -> bool:
    """Whether ``obj`` is data that reaches no other object a call could share (a numeric
    array, a sparse matrix, a frame or a list of plain values): sent ahead on its own,
    it still arrives as what every reference to it in the call's pickle names. An
    object array of estimators, a dict or a callback is not: it travels inside the
    call's pickle, with whatever else refers to what it holds (``pack``)."""
    if isinstance(obj, np.ndarray):
        return obj.dtype != object or _atoms(obj.ravel(order="K"))
    if type(obj) in (list, tuple):
        return _atoms(obj)
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(obj):
        return obj.dtype != object
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(obj, (pandas.DataFrame, pandas.Series)):
        frame = obj.to_frame() if isinstance(obj, pandas.Series) else obj
        return not frame.attrs and all(
            frame.dtypes.iloc[i] != np.dtype(object) or _atoms(frame.iloc[:, i].to_numpy())
            for i in range(frame.shape[1]))
    return False


def _call_data(items):
    """The objects of ``items`` that may be data to send ahead: each argument, and each
    value of a dict argument (fit parameters)."""
    for _, args, kwargs in items:
        for obj in (*args, *kwargs.values()):
            if isinstance(obj, dict):
                yield from obj.values()
            elif obj is not None and not isinstance(obj, _ATOMS):
                yield obj


def _broadcaster(client):
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
        if not _data_leaf(obj) or sizeof(obj) < SCATTER_MIN_BYTES:
            return None
        future = _scatter(client, obj)
        sent[id(obj)] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    return share


# ---------------------------------------------------------------------------- forests
def _fit_subforest(forest, start, stop, X, y, fit_params):
    """Trees ``start:stop`` of ``forest`` (``fit_subforest``), with their warnings."""
    return run_recording(fit_subforest, forest, start, stop, X, y, fit_params)


# ---------------------------------------------------------------------------- executor
class DaskExecutor(Executor):
    """Fit in-memory data on a Dask cluster."""

    name = "dask"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        client, plan = ctx.client, ctx.plan
        check_picklable(estimator, where=f"the Dask workers of {client.scheduler.address}")
        if plan.strategy == "joblib-dask":
            with parallel_config(backend="dask", client=client, wait_for_workers_timeout=30):
                return fit_estimator(estimator, X, y, fit_params)
        # X, y and the fit parameters in the task's one pickle (as joblib sends a call:
        # what they share arrives shared), their data sent to every worker once.
        data, share = [X, y, fit_params], _broadcaster(client)
        if plan.strategy == "split-forest":
            n_trees = estimator.get_params()["n_estimators"]
            bounds = np.linspace(0, n_trees, plan.n_jobs + 1).astype(int)
            futures = [
                client.submit(
                    call, *pack([(with_callers_config(_fit_subforest),
                                  [clone(estimator), int(a), int(b), *data], {})],
                                share=share),
                    pure=False, key=f"distsk-subforest-{a}-{b}-{uuid.uuid4().hex}",
                )
                for a, b in zip(bounds[:-1], bounds[1:]) if b > a
            ]
            results = _gather(client, futures)
            reemit(forest_warnings([recorded for _, recorded in results]))
            return merge_forests(estimator, [r for r, _ in results])
        future = client.submit(
            call, *pack([(with_callers_config(run_recording),
                          [fit_received, estimator, *data], {})], share=share),
            pure=False, key=f"distsk-fit-{type(estimator).__name__}-{uuid.uuid4().hex}",
        )
        (fitted, recorded), = _gather(client, [future])
        reemit(recorded)
        return fitted

    def search_runner(self, ctx: ExecutionContext):
        plan = ctx.plan
        # n_jobs=None (all worker threads): the slots follow the cluster as it grows and
        # shrinks; an explicit n_jobs is kept.
        follows = plan.compute is None or plan.n_jobs == plan.compute.worker_threads
        return DaskRunner(ctx.client, slots=None if follows else plan.n_jobs)


def _gather(client, futures):
    """Results of ``futures``; the remote exception is re-raised unchanged."""
    try:
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()


# ---------------------------------------------------------------------------- searches
def _without_local_frames(exc: BaseException) -> BaseException:
    """``exc`` (a unit's error, raised by ``Future.result``) without the frames of this
    process that lead to it: they hold the unit's distributed futures (``done``'s
    ``fut``, ``Future.result``'s ``self``), and the error lives on with the user, so
    its result stayed in the cluster's memory as long as the error did. The remote
    frames (the user's fit, on the worker) are kept."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith(
            ("distributed.", __name__)):
        tb = tb.tb_next
    return exc.with_traceback(tb)


class DaskRunner(Runner):
    """Units of search work as Dask tasks.

    Every data argument over ``SCATTER_MIN_BYTES`` (X, y, fit parameters' arrays, each
    fold's train and test indices; see ``_data_leaf``) is scattered to all workers once
    per search, keyed by identity; a task's one pickle carries its future in its place,
    wherever the call refers to it. The scheduler re-runs the tasks of a worker that
    dies; when the dead worker held the last copy of scattered data, the unit is
    cancelled for "lost dependencies", and is sent again with its data.
    """

    remote = True
    speculates = True
    reusable = True

    def __init__(self, client, slots: int | None = None):
        self.client = client
        # sklearn's callbacks (ProgressBar, ScoringMonitor, ...) send their events from
        # workers to this process over a local socket, which a remote worker cannot
        # reach; on Dask workers they travel as Dask events on this topic instead.
        self._id = uuid.uuid4().hex
        self._counter = itertools.count()
        self._topic = f"distsk-callbacks-{self._id}"
        self._events_sent = 0
        self._events_received = 0
        client.subscribe_topic(self._topic, self._deliver)
        threads = sum(client.nthreads().values())
        self._fixed_slots = slots
        self._threads, self._threads_read = threads, time.monotonic()
        if threads == 0:
            raise ClusterUnavailableError(
                f"The Dask cluster at {client.scheduler.address} has no workers. "
                "Start workers (`dask worker <address>`) or use backend='loky'."
            )
        self._scattered: dict[int, tuple[object, object]] = {}
        self._small: dict[int, object] = {}
        #: Times each object (by id) was sent to the workers: what tests count.
        self.sent: collections.Counter[int] = collections.Counter()
        #: With ``kept`` (the runner serves several joblib calls), what is sent carries
        #: a content token, so that ``retain`` sends data changed in place again.
        self.tokens: dict[int, str] = {}
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self._address = client.scheduler.address
        self.resubmitted = 0

    def prepare(self, items):
        """Scatter every large argument of ``items`` now, in one call, once each.

        Done before any task runs, so no send races a worker that dies mid-search, and
        to every worker, so one dead worker loses no data. (dask's Active Memory Manager
        may later trim replicas; data lost with a worker is then sent again.)
        """
        from dask.sizeof import sizeof

        if items:
            calls = [FitCall.of(item) for item in items]
            check_picklable(calls[0].estimator, [c.candidate_params for c in calls],
                            where=f"the Dask workers of {self._address}")
        todo: dict[int, object] = {}
        for obj in _call_data(items):
            if isinstance(obj, OnCluster) or id(obj) in todo or id(obj) in self._scattered:
                continue
            if _data_leaf(obj) and sizeof(obj) >= SCATTER_MIN_BYTES:
                todo[id(obj)] = obj
        if not todo:
            return
        objs = list(todo.values())
        futures = self._scatter(objs, broadcast=True)
        with self._lock:
            for obj, future in zip(objs, futures):
                self._scattered[id(obj)] = (obj, future)

    def _share(self, obj):
        """``pack``'s ``share``: the future standing for ``obj`` in a task, or None (it
        travels inside the task's pickle). Data leaves (``_data_leaf``) once, by
        identity; data kept on the cluster as the future of its assembled copy. Called
        for every object a task pickles: the common answers come first."""
        if isinstance(obj, _ATOMS):
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
        if not _data_leaf(obj):
            return None
        from dask.sizeof import sizeof

        if sizeof(obj) < SCATTER_MIN_BYTES:
            self._small[key] = obj  # the strong ref keeps id(obj) unique
            return None
        (future,) = self._scatter([obj])
        with self._lock:
            self._scattered[key] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    def retain(self, items):
        """Another joblib call: keep the data it passes again unchanged (same object,
        same content token), release the rest; a block then holds one call's data at a
        time, as a search does."""
        from dask.base import tokenize

        passed = {id(obj) for obj in _call_data(items)}
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

    def _scatter(self, objs, broadcast=False):
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
            try:
                futures = _bounded(
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
            f"({SCATTER_TRIES} tries of {SCATTER_TIMEOUT:.0f} s; last: "
            f"{type(last).__name__}: {last})."
        ) from last

    def _forget_lost_data(self):
        # Which copies died is the scheduler's knowledge, and asking races further
        # deaths; sending everything again once is simple and certain.
        with self._lock:
            self._scattered = {}

    @property
    def slots(self) -> int:
        """Units that run at once: n_jobs, or the cluster's threads now (read at most
        once a second, so workers that join get work and retired ones stop counting)."""
        if self._fixed_slots:
            return self._fixed_slots
        now = time.monotonic()
        if now - self._threads_read > 1.0 and self.client.status == "running":
            self._threads_read = now
            try:
                threads = sum(_bounded(self.client.nthreads, SCHEDULER_GRACE).values())
            except Exception:
                threads = 0
            self._threads = threads or self._threads
        return self._threads

    def submit(self, kind, items, avoid=None):
        """Run a unit; ``avoid``: a running unit's future, whose worker this copy avoids
        (None is returned when there is no other worker)."""
        workers = None
        if avoid is not None:
            workers = self._other_workers(avoid)
            if not workers:
                return None
        result: cf.Future = cf.Future()
        copy_of = getattr(avoid, "distsk_key", None) if avoid is not None else None
        self._send(kind, items, result, attempts=MAX_RESUBMITS, workers=workers,
                   copy_of=copy_of)
        return result

    def _other_workers(self, result):
        key = getattr(result, "distsk_key", None)
        try:
            processing = _bounded(self.client.processing, SCHEDULER_GRACE)
        except Exception:
            return None
        return [w for w, keys in processing.items() if key not in keys]

    def discard(self, result):
        """Drop a unit whose copy's result is already in (its task is cancelled)."""
        result.cancel()
        with self._lock:
            future = self._pending.pop(getattr(result, "distsk_key", None), None)
        if future is not None and self.client.status == "running":
            future.cancel()

    def submit_many(self, units):
        """Start several units with one message to the scheduler."""
        results = [cf.Future() for _ in units]
        self._send_many([(kind, items, result)
                         for (kind, items), result in zip(units, results)], MAX_RESUBMITS)
        return results

    def _send(self, kind, items, result, attempts, *, isolated=False,
              confirmations=KILLED_CONFIRMATIONS, workers=None, copy_of=None):
        """Run ``items`` as one task; ``isolated``: in a child process of the worker;
        ``copy_of``: the key of the running unit this one copies (a straggler's)."""
        self._send_many([(kind, items, result)], attempts, isolated=isolated,
                        confirmations=confirmations, workers=workers, copy_of=copy_of)

    def _send_many(self, sends, attempts, *, isolated=False,
                   confirmations=KILLED_CONFIRMATIONS, workers=None, copy_of=None):
        """Run each ``(kind, items, result)`` of ``sends`` as one task. A straggler's
        copy is keyed after it (``COPY_SUFFIX``): it takes the fits the straggler has
        finished from its kept fits instead of fitting them again."""
        func = run_suspect if isolated else run_batch
        args, keys = [], []
        for kind, items, _ in sends:
            blob, data = pack(items, share=self._share, same_estimators=True)
            args.append((kind, blob, data, wants_stdout(items), self._topic))
            # One random id per search, a counter per task (uuid4 per task read
            # urandom once per task: measurable at thousands of tasks a second).
            keys.append(f"{copy_of}{COPY_SUFFIX}" if copy_of and len(sends) == 1 else
                        f"distsk-{'suspect' if isolated else 'batch'}-{kind}-{len(items)}-"
                        f"{self._id}-{next(self._counter)}")
        if len(sends) == 1:
            futures = [self.client.submit(func, *args[0], key=keys[0], pure=False,
                                          workers=workers,
                                          allow_other_workers=workers is not None)]
        else:
            # One graph, one message: client.submit sends one message per task (and
            # the scheduler handles one graph update per message), measured at over
            # 1 ms of client time per task on 64 slots.
            futures = self.client.map(func, *zip(*args), key=keys, pure=False,
                                      workers=workers,
                                      allow_other_workers=workers is not None)
        for (kind, items, result), key, future in zip(sends, keys, futures):
            self._watch(kind, items, result, attempts, isolated, confirmations, workers,
                        key, future)

    def _watch(self, kind, items, result, attempts, isolated, confirmations, workers,
               key, future):
        """Hand ``future``'s outcome to ``result``, sending the unit again if its
        inputs were lost, and isolating it if it kills workers."""
        result.distsk_key = key
        with self._lock:
            self._pending[key] = future

        def again(**how):
            if attempts <= 0 or self._closing or self.client.status != "running":
                return False
            self.resubmitted += 1
            try:
                self._forget_lost_data()
                self._send(kind, items, result, attempts - 1, workers=workers, **how)
            except BaseException as err:
                result.set_exception(err)
            return True

        def done(fut, gathered=None):
            with self._lock:
                self._pending.pop(fut.key, None)
            if result.cancelled():
                return
            if gathered is None and fut.status == "finished":
                # Fetched with others: distributed runs done-callbacks on one thread,
                # and one blocking fetch each made results arrive one round trip at a
                # time (3 s after the last of 223 units had finished, on 64 slots).
                self._gather_later(fut, done)
                return
            try:
                if fut.status == "cancelled":
                    raise FutureCancelledError(fut.key, reason="lost dependencies")
                if isinstance(gathered, tuple):
                    outcome = gathered[0]
                else:
                    outcome = fut.result(timeout=RESULT_TIMEOUT)
            except KilledWorker as exc:
                if not isolated:
                    self._isolate(items, result)
                elif not again(isolated=True, confirmations=confirmations):
                    # A child ran the fit, yet the worker kept dying: not this fit's doing.
                    result.set_exception(exc)
            except FutureCancelledError as exc:
                # Cancelled, not failed: its inputs died with a worker. Send them again;
                # if that keeps happening, its worker keeps dying while it runs there,
                # taking the inputs with it (lost inputs, not KilledWorker): a suspect.
                if not isolated and MAX_RESUBMITS - attempts >= LOSSES_AS_KILLS:
                    self._isolate(items, result)
                elif not again(isolated=isolated, confirmations=confirmations):
                    result.set_exception(exc)
            except BaseException as exc:
                result.set_exception(_without_local_frames(exc))
            else:
                if isinstance(outcome, ChildDied):
                    try:
                        if confirmations > 0:
                            self._send(kind, items, result, attempts, isolated=True,
                                       confirmations=confirmations - 1)
                        else:
                            self._convict(items[0], outcome, result)
                    except BaseException as err:
                        result.set_exception(err)
                    return
                self._events_sent += outcome.events_sent
                result.set_result(outcome)

        future.add_done_callback(done)

    _gather_thread = None

    def _gather_later(self, fut, done):
        """Queue a finished unit's result; a thread fetches all queued ones at once."""
        with self._lock:
            if self._gather_thread is None:
                self._arrived, self._arrival = [], threading.Event()
                self._gather_thread = threading.Thread(
                    target=self._gather_loop, name="distsk-gather", daemon=True)
                self._gather_thread.start()
            self._arrived.append((fut, done))
        self._arrival.set()

    def _gather_loop(self):
        while True:
            self._arrival.wait(timeout=1.0)
            self._arrival.clear()
            with self._lock:
                batch, self._arrived = self._arrived, []
            if not batch:
                if self._closing:
                    return
                continue
            futures = [fut for fut, _ in batch]
            try:
                outcomes = _bounded(functools.partial(self.client.gather, futures),
                                    RESULT_TIMEOUT)
            except BaseException:
                outcomes = None  # one was lost meanwhile: each on its own path
            for i, (fut, done) in enumerate(batch):
                done(fut, (outcomes[i],) if outcomes is not None else "singly")
            del batch, futures, fut, outcomes  # release the futures now, not next time

    def _isolate(self, items, result):
        """Workers died while ``items`` ran: run each fit alone, in a child process.

        A fit merely running beside the culprit on a dying worker (the scheduler blames
        every task of a dead worker) then finishes and keeps its result; the culprit
        kills only its child, twice, and ends as that candidate's ``error_score``.
        """
        parts = []
        for item in items:
            part: cf.Future = cf.Future()
            try:
                self._send("single", [item], part, MAX_RESUBMITS, isolated=True)
            except BaseException as err:
                part.set_exception(err)
            parts.append(part)

        def collect(_):
            if not all(p.done() for p in parts) or result.done():
                return
            try:
                outs = [p.result() for p in parts]
            except BaseException as err:
                result.set_exception(err)
                return
            result.set_result(merged(outs))

        for p in parts:
            p.add_done_callback(collect)

    def _convict(self, item, died, result):
        try:
            result.set_result(convicted(item, died))
        except BaseException as err:  # error_score="raise"
            result.set_exception(err)

    def check(self):
        """Raise if the scheduler has stopped answering for longer than the grace time."""
        status = self.client.status
        if status == "running":
            self._lost_since = None
            return
        now = time.monotonic()
        self._lost_since = self._lost_since or now
        if status in ("closed", "closing") or now - self._lost_since > SCHEDULER_GRACE:
            raise ClusterUnavailableError(
                f"The Dask scheduler at {self._address} stopped answering during the search "
                f"(client status {status!r} for {now - self._lost_since:.0f} s)."
            )

    _lost_since = None

    _closing = False

    def cancel(self):
        self._closing = True
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        if pending and self.client.status == "running":
            self.client.cancel(pending)

    def lost(self, exc) -> str | None:
        """Why the cluster is gone, if ``exc`` came from losing it; else None."""
        if isinstance(exc, ClusterUnavailableError):
            return str(exc)
        if self.client.status != "running" or (
            isinstance(exc, (OSError, TimeoutError)) and not self._answers()
        ):
            return (
                f"The Dask scheduler at {self._address} stopped answering during the search "
                f"({type(exc).__name__}: {exc})."
            )
        return None

    def _answers(self, timeout: float = 5.0) -> bool:
        try:
            _bounded(self.client.scheduler_info, timeout)
        except Exception:
            return False
        return self.client.status == "running"

    def _deliver(self, event):
        from .._compat import callback_transport as transport

        _, msg = event
        try:
            transport.send(transport.ListenerHandle(msg["address"], b""),
                           pickle.loads(msg["message"]))
        finally:
            self._events_received += 1

    def flush(self, timeout: float = 10.0):
        """Wait until every callback event sent by finished units has been delivered."""
        deadline = time.monotonic() + timeout
        while self._events_received < self._events_sent and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self._topic)
        self.cancel()
        if self.client.status == "running":
            # The fits batches kept on the scheduler for re-runs (_worker._run_fits_kept).
            with contextlib.suppress(Exception):
                _bounded(functools.partial(self.client.run_on_scheduler, drop_topics,
                                           kept_topic(self._topic, "")), 5.0)
        with self._lock:
            scattered, self._scattered = [f for _, f in self._scattered.values()], {}
            self._small = {}
        for f in scattered:
            f.release()


def _bounded(func, timeout):
    """``func()``, abandoned (not waited for) if it takes longer than ``timeout`` s."""
    pool = cf.ThreadPoolExecutor(1)
    try:
        return pool.submit(func).result(timeout=timeout)
    finally:
        pool.shutdown(wait=False)
