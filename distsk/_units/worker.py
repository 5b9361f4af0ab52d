"""The worker side of a search: what runs where the fits run.

A loky worker, a Dask worker, or a child process of either (``python -m distsk._units.worker
IN OUT``) runs a unit of search work here: pinned to one core, its warnings and prints
kept, its sklearn callback events forwarded (as Dask events from a Dask worker, kept
for the parent by a child process). The caller side -- runners, executors -- is in
``_engines``, which imports this module and never the other way round; ``_remote``
(the task functions a Dask scheduler unpickles) imports it only on the worker.

Child-process protocol: ``IN`` holds the pickled ``(kind, tasks, capture_stdout,
stream)``; the child writes ``("ok", UnitResult)`` (its ``messages``: the sklearn
callback messages kept for the parent) or ``("raised", exception)`` to ``OUT``. No
``OUT`` file means the child died.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
import threading
import time
import warnings
from typing import NamedTuple

from joblib import parallel_config

__all__ = [
    "COPY_SUFFIX", "UnitResult", "merged", "pinned", "run_recording", "run_unit_remote",
    "wants_stdout", "ChildDied", "run_in_child", "run_unit_on_worker", "run_unit_isolated", "main",
    "stream_topic",
]


# ------------------------------------------------------------------------ results
class UnitResult(NamedTuple):
    """What running one unit of search work gives back, on every route.

    The same type whether the unit ran in this process, in a loky worker, in a Dask
    task or in a child process of either; fields a route has no use for keep their
    defaults.
    """

    #: One ``_fit_and_score`` result dict per item of the unit, in order.
    results: list
    #: Full fits made (a shared pipeline prefix or a shared large ensemble is one).
    n_fits: int
    #: ``(message, category)`` of the warnings raised where the fits ran, to re-emit.
    warnings: list = ()  # type: ignore[assignment]
    #: What the fits printed (``verbose > 1``), to print in the caller.
    printed: str = ""
    #: sklearn callback events sent as Dask events, which the client waits for.
    events_sent: int = 0
    #: ``(address, message)`` callback messages a child process kept for its parent to
    #: deliver (empty once delivered).
    messages: list = ()  # type: ignore[assignment]


def merged(outcomes) -> UnitResult:
    """One unit's result from the results of its fits run one by one."""
    return UnitResult(
        [r for o in outcomes for r in o.results], sum(o.n_fits for o in outcomes),
        [w for o in outcomes for w in o.warnings], "".join(o.printed for o in outcomes),
        sum(o.events_sent for o in outcomes), [m for o in outcomes for m in o.messages],
    )


# ------------------------------------------------------------------------ one core
@contextlib.contextmanager
def pinned():
    """One core: joblib loops run sequentially and native thread pools (OpenMP, BLAS)
    use one thread, inside a task (no nested oversubscription) and for "sequential"."""
    with parallel_config(backend="sequential"):
        openmp = _one_thread.enter()
        try:
            yield
        finally:
            _one_thread.leave(openmp)


