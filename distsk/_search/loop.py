"""How a search's fits run: sklearn decides *what* to evaluate, distsk *where* and *how*.

``BaseSearchCV.fit`` hands its (candidate, fold) calls to a joblib ``Parallel``. Here a
joblib backend, :class:`CollectorBackend`, only *collects* those calls and hands back
result dicts to be filled; when the ``Parallel`` call ends (``stop_call``) the
:class:`SearchEngine` plans units of work over all of them (sharing pipeline prefixes
and ensemble sizes where exact, batching tiny fits), runs them on a runner (in-process,
loky, Dask), and fills every result dict before sklearn reads any. Scoring, errors and
``cv_results_`` stay sklearn's.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import statistics
import threading
import time

from .._engines.base import Runner, reemit
from .._units.callbacks import has_callbacks, portable, replay_callbacks, shows_progress
from .._units.fit_call import FitCall
from .._units.sharing import Unit, plan_units
from ..exceptions import ClusterUnavailableError
from .checkpoint import ItemKeys
from .collector import CollectorBackend, QueuedCallbacks
from .refit_ahead import RefitAhead, rank_candidates

# CollectorBackend, RefitAhead and rank_candidates live in their own modules; the
# search and the halving rounds import them from here.
__all__ = ["CollectorBackend", "QueuedCallbacks", "RefitAhead", "SearchEngine",
           "rank_candidates"]

#: Target duration of one batch of small fits (seconds).
BATCH_SECONDS = 2.0
#: A search of at most this many fits per slot is sent whole at once, one fit per unit:
#: batching cannot shorten it, and each round trip to the client costs a slot a wait.
SMALL_WAVES = 4
#: A unit running this many times longer than its fits should take is run a second
#: time on an idle slot (and never before STRAGGLER_MIN_SECONDS).
STRAGGLER_FACTOR = 2.0
STRAGGLER_MIN_SECONDS = 2.0
#: A unit's expected time out is its fits' time x this: it may wait behind one other.
QUEUED_SLACK = 1.5


class SearchEngine:
    """Runs collected ``_fit_and_score`` calls on a :class:`Runner`, sharing work where
    exact. The runner's contract, and the order of its calls, is in its docstring.

    The result stream
        Each fit's result is handled once, when it first arrives -- reported by a
        streaming runner as the fit ends (``Runner.report``), or with its unit's
        result, whichever comes first (:meth:`_arrive`): written into its result dict,
        stored in the checkpoint, counted in ``n_fits``, then passed to
        :meth:`on_fit`. What arrives later for that fit (its unit's result, a
        straggler's copy, a re-run) only completes the dict (a fitted "estimator"
        kept for the halving searches) and is otherwise ignored. So a search killed
        at any instant loses only the fits running then (and the few milliseconds a
        finished fit waits to be stored).

    Stopping
        :meth:`stop` (thread-safe) ends :meth:`run` between fits (``deadline``: below).
    """

    def __init__(self, runner: Runner, *, share: bool = True, seconds_per_fit: float | None = None,
                 checkpoint=None, verbose: int = 0):
        self.runner = runner
        self.share = share
        self.seconds_per_fit = seconds_per_fit
        self.checkpoint = checkpoint
        self.verbose = verbose
        self.n_fits = self.n_resumed = 0
        #: Final-step fits made on the output of a shared pipeline prefix (each prefix
        #: fit counts once in ``n_fits``; the final steps fit on it are counted here).
        self.n_final_step_fits = 0
        self.n_speculated = 0
        #: Fits that arrived through the result stream, before their unit's result.
        self.n_streamed = 0
        #: Why the search was stopped (:meth:`stop`), or None.
        self.stopped: str | None = None
        # Seconds per fit from sending to result, of the last finished units.
        self._walls: collections.deque = collections.deque(maxlen=256)
        self._keys = ItemKeys() if checkpoint is not None else None
        self._items: list = []
        self._results: list[dict] = []
        self._call: _Call | None = None
        #: Set by the search before its last call: the refit, run ahead on the runner.
        self.refit_ahead: RefitAhead | None = None
        self.deadline: float | None = None  # time.monotonic() (see Stopping)
        #: Queue the fits fold by fold across candidates (round k: every candidate's
        #: fold k), a few units out at a time, so that :meth:`cancel` finds most of
        #: them queued (``early_drop``, set by ``listener.begin``).
        self.by_fold = False
        #: An object told of the run's start and of each fit (``started(engine, keys)``
        #: with the run's checkpoint keys or None, ``fit_done(engine, index)``;
        #: :class:`~distsk._search.early_drop.EarlyDrop`).
        self.listener = None

    #: Calls collected so far: none after a search that ran fits means sklearn's
    #: ``Parallel`` bypassed the collector (``DistributedSearchCV.fit`` checks).
    n_registered = 0

    def register(self, items) -> list[dict]:
        self.n_registered += len(items)
        results = [{} for _ in items]
        self._items.extend(FitCall.of(item) for item in items)
        self._results.extend(results)
        return results

    @property
    def collected(self) -> tuple[list, list[dict]]:
        """The calls collected since the last :meth:`run` (FitCalls) and their result
        dicts, in the order :meth:`run` indexes them."""
        return self._items, self._results

    # ------------------------------------------------------------------ the two hooks
    def on_fit(self, index: int, item: FitCall, result: dict) -> None:
        """Hook: fit ``index`` of this call's items (``item``) has its result.

        Called once per fit run by this call, in the thread running :meth:`run`, as its
        result arrives -- when the fit ends on streaming runners (in process, loky,
        Dask), else when its unit ends -- after ``result`` (the dict sklearn will
        read) was filled, stored in the checkpoint and counted; never for a fit
        resumed from the checkpoint (those results are filled before any unit starts);
        a fit a subclass ran ahead (``_idle``) is passed when a later call takes it
        over (``_carried``), with that call's index. It must not change ``result``,
        and should return quickly: the next result waits. It may call :meth:`stop`.
        The default tells the ``listener`` (early dropping of weak candidates); a
        model-based sampler (issue #28) builds on it too.
        """
        if self.listener is not None:
            self.listener.fit_done(self, index)

    def cancel(self, indices) -> int:
        """Forget this call's queued units whose every fit is in ``indices`` (in the
        thread running :meth:`run`: from :meth:`on_fit` or the listener). Running units
        run on. Returns the number of fits cancelled; their result dicts stay empty."""
        call = self._call
        if call is None:
            return 0
        indices = set(indices)
        kept, cancelled = collections.deque(), set()
        for unit in call.queue:
            if indices.issuperset(unit.indices):
                cancelled.update(unit.indices)
                call.singles -= unit.kind in ("single", "alone")
            else:
                kept.append(unit)
        call.queue.clear()  # in place: an in-process unit may call this mid-dispatch
        call.queue.extend(kept)
        call.todo = [i for i in call.todo if i not in cancelled]
        return len(cancelled)

    def reorder(self, key) -> None:
        """Sort this call's queued units by ``key(unit)`` (stable; in the thread running
        :meth:`run`, as :meth:`cancel`)."""
        call = self._call
        if call is not None:
            units = sorted(call.queue, key=key)
            call.queue.clear()
            call.queue.extend(units)

    def stop(self, reason: str = "stopped") -> None:
        """End the search between fits: thread-safe, also from :meth:`on_fit`.

        Promises: :meth:`run` returns (without raising) without starting any other
        unit -- at once, or in process once the fit running in its thread ends. Its
        queued units never start; its running units are dropped (``Runner.discard``:
        one not yet started never starts, one running stops before its next fit where
        the runner can -- in process, loky, Dask -- else runs on, its result ignored).
        Every fit that arrived before is in its result dict and the checkpoint; the
        result dicts of the other fits stay empty (``{}``): the caller decides what
        sklearn sees of them. It is for good: later calls of :meth:`run` return at
        once, without running anything.
        ``stopped`` holds ``reason``. The refit run ahead is not touched.
        """
        self.stopped = reason
        call = self._call
        if call is not None:
            call.wake_up()

    # ------------------------------------------------------------------ one call
    def run(self) -> None:
        """Run every call collected since the last ``run`` and fill its result dict."""
        items, results = self._items, self._results
        self._items, self._results = [], []
        if not items or self.stopped is not None:
            return
        call = _Call(items, results, [self._keys.key(item) for item in items]
                     if self._keys else None)
        call.engine = self
        self.n_resumed += _resume(call, self.checkpoint, self.verbose)
        self._plan(call)
        self._call, self.runner.report = call, call.report
        try:
            if self.listener is not None:
                self.listener.started(self, call.keys)
            refit = self.refit_ahead
            if refit is not None and not refit.begin(
                    self.runner, items, self.runner.slots - len(call.queue) - len(call.in_flight)):
                self.refit_ahead = None
            while self._more(call):
                self._wait(call, self._dispatch(call))
            if call.failure.error is not None and self.stopped is None:
                raise call.failure.error
            self.runner.flush()
        except BaseException as exc:
            self.runner.cancel()
            _raise_lost(exc, self.runner, self.checkpoint)
        finally:
            call.open = False
            self._call, self.runner.report = None, None

    def _plan(self, call: _Call) -> None:
        """Units of the fits to run (sharing work where exact), after those carried."""
        items, todo = call.items, call.todo
        # Units started ahead of this call (a subclass's ``_idle``) that run some items.
        call.in_flight.update(self._carried(items, todo))
        if call.in_flight:
            taken = {i for running in call.in_flight.values() for i in running.indices}
            todo = [i for i in todo if i not in taken]
        units = plan_units([items[i] for i in todo], share=self.share)
        for unit in units:  # back to indices of all items
            unit.indices = [todo[j] for j in unit.indices]
        call.by_fold = self.by_fold
        if self.by_fold:
            units.sort(key=lambda unit: _fold(items[unit.indices[0]]))
        call.queue = collections.deque(units)
        call.singles = sum(1 for unit in units if unit.kind == "single")
        self.runner.prepare([items[i] for unit in units for i in unit.indices])
        # A small search goes out whole (decided once: the tail of a large one keeps
        # the bound of 2 units per slot).
        call.small = not self.by_fold and len(call.queue) + len(call.in_flight) <= (
            SMALL_WAVES * max(1, self.runner.slots))
        # distsk's own progress bar counts a fit reported twice once: copies are fine.
        call.speculate = self.runner.speculates and not has_callbacks(items, copies_ok=True)

    def _more(self, call: _Call) -> bool:
        """Whether units remain to wait for; drops those a stop or a failure made moot."""
        if call.error is not None:
            raise call.error  # raised by on_fit, in an in-process unit
        if self.stopped is not None:
            call.drop(self.runner)
            return False
        failure = call.failure
        if failure.index is not None:
            # Only units that may hold an earlier failing fit still matter.
            call.queue = collections.deque(
                u for u in call.queue if min(u.indices) < failure.index)
            if not call.queue and not any(min(r.indices) < failure.index
                                          for r in call.in_flight.values()):
                return False
        return bool(call.queue or call.in_flight)

    def _dispatch(self, call: _Call) -> tuple:
        """Start units up to the limit of units out; the futures of work a subclass
        started on idle slots (``_idle``)."""
        queue, in_flight = call.queue, call.in_flight
        slots = max(1, self.runner.slots)  # a cluster may grow or shrink
        # Until one fit's duration is known, one unit per slot; then two per
        # slot, so a slot never waits for the client between units.
        limit = (2 if self.seconds_per_fit else 1) * slots
        if call.small:
            limit = len(queue) + len(in_flight)
        starting = []
        late = _too_late(self.deadline, self.seconds_per_fit)  # see _too_late
        if late and queue and not in_flight:
            self.stop("time_budget")
        while queue and not late and len(in_flight) + len(starting) < limit:
            kind, indices = call.next_work(slots, self.seconds_per_fit)
            batch = [call.items[i] for i in indices]
            if self.runner.remote:
                batch = portable(batch)
            starting.append(call.running(kind, indices, batch))
        if starting:  # all at once: one message to a Dask scheduler
            futures = self.runner.submit_many([(r.kind, r.batch) for r in starting])
            in_flight.update(zip(futures, starting))
        if (call.failure.index is not None or queue or len(in_flight) >= slots
                or len(call.arrived) == len(call.todo)):
            return ()  # no idle slot (or an error is coming, or every fit is in)
        if call.speculate and self._walls:
            # What a fit takes where it runs (the workers' fit and score times) with
            # room for waiting behind one unit on its worker (2 units per slot are out),
            # else the median of sending-to-result times: robust to the stragglers' own
            # units, but inflated by all time spent queued, which held the copies of a
            # 10x slower worker's batches back by 2.5x (benchmark stragglers: 1.40x ->
            # ~1.0x).
            self.n_speculated += call.copy_stragglers(
                self.runner, slots, QUEUED_SLACK * self.seconds_per_fit
                if self.seconds_per_fit else statistics.median(self._walls))
            if len(in_flight) >= slots:
                return ()
        wake = self._idle(slots - len(in_flight), call.items, call.results)
        if self.refit_ahead is not None:
            self.refit_ahead.lead(self.runner, call.items, call.results,
                                  slots - len(in_flight))
        return wake

    def _wait(self, call: _Call, wake) -> None:
        """Wait for a unit to end or a fit to arrive (a second at most), and take what
        came in: streamed fits first, so a unit's result finds its fits there."""
        done, _ = cf.wait([*call.in_flight, *wake, call.wake], timeout=1.0,
                          return_when=cf.FIRST_COMPLETED)
        call.rearm()
        self._drain(call)
        now = time.monotonic()
        if not done or now - call.checked > 1.0:
            call.checked = now
            self.runner.check()
        for future in done:
            self._settle(call, future)

    def _drain(self, call: _Call) -> None:
        """Handle the fits reported by the stream (in the thread running ``run``)."""
        while call.inbox:
            i, result = call.inbox.popleft()
            if i not in call.arrived:
                self.n_streamed += 1
                self._arrive(call, i, result, count=True)

    def _arrive(self, call: _Call, i: int, result: dict, *, count: bool) -> None:
        """Fit ``i``'s first result: filled, stored, counted (``count``), then the hook."""
        call.arrived.add(i)
        call.results[i].update(result)
        if call.keys is not None:
            self.checkpoint.put(call.keys[i], result)
        self.n_fits += count
        self.on_fit(i, call.items[i], call.results[i])

    def _settle(self, call: _Call, future) -> None:
        """A unit's future is done: its fits not yet arrived arrive, or its error is
        noted (the fits before the earliest failure known run again, alone)."""
        running = call.in_flight.pop(future, None)
        if running is None or running.group["settled"] or future.cancelled():
            return  # a copy dropped when its twin's result came in / in already / dropped
        twin = running.twin
        try:
            outcome = future.result()
        except BaseException as exc:
            if twin is not None and twin in call.in_flight:
                return  # the other copy may still finish
            if not self._fits_error(exc):
                raise
            running.group["settled"] = True
            again = call.failure.note(
                [i for i in running.indices if i not in call.arrived], exc)
            call.queue.extendleft(reversed(again))
            call.singles += len(again)
            return
        running.group["settled"] = True
        if twin is not None and twin in call.in_flight:
            call.in_flight.pop(twin)
            self.runner.discard(twin)
        fresh = 0
        for i, result in zip(running.indices, outcome.results):
            if i in call.arrived:
                call.results[i].update(result)  # what the stream may lack (an estimator)
            else:
                fresh += 1
                self._arrive(call, i, result, count=False)
        # A unit none of whose fits was streamed counts its full fits (a shared prefix
        # is one); else each fit that arrived now.
        self.n_fits += outcome.n_fits if fresh == len(running.indices) else fresh
        if running.kind == "prefix":
            self.n_final_step_fits += fresh
        self._walls.append(
            (time.monotonic() - running.started) / max(1, len(running.indices)))
        if outcome.printed:
            print(outcome.printed, end="", flush=True)
        reemit(outcome.warnings)
        self.seconds_per_fit = _learned(self.seconds_per_fit, outcome.results)

    def _idle(self, free: int, items: list, results: list[dict]) -> tuple:
        """Hook: ``free`` slots idle, nothing queued, this call's other units running.

        ``items`` and ``results`` are this call's (a result is empty until its unit is
        done). A subclass may start work for a later call here, without waiting for it
        (the halving search starts the next round's fits of likely survivors), and
        return the futures of that work still running: the engine wakes when one ends
        (to fill the slot it frees), and otherwise ignores them."""
        return ()

    def _carried(self, items: list, todo: list[int]) -> dict[cf.Future, _Running]:
        """Hook: units started before this call (by ``_idle``) that run some of the
        items at indices ``todo``, as ``{future: _Running}`` with indices into ``items``.
        They are then waited for, and their results used, as this call's own units."""
        return {}

    def _fits_error(self, exc: BaseException) -> bool:
        """Whether a unit's exception is its fits' own (then the earliest fit's error is
        raised once known), not an interruption or the loss of where units run."""
        return (isinstance(exc, Exception) and not isinstance(exc, ClusterUnavailableError)
                and self.runner.lost(exc) is None)

    def close(self):
        refit, self.refit_ahead = self.refit_ahead, None
        if refit is not None:
            refit.discard(self.runner)
        self.runner.close()
        if self.checkpoint is not None:
            self.checkpoint.close()


