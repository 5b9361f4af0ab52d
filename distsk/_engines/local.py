"""In-process and loky engines: the estimator runs here, as plain sklearn would."""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import uuid
from concurrent.futures.process import BrokenProcessPool

from joblib import Parallel

from .._compat import LokyBackend, get_memmapping_executor
from .._units.fit_call import FitCall
from .._units.stream import FitListener
from .._units.worker import (
    ChildDied,
    UnitResult,
    merged,
    pinned,
    run_in_child,
    run_unit_remote,
    wants_stdout,
)
from .base import (
    ExecutionContext,
    Executor,
    InProcessRunner,
    Runner,
    check_picklable,
    fit_estimator,
)
from .child import KILLED_CONFIRMATIONS, convicted

__all__ = ["SequentialExecutor", "LokyExecutor", "LokyRunner"]


class SequentialExecutor(Executor):
    """Fit in this process on one core: the estimator's own n_jobs is overridden."""

    name = "sequential"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        with pinned():
            return fit_estimator(estimator, X, y, fit_params)

    def search_runner(self, ctx):
        return InProcessRunner()


class LokyRunner(Runner):
    """Units of search work on joblib's reusable loky processes.

    The same executor sklearn's own ``n_jobs`` uses (same size, same environment), so a
    warm pool is shared; large arrays are memory-mapped once, not pickled per task. Each
    unit runs its fits' joblib loops sequentially: the units already fill every core.

    Streams: a unit sends each fit as it ends to a listener in this process (a local
    socket, ``_units/stream.py``), whose answer stops a unit the engine no longer wants.
    """

    remote = True
    streams = True

    def __init__(self, n_workers: int):
        self.slots = n_workers
        self._context = f"distsk-{uuid.uuid4().hex}"
        # The executor arguments a default Parallel(n_jobs) passes (max_nbytes, mmap_mode,
        # verbose, context): joblib restarts the shared loky pool whenever they differ.
        kwargs = {k: v for k, v in Parallel(n_jobs=n_workers)._backend_kwargs.items()
                  if k not in ("prefer", "require")}
        self._executor_args = dict(
            timeout=300, env=LokyBackend()._prepare_worker_env(n_jobs=n_workers),
            context_id=self._context, **kwargs,
        )
        self._executor = get_memmapping_executor(n_workers, **self._executor_args)
        self._futures = set()
        # Units whose pool broke under them are tried again in child processes, here.
        self._suspects = cf.ThreadPoolExecutor(max(1, n_workers), "distsk-suspects")
        self._closing = False
        self._listener: FitListener | None = None
        self._ids = itertools.count()
        self._lock = threading.Lock()
        #: Streaming units still wanted: their id -> the items passed to ``submit``.
        self._streaming: dict[int, list] = {}
        #: A unit's result future -> (its loky future, its stream id or None).
        self._running: dict[cf.Future, tuple] = {}

    def prepare(self, items):
        if items:
            calls = [FitCall.of(item) for item in items]
            check_picklable(calls[0].estimator, [c.candidate_params for c in calls],
                            where="loky worker processes")

    def submit(self, kind, items, avoid=None):
        result: cf.Future = cf.Future()
        if self._executor._flags.broken:  # a fit killed a worker: loky makes a new pool
            self._executor = get_memmapping_executor(self.slots, **self._executor_args)
        unit, stream = self._stream(items)
        call = _UnitCall(kind, items, wants_stdout(items),
                         self._executor._temp_folder_manager, self._context, stream)
        future = self._executor.submit(call)
        self._futures.add(future)
        with self._lock:
            self._running[result] = (future, unit)

        def done(fut):
            self._futures.discard(fut)
            if result.cancelled() or fut.cancelled():
                self._forget(result)
                result.cancel()
                return
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool) and not self._closing:
                # A worker process died (killed, out of memory, a crash) and took the pool
                # with it: every running unit fails alike. Each is run again in a child
                # process of its own, where a bystander finishes and a culprit kills only
                # its child (then its fits are tried alone, and convicted: error_score).
                self._suspects.submit(self._isolate, kind, items, result, stream)
                return
            self._forget(result)
            if exc is not None:
                result.set_exception(exc)
            else:
                result.set_result(fut.result())

        future.add_done_callback(done)
        return result

    def _stream(self, items):
        """A stream id and address for a unit, if the engine listens (else Nones)."""
        if self.report is None or self._closing:
            return None, None
        with self._lock:
            if self._listener is None:
                self._listener = FitListener(self._deliver)
            unit = next(self._ids)
            self._streaming[unit] = items
        return unit, self._listener.at(unit)

    def _deliver(self, unit, i, result) -> bool:
        """A fit sent by a unit (a listener thread): handed to the engine; False when
        the unit is no longer wanted."""
        items = self._streaming.get(unit)
        if items is None:
            return False
        report = self.report
        return report is None or report(items, i, result) is not False

    def _forget(self, result):
        with self._lock:
            _, unit = self._running.pop(result, (None, None))
            self._streaming.pop(unit, None)

    def _isolate(self, kind, items, result, stream):
        """Run a unit whose loky pool broke: whole in a child process, then fit by fit."""
        try:
            result.set_result(_in_children(kind, items, stream))
        except BaseException as exc:
            result.set_exception(exc)
        finally:
            self._forget(result)

    def discard(self, future):
        """Drop a unit: cancelled if it has not started, else stopped at its next fit."""
        future.cancel()
        with self._lock:
            loky_future, unit = self._running.get(future, (None, None))
            self._streaming.pop(unit, None)
        if loky_future is not None:
            loky_future.cancel()

    def cancel(self):
        with self._lock:
            self._streaming.clear()
        for future in list(self._futures):
            future.cancel()

    def close(self):
        self._closing = True
        self._suspects.shutdown(wait=False, cancel_futures=True)
        if self._listener is not None:
            self._listener.close()
        self._executor._temp_folder_manager._clean_temporary_resources(
            context_id=self._context, force=False
        )