class _OneThread:
    """Native thread pools limited to one thread while a pinned() block runs.

    OpenMP's thread count belongs to the calling thread: each block limits its own.
    BLAS limits (OpenBLAS, MKL, BLIS) are process-wide, so concurrent blocks (Dask
    worker threads) share one: the first in sets it, the last out restores the
    original. threadpoolctl's scan of the loaded libraries (~20 ms) is kept until a
    module is imported (which may load a new library); a limit costs under a millisecond.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._blas = None
        self._controller = None
        self._n_modules = -1

    def enter(self):
        with self._lock:
            if self._controller is None or self._n_modules != len(sys.modules):
                from threadpoolctl import ThreadpoolController

                self._controller = ThreadpoolController()
                self._n_modules = len(sys.modules)
            controller = self._controller
            if self._depth == 0:
                self._blas = controller.select(user_api="blas").limit(limits=1)
            self._depth += 1
        return controller.select(user_api="openmp").limit(limits=1)

    def leave(self, openmp):
        openmp.restore_original_limits()
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._blas.restore_original_limits()
                self._blas = None


_one_thread = _OneThread()


def run_recording(func, *args, **kwargs):
    """Run ``func`` pinned, returning ``(result, warnings)`` to re-emit in the caller.

    Used in worker processes, whose warnings are otherwise lost.
    """
    with warnings.catch_warnings(record=True) as caught, pinned():
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    return result, [(w.message, w.category) for w in caught]


def run_unit_remote(kind, items, capture_stdout, stream=None) -> UnitResult:
    """Evaluate one unit of search work in a worker: pinned, warnings and prints kept.

    ``stream`` (a ``StreamAddress``): each finished fit is also sent there as it ends
    (``_units/stream.py``); the unit stops before its next fit if the search says so.
    """
    from .sharing import run_unit

    on_fit = None
    if stream is not None:
        from .stream import send_fit

        def on_fit(i, result):
            send_fit(stream, i, result)

        # A unit queued before the search stopped (loky's workers take queued units
        # ahead) asks first, rather than fit once before it is told.
        send_fit(stream, -1, None)

    out = io.StringIO()
    redirect = contextlib.redirect_stdout(out) if capture_stdout else contextlib.nullcontext()
    with redirect:
        (results, n_fits), recorded = run_recording(run_unit, kind, items, on_fit)
    return UnitResult(results, n_fits, recorded, out.getvalue())


def wants_stdout(items) -> bool:
    from .fit_call import FitCall

    return any(FitCall.of(item).verbose > 1 for item in items)


# ------------------------------------------------------------------------ Dask workers
_current = threading.local()


class _ForwardingConsumers(dict):
    """sklearn's registry of callback message consumers, as seen in a Dask worker.

    A listener opened in another process has no consumer here, so sklearn would connect
    to its socket; inside a distsk task, the message is forwarded as a Dask event.
    """

    def get(self, address, default=None):
        consumer = super().get(address, default)
        topic = getattr(_current, "topic", None)
        if consumer is None and topic is not None:
            return lambda message: _forward(topic, address, message)
        return consumer


def _forward(topic, address, message):
    from distributed import get_worker

    get_worker().log_event(topic, {"address": address, "message": pickle.dumps(message)})
    _current.sent += 1


def run_unit_on_worker(kind, tasks, capture_stdout, topic):
    from .._compat import callback_transport as transport

    if transport is not None and not isinstance(
        transport._message_consumers, _ForwardingConsumers
    ):
        transport._message_consumers = _ForwardingConsumers(transport._message_consumers)
    _current.topic, _current.sent = topic, 0
    try:
        if kind == "single" and len(tasks) > 1:
            outcome = _run_fits_kept(tasks, capture_stdout, topic)
        else:
            outcome = run_unit_remote(kind, tasks, capture_stdout)
        return outcome._replace(events_sent=_current.sent)
    finally:
        _current.topic = None


#: Seconds a batch waits for the scheduler to say which of its fits are already done.
KEPT_TIMEOUT = 10.0
#: A finished fit whose result pickles larger than this (say, with a fitted estimator
#: in it) is not kept on the scheduler: a re-run fits it again.
KEPT_MAX_BYTES = 64_000


def kept_topic(topic: str, key: str) -> str:
    """The Dask event topic where a batch's finished fits are kept; every one of a
    search's starts with ``kept_topic(topic, "")`` (the runner drops them at its end)."""
    return f"{topic}-fits-{key}"


#: The event a batch logs on its topic when it starts: ``(STARTED, worker address)``.
STARTED = -1
#: The key of a straggling batch's copy is the batch's key and this (and maybe more
#: after it: a re-run of a batch whose result could not be fetched): the copy shares
#: the batch's topic of kept fits.
COPY_SUFFIX = "-copy"


def _run_fits_kept(tasks, capture_stdout, topic) -> UnitResult:
    """A batch of independent fits whose finished fits outlive their worker.

    Distributed re-runs elsewhere the tasks still running on a worker that leaves --
    gracefully retired ones too (its retirement waits for data to be copied, not for
    tasks to finish). So a batch logs on its own topic (Dask events: a few microseconds
    of scheduler time, no round trip) that it started and, as each fit but the last
    ends, that fit's result; it reads its topic first (one round trip). A re-run thus
    takes the finished fits instead of fitting again. The fit its retired worker was
    running finishes there (a worker's close waits for its threads) and is sent on a
    connection of its own; the re-run does that fit last, waiting for it if needed. So
    no fit runs twice when a worker is retired; when one dies, its running fit starts
    again (nothing will come from it). Each fit kept is also logged, in the same
    message, on the search's result stream (``stream_topic``): the client stores it
    as it ends.
    """
    from distributed import get_worker

    worker = get_worker()
    batch = _KeptBatch(worker, topic, len(tasks))
    out = io.StringIO()
    redirect = contextlib.redirect_stdout(out) if capture_stdout else contextlib.nullcontext()
    with redirect, warnings.catch_warnings(record=True) as caught, pinned():
        warnings.simplefilter("always")
        for n, i in enumerate(batch.order):
            if n and not _wanted(worker, batch.key):
                raise Abandoned(f"batch {batch.name} stopped after {n} fits: its worker "
                                "is leaving or its task was cancelled")
            if batch.take(n, i):
                continue
            mark, start = len(caught), out.tell()
            batch.ran(n, i, tasks[i], caught, mark, out, start)
    outcomes = batch.outcomes
    return UnitResult(
        [outcomes[i][0] for i in range(len(tasks))], len(tasks),
        [w for i in range(len(tasks)) for w in outcomes[i][1]],
        "".join(outcomes[i][2] for i in range(len(tasks))),
    )