def _resume(call: _Call, checkpoint, verbose: int) -> int:
    """Fill the results ``checkpoint`` holds; ``call.todo``: the others' indices.
    Returns the number of fits resumed."""
    items, results, keys = call.items, call.results, call.keys
    call.todo = list(range(len(items)))
    if keys is None:
        return 0
    # A result that held its candidate's parameters gets this search's own back.
    stored = checkpoint.get_many(keys, {key: items[i].parameters for i, key in enumerate(keys)})
    for i, key in enumerate(keys):
        if key in stored:
            results[i].update(stored[key])
    call.todo = [i for i, key in enumerate(keys) if key not in stored]
    for i, key in enumerate(keys):
        if key in stored:
            replay_callbacks(items[i], resumed=True)
    if not getattr(checkpoint, "announced", True):
        pass  # a time budget's store in memory, not a checkpoint the user gave
    elif verbose > 0 or (len(call.todo) < len(items) and shows_progress(items)):
        # Above a ProgressBar (rich prints it over the live bars): the bar's
        # jump is these fits, not speed.
        print(f"[distsk] {len(items) - len(call.todo)} of {len(items)} fits resumed from "
              f"checkpoint {checkpoint.path!r}; {len(call.todo)} to run.", flush=True)
    return len(items) - len(call.todo)


