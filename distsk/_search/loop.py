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
import statistics
import time

from .._engines.base import Runner, reemit
from .._units.callbacks import portable
from .._units.fit_call import FitCall
from ..exceptions import ClusterUnavailableError
from .call import Call, Running, resume
from .checkpoint import ItemKeys
from .collector import CollectorBackend, QueuedCallbacks
from .refit_ahead import RefitAhead, rank_candidates

# CollectorBackend, RefitAhead and rank_candidates live in their own modules; the
# search and the halving rounds import them from here.
__all__ = ["CollectorBackend", "QueuedCallbacks", "RefitAhead", "SearchEngine",
           "rank_candidates"]

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
        self._items, self._results = [], []  # the calls collected, their result dicts
        self._call: Call | None = None
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
        return 0 if self._call is None else self._call.cancel(indices)

    def reorder(self, key) -> None:
        """Sort this call's queued units by ``key(unit)`` (stable; in the thread running
        :meth:`run`, as :meth:`cancel`)."""
        if self._call is not None:
            self._call.reorder(key)

    def stop(self, reason: str = "stopped") -> None:
        """End the search between fits: thread-safe, also from :meth:`on_fit`.

        Promises: :meth:`run` returns (without raising) without starting any other
        unit -- at once, or in process once the fit running in its thread ends. Its
        queued units never start; its running units are dropped (``Runner.discard``:
        one not yet started never starts, one running stops before its next fit where
        the runner can -- in process, loky, Dask -- else runs on, its result ignored).
        Every fit that arrived before is in its result dict and the checkpoint; the
        others' stay empty (``{}``): the caller decides what sklearn sees of them. It
        is for good: later calls of :meth:`run` return at once, running nothing.
        ``stopped`` holds ``reason``. The refit run ahead is not touched.
        """
        self.stopped = reason
        if self._call is not None:
            self._call.wake_up()

    # ------------------------------------------------------------------ one call
    def run(self) -> None:
        """Run every call collected since the last ``run`` and fill its result dict."""
        items, results = self._items, self._results
        self._items, self._results = [], []
        if not items or self.stopped is not None:
            return
        call = Call(items, results, [self._keys.key(item) for item in items]
                    if self._keys else None)
        call.engine = self
        self.n_resumed += resume(call, self.checkpoint, self.verbose)
        # Units started ahead of this call (a subclass's ``_idle``) run some of its fits.
        call.plan(self._carried(items, call.todo), self.runner, share=self.share,
                  by_fold=self.by_fold)
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

    def _more(self, call: Call) -> bool:
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

    def _dispatch(self, call: Call) -> tuple:
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
        if late and self.refit_ahead is not None:  # idle slots until the deadline
            self.refit_ahead.lead_at_deadline(self.runner, call.items, call.results,
                                              slots - len(in_flight))
        if late and queue and not in_flight:
            self.stop("time_budget")
        while queue and not late and len(in_flight) + len(starting) < limit:
            kind, indices = call.next_work(slots, self.seconds_per_fit, self.deadline)
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
            self.n_speculated += call.copy_stragglers(
                self.runner, slots, _wall_per_fit(self.seconds_per_fit, self._walls))
            if len(in_flight) >= slots:
                return ()
        wake = self._idle(slots - len(in_flight), call.items, call.results)
        if self.refit_ahead is not None:
            self.refit_ahead.lead(self.runner, call.items, call.results,
                                  slots - len(in_flight))
        return wake

    def _wait(self, call: Call, wake) -> None:
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

    def _drain(self, call: Call) -> None:
        """Handle the fits reported by the stream (in the thread running ``run``)."""
        while call.inbox:
            i, result = call.inbox.popleft()
            if i not in call.arrived:
                self.n_streamed += 1
                self._arrive(call, i, result, count=True)

    def _arrive(self, call: Call, i: int, result: dict, *, count: bool) -> None:
        """Fit ``i``'s first result: filled, stored, counted (``count``), then the hook."""
        call.arrived.add(i)
        call.results[i].update(result)
        if call.keys is not None:
            self.checkpoint.put(call.keys[i], result)
        self.n_fits += count
        self.on_fit(i, call.items[i], call.results[i])

    def _settle(self, call: Call, future) -> None:
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
            if not _fits_error(exc, self.runner):
                raise
            call.failed(running, exc)
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

    def _carried(self, items: list, todo: list[int]) -> dict[cf.Future, Running]:
        """Hook: units started before this call (by ``_idle``) that run some of the
        items at indices ``todo``, as ``{future: Running}`` with indices into ``items``.
        They are then waited for, and their results used, as this call's own units."""
        return {}

    def close(self):
        refit, self.refit_ahead = self.refit_ahead, None
        if refit is not None:
            refit.discard(self.runner)
        self.runner.close()
        if self.checkpoint is not None:
            self.checkpoint.close()


def _fits_error(exc: BaseException, runner: Runner) -> bool:
    """Whether a unit's exception is its fits' own (then the earliest fit's error is
    raised once known), not an interruption or the loss of where units run."""
    return (isinstance(exc, Exception) and not isinstance(exc, ClusterUnavailableError)
            and runner.lost(exc) is None)


def _wall_per_fit(seconds_per_fit: float | None, walls) -> float:
    """What a fit should take, for spotting stragglers: what a fit takes where it runs
    (the workers' fit and score times) with room for waiting behind one unit on its
    worker (2 units per slot are out), else the median of sending-to-result times
    (``walls``): robust to the stragglers' own units, but inflated by all time spent
    queued, which held the copies of a 10x slower worker's batches back by 2.5x
    (benchmark stragglers: 1.40x -> ~1.0x)."""
    return QUEUED_SLACK * seconds_per_fit if seconds_per_fit else statistics.median(walls)


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