def stream_topic(topic: str) -> str:
    """The Dask event topic of a search's result stream: every fit a batch keeps,
    ``(index, (result, warnings, printed), batch key)``. The runner drops it with the
    kept topics (every topic named ``f"{topic}-..."``)."""
    return f"{topic}-stream"


class _KeptBatch:
    """``_run_fits_kept``'s state: the batch's topics, the order its fits run in, the
    fits kept by an earlier run of it, and the outcomes so far."""

    def __init__(self, worker, topic, n):
        self.worker = worker
        self.key = str(worker.get_current_task())
        self.original = self.key.split(COPY_SUFFIX)[0]  # a copy (or a re-run of one)
        self.name = kept_topic(topic, self.original)
        self.topics = [self.name, stream_topic(topic)]
        self.kept, started = _read_kept(worker, self.name)
        worker.log_event(self.name, pickle.dumps((STARTED, worker.address)))
        self.order, self.awaited = list(range(n)), None
        missing = [i for i in self.order if i not in self.kept]
        self.copy = self.original != self.key
        if self.copy:
            # A straggler's copy: the straggler goes on from the front, this copy from
            # the back, taking what the straggler has finished meanwhile (one read a fit).
            self.order.reverse()
        elif started and missing and _retired(worker, started[-1]):
            self.awaited = missing[0]  # running on the retired worker: it may still come
            self.order = [i for i in self.order if i != self.awaited] + [self.awaited]
        self.outcomes: dict = {}

    def take(self, n, i) -> bool:
        """Whether fit ``i`` (the ``n``-th run) is taken from the kept fits."""
        if i == self.awaited and i not in self.kept:
            self.kept.update(_wait_for(self.worker, self.name, i, self.kept)[0])
        elif self.copy and n and i not in self.kept:
            self.kept.update(_read_kept(self.worker, self.name)[0])
        if i in self.kept:
            self.outcomes[i] = self.kept[i]
            return True
        return False

    def ran(self, n, i, task, caught, mark, out, start):
        from .fit_call import FitCall

        result = FitCall.of(task).run()
        self.outcomes[i] = (result, [(w.message, w.category) for w in caught[mark:]],
                            out.getvalue()[start:])
        if n < len(self.order) - 1 or not _running(self.worker):
            _keep(self.worker, self.topics, (i, self.outcomes[i], self.original))


def _events(worker, topic):
    from distributed.utils import sync

    return sync(worker.loop, worker.scheduler.events, topic=topic,
                callback_timeout=KEPT_TIMEOUT)


def _read_kept(worker, name):
    """``({index: outcome}, [addresses of the workers that started this batch before])``."""
    kept, started = {}, []
    try:
        events = _events(worker, name)
    except Exception:  # the scheduler is unreachable: fit everything, as without this
        return kept, started
    for _, blob in events:
        i, value = pickle.loads(blob)[:2]
        if i == STARTED:
            started.append(value)
        else:
            kept[i] = value
    return kept, started


def _retired(worker, address) -> bool:
    """Whether the worker at ``address`` left gracefully (retired, not dead): the
    scheduler logs its removal, ``expected``, before it re-runs the worker's tasks."""
    try:
        events = _events(worker, address)
    except Exception:
        return False
    return any(isinstance(msg, dict) and msg.get("action") == "remove-worker"
               and msg.get("expected") for _, msg in events)


def _wait_for(worker, name, i, kept):
    """Poll the batch's topic until fit ``i`` is there, for at most twice the longest
    fit seen in the batch, plus 2 s (then it is fitted here)."""
    times = [o[0].get("fit_time", 0.0) + o[0].get("score_time", 0.0) for o in kept.values()
             if isinstance(o[0], dict) and isinstance(o[0].get("fit_time"), float)]
    deadline = time.monotonic() + min(60.0, 2.0 * max(times, default=1.0) + 2.0)
    while True:
        found = _read_kept(worker, name)
        if i in found[0] or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _running(worker) -> bool:
    from distributed.core import Status

    return worker.status in (Status.running, Status.paused)


class Abandoned(Exception):
    """A batch stopped between two fits because nobody will take its result."""