def _fold(item: FitCall) -> int:
    progress = item.split_progress
    return progress[0] if progress else 0


def _too_late(deadline: float | None, seconds_per_fit: float | None) -> bool:
    """Whether a fit started now is predicted to end after ``deadline`` (a time budget:
    no such fit starts; with nothing left running, the search stops at once)."""
    return (deadline is not None and seconds_per_fit is not None
            and time.monotonic() + seconds_per_fit > deadline)


def _learned(previous: float | None, results) -> float | None:
    """Seconds per fit, from the fit and score times the workers measured."""
    times = [r["fit_time"] + r.get("score_time", 0.0) for r in results
             if isinstance(r, dict) and isinstance(r.get("fit_time"), float)]
    if not times:
        return previous
    per_fit = sum(times) / len(times)
    return per_fit if previous is None else 0.5 * (previous + per_fit)


def _raise_lost(exc: BaseException, runner: Runner, checkpoint) -> None:
    """Raise ``exc``, or a ClusterUnavailableError when the runner lost its place."""
    lost = runner.lost(exc)
    if lost is None:
        raise exc
    if checkpoint is not None:
        raise ClusterUnavailableError(
            f"{lost} {len(checkpoint)} finished fits are saved in checkpoint "
            f"{checkpoint.path!r}: fit again with a running cluster to resume."
        ) from exc
    raise ClusterUnavailableError(
        f"{lost} Finished fits are lost: pass checkpoint=PATH to keep them."
    ) from exc