def _in_children(kind, items, stream=None):
    capture = wants_stdout(items)
    outcome = run_in_child(kind, items, capture, stream)  # usually a bystander: one child
    if not isinstance(outcome, ChildDied):
        return _delivered(outcome)
    outcomes = []
    for item in items:  # the culprit is among these fits: each alone, twice if it dies
        for _ in range(1 + KILLED_CONFIRMATIONS):
            outcome = run_in_child("single", [item], capture)
            if not isinstance(outcome, ChildDied):
                break
        outcomes.append(convicted(item, outcome) if isinstance(outcome, ChildDied)
                        else _delivered(outcome))
    return merged(outcomes)


def _delivered(outcome: UnitResult) -> UnitResult:
    """A child's outcome, its callback events delivered here as sklearn would have."""
    from .._compat import callback_transport as transport

    for address, message in outcome.messages:
        transport.send(transport.ListenerHandle(address, b""), message)
    return outcome._replace(messages=())


class LokyExecutor(Executor):
    """Fit in this process with the estimator's own ``n_jobs`` honoured (joblib default)."""

    name = "loky"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        # No backend is forced: the estimator's prefer= hint picks threads or loky
        # processes, exactly as plain sklearn would.
        return fit_estimator(estimator, X, y, fit_params)

    def search_runner(self, ctx):
        return LokyRunner(max(1, int(ctx.plan.n_jobs or 1)))


class _UnitCall:
    """One unit of search work, pickled for loky under this search's memmap context.

    The executor is shared with every other joblib user; large arrays are memory-mapped
    into the folder of the *current* context, which joblib's own batches set as they are
    pickled. This does the same, so our arrays never land in a context already cleaned.
    ``stream``: where the unit reports each fit as it ends (``_units/stream.py``).
    """

    def __init__(self, kind, items, capture, manager=None, context=None, stream=None):
        self.kind, self.items, self.capture = kind, items, capture
        self._manager, self._context, self.stream = manager, context, stream

    def __reduce__(self):
        if self._manager is not None:
            self._manager.set_current_context(self._context)
        return (_UnitCall, (self.kind, self.items, self.capture, None, None, self.stream))

    def __call__(self):
        return run_unit_remote(self.kind, self.items, self.capture, self.stream)