def _wanted(worker, key) -> bool:
    """Whether a batch should start its next fit.

    Not once its worker is leaving (it would go on fitting until the process ends,
    while distributed re-runs the batch elsewhere) or its task was cancelled (a
    straggler's copy that lost). While the worker is being retired the batch waits: the
    retirement may still be called off (no other worker to take its data).
    """
    from distributed.core import Status

    while worker.status == Status.closing_gracefully:
        time.sleep(0.02)
    if worker.status not in (Status.running, Status.paused):
        return False
    task = worker.state.tasks.get(key)
    return task is not None and task.state not in ("cancelled", "released", "forgotten")


def _keep(worker, topics, entry):
    try:
        blob = pickle.dumps(entry)
    except Exception:
        return  # not kept: a re-run fits it again
    if len(blob) > KEPT_MAX_BYTES:
        return
    if _running(worker):
        worker.log_event(topics, blob)
        return
    # Leaving: the worker's own link to the scheduler is closing or closed.
    import asyncio

    from distributed.core import rpc

    async def send():
        async with rpc(worker.scheduler.address,
                       connection_args=worker.connection_args) as scheduler:
            await scheduler.log_event(topic=topics, msg=blob)

    with contextlib.suppress(Exception):  # not kept: a re-run fits it again
        asyncio.run(asyncio.wait_for(send(), KEPT_TIMEOUT))


def run_unit_isolated(kind, tasks, capture_stdout, topic):
    """Run a suspect unit in a child process of this worker; its events go through Dask."""
    outcome = run_in_child(kind, tasks, capture_stdout)
    if isinstance(outcome, ChildDied):
        return outcome
    if outcome.messages:
        from distributed import get_worker

        worker = get_worker()
        for address, message in outcome.messages:
            worker.log_event(topic, {"address": address, "message": pickle.dumps(message)})
    return outcome._replace(messages=(), events_sent=len(outcome.messages))


# ------------------------------------------------------------------------ child processes
class _Collecting(dict):
    """sklearn's callback consumers in the child: every message is kept for the parent."""

    def __init__(self, sink, known):
        super().__init__(known)
        self.sink = sink

    def get(self, address, default=None):
        consumer = super().get(address, default)
        if consumer is None:
            return lambda message: self.sink.append((address, message))
        return consumer


class ChildDied:
    """What :func:`run_in_child` returns when the child process died."""

    def __init__(self, returncode, stderr):
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self):
        import signal

        if self.returncode < 0:
            try:
                how = f"killed by signal {signal.Signals(-self.returncode).name}"
            except ValueError:
                how = f"killed by signal {-self.returncode}"
        else:
            how = f"exited with code {self.returncode}"
        tail = self.stderr.strip().splitlines()[-1:] if self.stderr else []
        return how + (f" ({tail[0][:200]})" if tail else "")


def run_in_child(kind, tasks, capture_stdout, stream=None) -> UnitResult | ChildDied:
    """Run a unit in a child process: its :class:`UnitResult` (callback messages not yet
    delivered), or :class:`ChildDied`. The fit's own exception is re-raised here.
    ``stream``: where the child sends each finished fit (``run_unit_remote``)."""
    import subprocess
    import tempfile

    import cloudpickle

    with tempfile.TemporaryDirectory(prefix="distsk-suspect-") as tmp:
        path_in, path_out = os.path.join(tmp, "in.pkl"), os.path.join(tmp, "out.pkl")
        with open(path_in, "wb") as f:
            cloudpickle.dump((kind, tasks, capture_stdout, stream), f)
        # The child imports what this process imported, from where it found it.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.run(
            [sys.executable, "-m", "distsk._units.worker", path_in, path_out],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if not os.path.exists(path_out):
            return ChildDied(proc.returncode, proc.stderr)
        with open(path_out, "rb") as f:
            status, outcome = pickle.load(f)
    if status == "raised":
        raise outcome
    return outcome


def main(path_in: str, path_out: str) -> None:
    import cloudpickle

    from .._compat import callback_transport as transport

    with open(path_in, "rb") as f:
        kind, tasks, capture_stdout, stream = pickle.load(f)
    messages: list = []
    if transport is not None:
        transport._message_consumers = _Collecting(messages, transport._message_consumers)
    try:
        outcome = ("ok", run_unit_remote(kind, tasks, capture_stdout, stream)._replace(
            messages=messages))
        data = cloudpickle.dumps(outcome)
    except BaseException as exc:  # the fit's own error, passed on as it is
        try:
            data = cloudpickle.dumps(("raised", exc))
        except Exception:
            data = cloudpickle.dumps(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    tmp = path_out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path_out)  # the parent sees a whole result or none


if __name__ == "__main__":
    # Through the imported module, not this ``__main__`` copy: the classes pickled back
    # to the parent (UnitResult) must be distsk._units.worker's.
    from distsk._units.worker import main as _main

    _main(sys.argv[1], sys.argv[2])
