"""One :meth:`~distsk._search.loop.SearchEngine.run`: its calls, the units queued and in
flight, and the fits that arrived (:class:`Call`), with the rules for what is sent next
(batches of single fits, fold by fold for ``early_drop``), what is copied (stragglers),
cancelled, and run again alone (the earliest failing fit, :class:`Failure`).

The engine (``loop.py``) decides *when*: it dispatches, waits and hands each arrival to
the checkpoint and its hooks; this module holds *what*, as the state of one call.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import math
import threading
import time
from typing import TYPE_CHECKING

from .._units.callbacks import has_callbacks, replay_callbacks, shows_progress
from .._units.fit_call import FitCall
from .._units.sharing import Unit, plan_units

if TYPE_CHECKING:
    from .loop import SearchEngine

#: Target duration of one batch of small fits (seconds).
BATCH_SECONDS = 2.0
#: A search of at most this many fits per slot is sent whole at once, one fit per unit:
#: batching cannot shorten it, and each round trip to the client costs a slot a wait.
SMALL_WAVES = 4
#: A unit running this many times longer than its fits should take is run a second
#: time on an idle slot (and never before STRAGGLER_MIN_SECONDS).
STRAGGLER_FACTOR = 2.0
STRAGGLER_MIN_SECONDS = 2.0


def resume(call: Call, checkpoint, verbose: int) -> int:
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
    # A two-pass search's report serves the fits its run made in this fit: they ran.
    written = getattr(checkpoint, "written", ())
    for i, key in enumerate(keys):
        if key in stored:
            replay_callbacks(items[i], resumed=key not in written)
    if not getattr(checkpoint, "announced", True):
        pass  # a time budget's store in memory, not a checkpoint the user gave
    elif verbose > 0 or (len(call.todo) < len(items) and shows_progress(items)):
        # Above a ProgressBar (rich prints it over the live bars): the bar's
        # jump is these fits, not speed.
        print(f"[distsk] {len(items) - len(call.todo)} of {len(items)} fits resumed from "
              f"checkpoint {checkpoint.path!r}; {len(call.todo)} to run.", flush=True)
    return len(items) - len(call.todo)


def fold_of(item: FitCall) -> int:
    progress = item.split_progress
    return progress[0] if progress else 0


class Failure:
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


class Running:
    """A unit in flight: what it is, when it was sent, and its copy if one runs."""

    __slots__ = ("kind", "indices", "batch", "started", "twin", "group")

    def __init__(self, kind, indices, batch, group=None):
        self.kind, self.indices, self.batch = kind, indices, batch
        self.started = time.monotonic()
        self.twin = None
        self.group = group if group is not None else {"settled": False}


class Call:
    """One :meth:`SearchEngine.run`: its items, result dicts and checkpoint keys, the
    work queued and in flight, and the fits reported by the stream not yet handled.

    :meth:`report` is the runner's ``Runner.report`` during the call: it may be called
    from any thread; it queues the fit for the thread running the call (or handles it
    at once when called from that thread, an in-process unit)."""

    def __init__(self, items, results, keys):
        self.items, self.results, self.keys = items, results, keys
        self.todo: list[int] = []
        self.queue: collections.deque = collections.deque()
        self.in_flight: dict[cf.Future, Running] = {}
        self.failure = Failure()
        self.small = self.speculate = self.by_fold = False
        self.singles = 0  # single fits queued, not yet in a batch
        self.arrived: set[int] = set()  # indices whose result is in
        self.inbox: collections.deque = collections.deque()  # (index, result) streamed
        self.open = True
        self.error: BaseException | None = None  # raised by on_fit in a unit's thread
        self.checked = time.monotonic()
        self._batches: dict[int, Running] = {}  # id(batch sent) -> its unit
        self._lock = threading.Lock()
        self._thread = threading.get_ident()
        self.engine: SearchEngine | None = None
        self.wake: cf.Future = cf.Future()

    def running(self, kind, indices, batch) -> Running:
        unit = Running(kind, indices, batch)
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

    def plan(self, carried: dict[cf.Future, Running], runner, *, share: bool,
             by_fold: bool) -> None:
        """Queue units of the fits to run (sharing work where exact), after the units
        ``carried`` from before this call that run some of them; fold by fold if
        ``by_fold`` (``SearchEngine.by_fold``). The runner prepares their data."""
        items, todo = self.items, self.todo
        self.in_flight.update(carried)
        if self.in_flight:
            taken = {i for running in self.in_flight.values() for i in running.indices}
            todo = [i for i in todo if i not in taken]
        units = plan_units([items[i] for i in todo], share=share)
        for unit in units:  # back to indices of all items
            unit.indices = [todo[j] for j in unit.indices]
        if by_fold:
            units.sort(key=lambda unit: fold_of(items[unit.indices[0]]))
        self.by_fold = by_fold
        self.queue = collections.deque(units)
        self.singles = sum(1 for unit in units if unit.kind == "single")
        runner.prepare([items[i] for unit in units for i in unit.indices])
        # A small search goes out whole (decided once: the tail of a large one keeps
        # the bound of 2 units per slot).
        self.small = not by_fold and len(self.queue) + len(self.in_flight) <= (
            SMALL_WAVES * max(1, runner.slots))
        # distsk's own progress bar counts a fit reported twice once: copies are fine.
        self.speculate = runner.speculates and not has_callbacks(items, copies_ok=True)

    def cancel(self, indices) -> int:
        """Forget the queued units whose every fit is in ``indices``, and those fits of
        a queued pipeline-prefix unit (its prefix still runs for its other candidates;
        their final steps do not), see :meth:`SearchEngine.cancel`; the number of fits
        cancelled."""
        indices = set(indices)
        kept, cancelled = collections.deque(), set()
        for unit in self.queue:
            if indices.issuperset(unit.indices):
                cancelled.update(unit.indices)
                self.singles -= unit.kind in ("single", "alone")
                continue
            if unit.kind == "prefix" and not indices.isdisjoint(unit.indices):
                cancelled.update(indices.intersection(unit.indices))
                unit.indices = [i for i in unit.indices if i not in indices]
            kept.append(unit)
        self.queue.clear()  # in place: an in-process unit may call this mid-dispatch
        self.queue.extend(kept)
        self.todo = [i for i in self.todo if i not in cancelled]
        return len(cancelled)

    def reorder(self, key) -> None:
        """Sort the queued units by ``key(unit)`` (stable)."""
        units = sorted(self.queue, key=key)
        self.queue.clear()
        self.queue.extend(units)

    def failed(self, running: Running, exc: BaseException) -> None:
        """A unit failed with its fits' own error: those of its fits not arrived that
        come before the earliest failure known run again, alone, first."""
        running.group["settled"] = True
        again = self.failure.note([i for i in running.indices if i not in self.arrived], exc)
        self.queue.extendleft(reversed(again))
        self.singles += len(again)

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
            twin = Running(running.kind, running.indices, running.batch, running.group)
            twin.twin, running.twin = future, copy
            in_flight[copy] = twin
            copies += 1
        return copies

    def next_work(self, slots: int, seconds_per_fit: float | None,
                  deadline: float | None = None):
        """The next unit to send: ``(kind, indices)``; ``deadline``: a time budget's
        (``time.monotonic()``): a batch then holds only the fits predicted to end before
        it, so none is sent that cannot finish, and slots free up for the refit."""
        queue = self.queue
        unit = queue.popleft()
        if unit.kind == "alone":  # a fit run again on its own (``Failure``)
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
                              math.ceil(self.singles / (2 * slots)),
                              math.inf if deadline is None else
                              int((deadline - time.monotonic()) / seconds_per_fit)))
        fold = None
        if self.by_fold:
            # Fold by fold (early_drop): a batch stays in its fold and takes at most
            # 1/(2 x slots) of it, so that the fits a drop cancels are still queued.
            fold = fold_of(self.items[unit.indices[0]])
            size = min(size, max(1, math.ceil(sum(
                1 for u in queue if fold_of(self.items[u.indices[0]]) == fold) / (2 * slots))))
        indices = list(unit.indices)
        self.singles -= 1
        while (queue and queue[0].kind == "single" and len(indices) < size
               and (fold is None or fold_of(self.items[queue[0].indices[0]]) == fold)):
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
