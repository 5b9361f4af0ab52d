"""Cluster engine: in-memory data, fits on Dask workers through futures.

Strategies (chosen by the planner): ``split-forest`` (sub-forests on the workers, merged
into the exact forest a local fit gives), ``joblib-dask`` (the estimator's own joblib
loops on the cluster), ``single-task`` (the whole fit as one task). Searches use
:class:`DaskRunner`, which sends each large argument to every worker once
(``dask_data``), runs units of search work as Dask tasks with inner parallelism pinned,
and streams each fit back as it ends (``dask_events``).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import itertools
import threading
import time
import uuid
from dataclasses import dataclass, replace

import numpy as np
from distributed import KilledWorker
from distributed.client import FutureCancelledError
from joblib import parallel_config
from sklearn.base import clone

from .._units.fit_call import FitCall
from .._units.remote import call, drop_topics, pack, run_batch, run_suspect
from .._units.worker import (
    COPY_SUFFIX,
    ChildDied,
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
from .child import KILLED_CONFIRMATIONS, convicted, fit_by_fit
from .dask_data import (
    RESULT_TIMEOUT,
    SentData,
    bounded,
    broadcaster,
)
from .dask_events import EventRelay, Gatherer, Late

__all__ = ["DaskExecutor", "DaskRunner"]

#: Times a batch whose scattered inputs were lost is sent again.
MAX_RESUBMITS = 10
#: Consecutive input losses of one unit taken as its own doing (like KilledWorker).
LOSSES_AS_KILLS = 3
#: Seconds a search waits for a scheduler that stopped answering before giving up.
SCHEDULER_GRACE = 10.0


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
        data, share = [X, y, fit_params], broadcaster(client)
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


def _apart(client, key) -> tuple[list | None, list | None]:
    """``(workers not running the task key, workers running it)``."""
    try:
        processing = bounded(client.processing, SCHEDULER_GRACE)
    except Exception:
        return None, None
    return ([w for w, keys in processing.items() if key not in keys],
            [w for w, keys in processing.items() if key in keys])


@dataclass
class _Task:
    """A unit sent as one Dask task, and how it is to be run if sent again."""

    kind: str
    items: list
    result: cf.Future  # the unit's future, as the engine holds it
    attempts: int = MAX_RESUBMITS
    isolated: bool = False  # in a child process of the worker
    confirmations: int = KILLED_CONFIRMATIONS
    workers: list | None = None
    rerun: bool = False  # run again because its first run's result was late


class DaskRunner(Runner):
    """Units of search work as Dask tasks.

    Every data argument over ``SCATTER_MIN_BYTES`` (X, y, fit parameters' arrays, each
    fold's train and test indices; see ``dask_data.data_leaf``) is scattered to all
    workers once per search, keyed by identity (:class:`SentData`); a task's one pickle
    carries its future in its place, wherever the call refers to it. The scheduler
    re-runs the tasks of a worker that dies; when the dead worker held the last copy of
    scattered data, the unit is cancelled for "lost dependencies", and is sent again
    with its data. A unit whose worker keeps dying is run fit by fit in child
    processes of the workers (``_isolate``).

    Streams: a batch logs each finished fit as a Dask event (``_run_fits_kept``), which
    :class:`EventRelay` hands to ``report``; a unit the engine drops is cancelled, and
    a batch stops before its next fit once its task is cancelled.
    """

    remote = True
    speculates = True
    reusable = True
    streams = True

    def __init__(self, client, slots: int | None = None):
        self.client = client
        self._id = uuid.uuid4().hex
        self._counter = itertools.count()
        self._topic = f"distsk-callbacks-{self._id}"
        self.events = EventRelay(client, self._topic, self)
        self._threads = _Threads(client, slots)
        if self._threads.count == 0:
            raise ClusterUnavailableError(
                f"The Dask cluster at {client.scheduler.address} has no workers. "
                "Start workers (`dask worker <address>`) or use backend='loky'."
            )
        self._address = client.scheduler.address
        self.data = SentData(client, self._address)
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self._gatherer = Gatherer(client, lambda: self._closing)
        self.resubmitted = 0

    # What was sent ahead (tests count it); ``kept`` is set by the joblib backend.
    sent = property(lambda self: self.data.sent)
    tokens = property(lambda self: self.data.tokens)
    _scattered = property(lambda self: self.data._scattered)
    kept = property(lambda self: self.data.kept,
                    lambda self, value: setattr(self.data, "kept", value))

    def prepare(self, items):
        """Check that ``items`` can travel, and scatter their large arguments now."""
        if items:
            calls = [FitCall.of(item) for item in items]
            check_picklable(calls[0].estimator, [c.candidate_params for c in calls],
                            where=f"the Dask workers of {self._address}")
        self.data.send_ahead(items)

    def retain(self, items):
        self.data.retain(items)

    slots = property(lambda self: self._threads.now(), doc="Units that run at once.")

    def submit(self, kind, items, avoid=None):
        """Run a unit; ``avoid``: a running unit's future, whose worker this copy avoids
        (None is returned when there is no other worker)."""
        workers = share = None
        if avoid is not None:
            workers, avoided = _apart(self.client, getattr(avoid, "distsk_key", None))
            if not workers:
                return None
            # The straggler's worker may be cut off, with the only copy of some of the
            # unit's data (fold indices are sent to one worker): not waited on.
            share = self.data.avoiding(avoided, workers)
        result: cf.Future = cf.Future()
        copy_of = getattr(avoid, "distsk_key", None) if avoid is not None else None
        self._send_many([_Task(kind, items, result, workers=workers)], copy_of=copy_of,
                        share=share)
        return result

    def discard(self, result):
        """Drop a unit (its copy's result is in, or the search stopped): its task is
        cancelled, and a running batch stops before its next fit."""
        result.cancel()
        with self._lock:
            future = self._pending.pop(getattr(result, "distsk_key", None), None)
        if future is not None and self.client.status == "running":
            future.cancel()

    def submit_many(self, units):
        """Start several units with one message to the scheduler."""
        results = [cf.Future() for _ in units]
        self._send_many([_Task(kind, items, result)
                         for (kind, items), result in zip(units, results)])
        return results

    def _send_many(self, tasks: list[_Task], copy_of=None, share=None):
        """Run each task as one Dask task. A straggler's copy is keyed after it
        (``COPY_SUFFIX``): it takes the fits the straggler has finished from its kept
        fits instead of fitting them again."""
        args, keys = [], []
        for task in tasks:
            blob, data = pack(task.items, share=share or self.data.share,
                              same_estimators=True)
            args.append((task.kind, blob, data, wants_stdout(task.items), self._topic))
            # One random id per search, a counter per task (uuid4 per task read
            # urandom once per task: measurable at thousands of tasks a second).
            keys.append(f"{copy_of}{COPY_SUFFIX}" if copy_of and len(tasks) == 1 else
                        f"distsk-{'suspect' if task.isolated else 'batch'}-{task.kind}-"
                        f"{len(task.items)}-{self._id}-{next(self._counter)}")
        func = run_suspect if tasks[0].isolated else run_batch
        workers = tasks[0].workers
        if len(tasks) == 1:
            futures = [self.client.submit(func, *args[0], key=keys[0], pure=False,
                                          workers=workers,
                                          allow_other_workers=workers is not None)]
        else:
            # One graph, one message: client.submit sends one message per task (and
            # the scheduler handles one graph update per message), measured at over
            # 1 ms of client time per task on 64 slots.
            futures = self.client.map(func, *zip(*args), key=keys, pure=False)
        for task, key, future in zip(tasks, keys, futures):
            self._watch(task, key, future)

    def _watch(self, task: _Task, key: str, future) -> None:
        """Hand ``future``'s outcome to the unit's future (:meth:`_done`)."""
        task.result.distsk_key = key
        with self._lock:
            self._pending[key] = future
        self.events.watch(key, task.items)
        future.add_done_callback(functools.partial(self._done, task))

    def _done(self, task: _Task, fut, gathered=None):
        """A task ended: its result to the unit's future, or the unit sent again if
        its inputs were lost, or isolated if it kills workers."""
        if isinstance(gathered, Late):
            self._run_elsewhere(task, fut, gathered)
            return
        with self._lock:
            self._pending.pop(fut.key, None)
        if task.result.done():  # dropped, or a re-run's result came first
            self.events.forget(fut.key)
            return
        if gathered is None and fut.status == "finished":
            # Fetched with others (``Gatherer``).
            self._gatherer.later(fut, functools.partial(self._done, task))
            return
        self.events.forget(fut.key)
        if task.rerun:  # only its result counts: a failure leaves it to the first run
            try:
                outcome = (gathered[0] if isinstance(gathered, tuple)
                           else fut.result(timeout=RESULT_TIMEOUT))
            except BaseException:
                return
            self._finished(task, outcome)
            return
        try:
            if fut.status == "cancelled":
                raise FutureCancelledError(fut.key, reason="lost dependencies")
            outcome = (gathered[0] if isinstance(gathered, tuple)
                       else fut.result(timeout=RESULT_TIMEOUT))
        except KilledWorker as exc:
            if not task.isolated:
                self._isolate(task.items, task.result)
            elif not self._again(task, isolated=True):
                # A child ran the fit, yet the worker kept dying: not this fit's doing.
                task.result.set_exception(exc)
        except FutureCancelledError as exc:
            # Cancelled, not failed: its inputs died with a worker. Send them again;
            # if that keeps happening, its worker keeps dying while it runs there,
            # taking the inputs with it (lost inputs, not KilledWorker): a suspect.
            if not task.isolated and MAX_RESUBMITS - task.attempts >= LOSSES_AS_KILLS:
                self._isolate(task.items, task.result)
            elif not self._again(task):
                task.result.set_exception(exc)
        except BaseException as exc:
            task.result.set_exception(_without_local_frames(exc))
        else:
            self._finished(task, outcome)

    def _again(self, task: _Task, **how) -> bool:
        """Send ``task`` again (its inputs too), if attempts remain."""
        if task.attempts <= 0 or self._closing or self.client.status != "running":
            return False
        self.resubmitted += 1
        try:
            self.data.forget()
            self._send_many([replace(task, attempts=task.attempts - 1, **how)])
        except BaseException as err:
            task.result.set_exception(err)
        return True

    def _run_elsewhere(self, task: _Task, fut, holders) -> None:
        """A finished unit's result is late from ``holders`` (``Late``): its worker may
        be cut off, which Dask notices only after its TCP timeout. Run the unit again on
        another worker, once, as the scheduler would then: keyed as a copy, it takes the
        fits its first run kept; the first result to arrive is taken."""
        if task.result.done() or task.rerun or self._closing:
            return
        try:
            workers = bounded(self.client.scheduler_info, SCHEDULER_GRACE)["workers"]
        except Exception:
            return
        others = [w for w in workers if w not in holders]
        if not others:
            return
        self.resubmitted += 1
        try:
            # Its data too may be held only there: what is not also elsewhere goes again.
            self._send_many([replace(task, workers=others, rerun=True)],
                            copy_of=f"{fut.key}{COPY_SUFFIX}-late",
                            share=self.data.avoiding(holders, others))
        except BaseException:
            pass  # the fetch goes on: its outcome (or Dask's re-run) still comes

    def _finished(self, task: _Task, outcome):
        if isinstance(outcome, ChildDied):
            try:
                if task.confirmations > 0:
                    self._send_many([replace(task, isolated=True, workers=None,
                                             confirmations=task.confirmations - 1)])
                else:
                    task.result.set_result(convicted(task.items[0], outcome))
            except BaseException as err:  # error_score="raise"
                task.result.set_exception(err)
            return
        with self._lock:  # results are fetched on several threads; the first counts
            if task.result.done() or getattr(task.result, "distsk_settled", False):
                return  # a re-run's (or its first run's) result came first
            self.events.sent += outcome.events_sent
            task.result.distsk_settled = True
        task.result.set_result(outcome)

    def _isolate(self, items, result):
        """Workers died while ``items`` ran: run each fit alone, in a child process.

        A fit merely running beside the culprit on a dying worker (the scheduler blames
        every task of a dead worker) then finishes and keeps its result; the culprit
        kills only its child, twice, and ends as that candidate's ``error_score``. Each
        fit is streamed as its child ends.
        """
        fit_by_fit(items, result, lambda item, part: self._send_many(
            [_Task("single", [item], part, isolated=True)]), lambda: self.report)

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
            isinstance(exc, (OSError, TimeoutError)) and not _answers(self.client)
        ):
            return (
                f"The Dask scheduler at {self._address} stopped answering during the search "
                f"({type(exc).__name__}: {exc})."
            )
        return None

    def flush(self, timeout: float = 10.0):
        """Wait until every callback event sent by finished units has been delivered."""
        self.events.flush(timeout)

    def close(self):
        self.events.close()
        self.cancel()
        if self.client.status == "running":
            # The fits batches kept on the scheduler for re-runs, and the result
            # stream's copies of them (_units/worker._run_fits_kept): f"{topic}-...".
            with contextlib.suppress(Exception):
                bounded(functools.partial(self.client.run_on_scheduler, drop_topics,
                                          f"{self._topic}-"), 5.0)
        self.data.release()


class _Threads:
    """Units that run at once: n_jobs (``fixed``), or the cluster's threads now (read at
    most once a second, so workers that join get work and retired ones stop counting)."""

    def __init__(self, client, fixed: int | None):
        self.client, self.fixed = client, fixed
        self.count, self.read = sum(client.nthreads().values()), time.monotonic()

    def now(self) -> int:
        if self.fixed:
            return self.fixed
        now = time.monotonic()
        if now - self.read > 1.0 and self.client.status == "running":
            self.read = now
            try:
                threads = sum(bounded(self.client.nthreads, SCHEDULER_GRACE).values())
            except Exception:
                threads = 0
            self.count = threads or self.count
        return self.count


def _answers(client, timeout: float = 5.0) -> bool:
    """Whether the scheduler answers within ``timeout`` s."""
    try:
        bounded(client.scheduler_info, timeout)
    except Exception:
        return False
    return client.status == "running"