class _Failure:
    """The earliest failing fit of an engine run known so far: its index and error.

    A unit of one fit that fails names its fit. A unit of several stops at its first
    failing fit without saying which: those of its fits that come before the earliest
    failure known run again, each alone (fits are deterministic: the failing one fails
    again), so the error raised is always that of the first failing fit in sklearn's
    order, however the units were batched and whichever finished first.
    """

    def __init__(self):
        self.index: int | None = None
        self.error: BaseException | None = None

    def note(self, indices: list[int], error: BaseException) -> list[Unit]:
        """Record a failed unit; returns the fits to run again, alone, in order."""
        if len(indices) == 1:
            if self.index is None or indices[0] < self.index:
                self.index, self.error = indices[0], error
            return []
        return [Unit("alone", [i]) for i in sorted(indices)
                if self.index is None or i < self.index]


class _Running:
    """A unit in flight: what it is, when it was sent, and its copy if one runs."""

    __slots__ = ("kind", "indices", "batch", "started", "twin", "group")

    def __init__(self, kind, indices, batch, group=None):
        self.kind, self.indices, self.batch = kind, indices, batch
        self.started = time.monotonic()
        self.twin = None
        self.group = group if group is not None else {"settled": False}


class _Call:
    """One :meth:`SearchEngine.run`: its items, result dicts and checkpoint keys, the
    work queued and in flight, and the fits reported by the stream not yet handled.

    :meth:`report` is the runner's ``Runner.report`` during the call: it may be called
    from any thread; it queues the fit for the thread running the call (or handles it
    at once when called from that thread, an in-process unit)."""

    def __init__(self, items, results, keys):
        self.items, self.results, self.keys = items, results, keys
        self.todo: list[int] = []
        self.queue: collections.deque = collections.deque()
        self.in_flight: dict[cf.Future, _Running] = {}
        self.failure = _Failure()
        self.small = self.speculate = self.by_fold = False
        self.singles = 0  # single fits queued, not yet in a batch
        self.arrived: set[int] = set()  # indices whose result is in
        self.inbox: collections.deque = collections.deque()  # (index, result) streamed
        self.open = True
        self.error: BaseException | None = None  # raised by on_fit in a unit's thread
        self.checked = time.monotonic()
        self._batches: dict[int, _Running] = {}  # id(batch sent) -> its unit
        self._lock = threading.Lock()
        self._thread = threading.get_ident()
        self.engine: SearchEngine | None = None
        self.wake: cf.Future = cf.Future()

    def running(self, kind, indices, batch) -> _Running:
        unit = _Running(kind, indices, batch)
        self._batches[id(batch)] = unit
        return unit

    def report(self, batch, j, result) -> bool:
        unit = self._batches.get(id(batch))
        if unit is None or unit.batch is not batch:
            return True  # not this call's (a refit or a fit run ahead)
        engine = self.engine
        if (not self.open or unit.group["settled"] or engine.stopped is not None
                or self.error is not None):
            return False
        if j < 0:  # may the unit start?
            return True
        self.inbox.append((unit.indices[j], result))
        if threading.get_ident() != self._thread:
            self.wake_up()
            return True
        try:  # an in-process unit: handled before its next fit
            engine._drain(self)
        except BaseException as exc:  # on_fit's own error: raised by run, not the fit's
            self.error = exc
            return False
        return True

    def copy_stragglers(self, runner, slots: int, wall_per_fit: float) -> int:
        """Idle slots, nothing queued: run the slowest units a second time elsewhere.

        Fits are deterministic, so whichever copy finishes first gives the result; the
        other is discarded. A unit is copied once, and only when it has been out longer
        than ``STRAGGLER_FACTOR`` times what its fits should take (the workers' fit
        times, with ``QUEUED_SLACK`` for waiting behind one unit on its worker:
        ``wall_per_fit``). Returns the number of copies started.
        """
        in_flight, copies = self.in_flight, 0
        now = time.monotonic()
        late = sorted(
            (r.started, f) for f, r in in_flight.items()
            if r.twin is None and now - r.started > max(
                STRAGGLER_MIN_SECONDS,
                STRAGGLER_FACTOR * wall_per_fit * len(r.indices))
        )
        for _, future in late[: slots - len(in_flight)]:
            running = in_flight[future]
            # The copy streams as its original (same batch): the engine takes each fit
            # from whichever copy ends it first.
            copy = runner.submit(running.kind, running.batch, avoid=future)
            if copy is None:  # nowhere else to run it
                continue
            twin = _Running(running.kind, running.indices, running.batch, running.group)
            twin.twin, running.twin = future, copy
            in_flight[copy] = twin
            copies += 1
        return copies

    def next_work(self, slots: int, seconds_per_fit: float | None):
        """The next unit to send: ``(kind, indices)``."""
        queue = self.queue
        unit = queue.popleft()
        if unit.kind == "alone":  # a fit run again on its own (``_Failure``)
            self.singles -= 1
            return "single", unit.indices
        if unit.kind != "single":
            return unit.kind, unit.indices
        # Consecutive single fits are batched so that short fits are not dominated by
        # the cost of a task (guided self-scheduling): a batch holds at most
        # BATCH_SECONDS of fits and at most 1/(2 x slots) of the single fits left, so
        # batches shrink towards the end and every slot finishes at about the same time.
        size = 1
        if seconds_per_fit:
            size = max(1, min(math.ceil(BATCH_SECONDS / seconds_per_fit),
                              math.ceil(self.singles / (2 * slots))))
        fold = None
        if self.by_fold:
            # Fold by fold (early_drop): a batch stays in its fold and takes at most
            # 1/(2 x slots) of it, so that the fits a drop cancels are still queued.
            fold = _fold(self.items[unit.indices[0]])
            size = min(size, max(1, math.ceil(sum(
                1 for u in queue if _fold(self.items[u.indices[0]]) == fold) / (2 * slots))))
        indices = list(unit.indices)
        self.singles -= 1
        while (queue and queue[0].kind == "single" and len(indices) < size
               and (fold is None or _fold(self.items[queue[0].indices[0]]) == fold)):
            indices.extend(queue.popleft().indices)
            self.singles -= 1
        return "single", indices

    def drop(self, runner) -> None:
        """Forget the queued units and drop the running ones (a stop)."""
        for future in list(self.in_flight):
            runner.discard(future)
        self.queue.clear()
        self.in_flight.clear()

    def wake_up(self) -> None:
        with self._lock:
            if not self.wake.done():
                self.wake.set_result(None)

    def rearm(self) -> None:
        with self._lock:
            if self.wake.done():
                self.wake = cf.Future()
