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
import time
from numbers import Real

import numpy as np

from .._compat import ParallelBackendBase, SequentialBackend
from .._engines.base import Runner, reemit
from .._units.callbacks import has_callbacks, portable, replay_callbacks, shows_progress
from .._units.fit_call import FitCall, clone_with
from .._units.sharing import Unit, plan_units
from ..exceptions import ClusterUnavailableError
from .checkpoint import ItemKeys

__all__ = ["CollectorBackend", "RefitAhead", "SearchEngine"]

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
#: Refits run ahead for the leader of the moment, at most (a new leader may follow).
LEADER_REFITS = 2


class SearchEngine:
    """Runs collected ``_fit_and_score`` calls on a :class:`Runner`, sharing work where
    exact. The runner's contract, and the order of its calls, is in its docstring."""

    def __init__(self, runner: Runner, *, share: bool = True, seconds_per_fit: float | None = None,
                 checkpoint=None, verbose: int = 0):
        self.runner = runner
        self.share = share
        self.seconds_per_fit = seconds_per_fit
        self.checkpoint = checkpoint
        self.verbose = verbose
        self.n_fits = 0
        self.n_resumed = 0
        self.n_speculated = 0
        # Seconds per fit from sending to result, of the last finished units.
        self._walls: collections.deque = collections.deque(maxlen=256)
        self._keys = ItemKeys() if checkpoint is not None else None
        self._items: list = []
        self._results: list[dict] = []
        #: Set by the search before its last call: the refit, run ahead on the runner.
        self.refit_ahead: RefitAhead | None = None

    #: Calls collected so far: none after a search that ran fits means sklearn's
    #: ``Parallel`` bypassed the collector (``DistributedSearchCV.fit`` checks).
    n_registered = 0

    def register(self, items) -> list[dict]:
        self.n_registered += len(items)
        results = [{} for _ in items]
        self._items.extend(FitCall.of(item) for item in items)
        self._results.extend(results)
        return results

    def run(self) -> None:
        items, results = self._items, self._results
        self._items, self._results = [], []
        if not items:
            return
        keys = [self._keys.key(item) for item in items] if self._keys else None
        todo = list(range(len(items)))
        if keys is not None:
            stored = self.checkpoint.get_many(keys)
            for i, key in enumerate(keys):
                if key in stored:
                    results[i].update(stored[key])
            todo = [i for i, key in enumerate(keys) if key not in stored]
            for i, key in enumerate(keys):
                if key in stored:
                    replay_callbacks(items[i], resumed=True)
            self.n_resumed += len(items) - len(todo)
            if self.verbose > 0 or (todo != list(range(len(items))) and shows_progress(items)):
                # Above a ProgressBar (rich prints it over the live bars): the bar's
                # jump is these fits, not speed.
                print(f"[distsk] {len(items) - len(todo)} of {len(items)} fits resumed from "
                      f"checkpoint {self.checkpoint.path!r}; {len(todo)} to run.", flush=True)
        # Units started ahead of this call (a subclass's ``_idle``) that run some items.
        carried = self._carried(items, todo)
        if carried:
            taken = {i for running in carried.values() for i in running.indices}
            todo = [i for i in todo if i not in taken]
        units = plan_units([items[i] for i in todo], share=self.share)
        for unit in units:  # back to indices of all items
            unit.indices = [todo[j] for j in unit.indices]
        queue = collections.deque(units)
        self._singles = sum(1 for unit in units if unit.kind == "single")
        self.runner.prepare([items[i] for unit in units for i in unit.indices])
        refit = self.refit_ahead
        if refit is not None and (self.runner.slots < 2 or has_callbacks(items)
                                  or FitCall.of(items[0]).verbose > 9):
            # One slot: nothing to overlap; callbacks report the refit in this process.
            refit = self.refit_ahead = None
        if refit is not None and refit.known is not None:
            # The refit's candidate is already certain (a last round of one): it goes
            # out first, the longest unit, beside this call's fits; a forest in as many
            # parts as the slots this call's units leave free.
            refit.start(self.runner, items[0], refit.known,
                        parts=self.runner.slots - len(units) - len(carried))
        in_flight: dict[cf.Future, _Running] = dict(carried)
        # A small search goes out whole (decided once: the tail of a large one keeps
        # the bound of 2 units per slot).
        small = len(queue) + len(in_flight) <= SMALL_WAVES * max(1, self.runner.slots)
        speculate = self.runner.speculates and not has_callbacks(items)
        # The earliest failing fit known: sklearn raises the error of the first call in
        # its order to fail; so does this, whichever unit fails first here.
        failure = _Failure()
        try:
            while queue or in_flight:
                if failure.index is not None:
                    # Only units that may hold an earlier failing fit still matter.
                    queue = collections.deque(
                        u for u in queue if min(u.indices) < failure.index)
                    if not queue and not any(min(r.indices) < failure.index
                                             for r in in_flight.values()):
                        break
                slots = max(1, self.runner.slots)  # a cluster may grow or shrink
                # Until one fit's duration is known, one unit per slot; then two per
                # slot, so a slot never waits for the client between units.
                limit = (2 if self.seconds_per_fit else 1) * slots
                if small:
                    limit = len(queue) + len(in_flight)
                starting = []
                while queue and len(in_flight) + len(starting) < limit:
                    kind, indices = self._next_work(queue, slots)
                    batch = [items[i] for i in indices]
                    if self.runner.remote:
                        batch = portable(batch)
                    starting.append(_Running(kind, indices, batch))
                if starting:  # all at once: one message to a Dask scheduler
                    futures = self.runner.submit_many([(r.kind, r.batch) for r in starting])
                    in_flight.update(zip(futures, starting))
                failing = failure.index is not None  # no work ahead: an error comes
                if speculate and not failing and not queue and len(in_flight) < slots:
                    self._speculate(in_flight, slots)
                wake = ()
                if not failing and not queue and len(in_flight) < slots:
                    wake = self._idle(slots - len(in_flight), items, results)
                    if refit is not None:
                        self._refit_leader(refit, items, results, slots - len(in_flight))
                done, _ = cf.wait([*in_flight, *wake], timeout=1.0,
                                  return_when=cf.FIRST_COMPLETED)
                if not done:
                    self.runner.check()
                for future in done:
                    running = in_flight.pop(future, None)
                    if running is None:
                        continue  # a copy dropped when its twin's result came in
                    twin = running.twin
                    if running.group["settled"]:
                        continue  # its twin's result is already in
                    try:
                        outcome = future.result()
                    except BaseException as exc:
                        if twin is not None and twin in in_flight:
                            continue  # the other copy may still finish
                        if not self._fits_error(exc):
                            raise
                        running.group["settled"] = True
                        again = failure.note(running.indices, exc)
                        queue.extendleft(reversed(again))
                        self._singles += len(again)
                        continue
                    running.group["settled"] = True
                    if twin is not None and twin in in_flight:
                        in_flight.pop(twin)
                        self.runner.discard(twin)
                    for i, result in zip(running.indices, outcome.results):
                        results[i].update(result)
                        if keys is not None:
                            self.checkpoint.put(keys[i], result)
                    self.n_fits += outcome.n_fits
                    self._walls.append(
                        (time.monotonic() - running.started) / max(1, len(running.indices)))
                    if outcome.printed:
                        print(outcome.printed, end="", flush=True)
                    reemit(outcome.warnings)
                    self._learn(outcome.results)
            if failure.error is not None:
                raise failure.error
            self.runner.flush()
        except BaseException as exc:
            self.runner.cancel()
            lost = self.runner.lost(exc)
            if lost is None:
                raise
            if self.checkpoint is not None:
                raise ClusterUnavailableError(
                    f"{lost} {len(self.checkpoint)} finished fits are saved in checkpoint "
                    f"{self.checkpoint.path!r}: fit again with a running cluster to resume."
                ) from exc
            raise ClusterUnavailableError(
                f"{lost} Finished fits are lost: pass checkpoint=PATH to keep them."
            ) from exc

    def _speculate(self, in_flight, slots):
        """Idle slots, nothing queued: run the slowest units a second time elsewhere.

        Fits are deterministic, so whichever copy finishes first gives the result; the
        other is discarded. A unit is copied once, and only when it has been out longer
        than ``STRAGGLER_FACTOR`` times what its fits should take (the workers' fit
        times, with ``QUEUED_SLACK`` for waiting behind one unit on its worker).
        """
        if not self._walls:
            return
        # What a fit takes where it runs (the workers' fit and score times) with room
        # for waiting behind one unit on its worker (2 units per slot are out), else
        # the median of sending-to-result times: robust to the stragglers' own units,
        # but inflated by all time spent queued, which held the copies of a 10x slower
        # worker's batches back by 2.5x (benchmark stragglers: 1.40x -> ~1.0x).
        wall_per_fit = (QUEUED_SLACK * self.seconds_per_fit if self.seconds_per_fit
                        else statistics.median(self._walls))
        now = time.monotonic()
        late = sorted(
            (r.started, f) for f, r in in_flight.items()
            if r.twin is None and now - r.started > max(
                STRAGGLER_MIN_SECONDS,
                STRAGGLER_FACTOR * wall_per_fit * len(r.indices))
        )
        for _, future in late[: slots - len(in_flight)]:
            running = in_flight[future]
            copy = self.runner.submit(running.kind, running.batch, avoid=future)
            if copy is None:  # nowhere else to run it
                continue
            twin = _Running(running.kind, running.indices, running.batch, running.group)
            twin.twin, running.twin = future, copy
            in_flight[copy] = twin
            self.n_speculated += 1

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

    def _refit_leader(self, refit, items, results, free):
        """Idle slots at the end of the last call: start refits ahead. With as many idle
        slots as candidates not refit yet, each of those (a forest in parts over the
        slots); else, once every candidate has a finished fold, the candidate ranked
        best by them, if not refit yet. sklearn picks the best by all folds: a refit of
        another candidate is discarded (``RefitAhead.take``)."""
        free -= refit.running()
        if free <= 0:
            return
        if refit.candidates is None or refit.candidates[0] is not items:  # once per call
            index: dict[int, int] = {}  # id(parameters) -> an item of that candidate
            for i, item in enumerate(items):
                index.setdefault(id(FitCall.of(item).parameters), i)
            refit.candidates = (items, index)
        candidates = refit.candidates[1]
        todo = [i for i in candidates.values() if not refit.has(FitCall.of(items[i]).parameters)]
        if todo and free >= len(todo):
            for i in todo:
                call = FitCall.of(items[i])
                refit.start(self.runner, call, call.parameters, parts=free // len(todo))
            return
        # One leader's refit at a time, and at most LEADER_REFITS: with equal scores
        # the leader changes with every result, and refits taking every idle slot
        # kept a straggling unit from being copied (tests/test_elastic.py).
        if refit.running() or refit.leaders >= LEADER_REFITS:
            return
        ranked = rank_candidates(items, results)
        if ranked and len(ranked) == len(candidates):
            call = FitCall.of(items[ranked[0][2][0]])
            if not refit.has(call.parameters):
                refit.leaders += 1
                refit.start(self.runner, call, call.parameters, parts=free)

    def _fits_error(self, exc: BaseException) -> bool:
        """Whether a unit's exception is its fits' own (then the earliest fit's error is
        raised once known), not an interruption or the loss of where units run."""
        return (isinstance(exc, Exception) and not isinstance(exc, ClusterUnavailableError)
                and self.runner.lost(exc) is None)

    def _next_work(self, queue, slots):
        unit = queue.popleft()
        if unit.kind == "alone":  # a fit run again on its own (``_Failure``)
            self._singles -= 1
            return "single", unit.indices
        if unit.kind != "single":
            return unit.kind, unit.indices
        # Consecutive single fits are batched so that short fits are not dominated by
        # the cost of a task (guided self-scheduling): a batch holds at most
        # BATCH_SECONDS of fits and at most 1/(2 x slots) of the single fits left, so
        # batches shrink towards the end and every slot finishes at about the same time.
        size = 1
        if self.seconds_per_fit:
            size = max(1, min(math.ceil(BATCH_SECONDS / self.seconds_per_fit),
                              math.ceil(self._singles / (2 * slots))))
        indices = list(unit.indices)
        self._singles -= 1
        while queue and queue[0].kind == "single" and len(indices) < size:
            indices.extend(queue.popleft().indices)
            self._singles -= 1
        return "single", indices

    def _learn(self, results):
        """Seconds per fit, from the fit and score times the workers measured."""
        times = [r["fit_time"] + r.get("score_time", 0.0) for r in results
                 if isinstance(r, dict) and isinstance(r.get("fit_time"), float)]
        if not times:
            return
        per_fit = sum(times) / len(times)
        prev = self.seconds_per_fit
        self.seconds_per_fit = per_fit if prev is None else 0.5 * (prev + per_fit)

    def close(self):
        refit, self.refit_ahead = self.refit_ahead, None
        if refit is not None:
            refit.discard(self.runner)
        self.runner.close()
        if self.checkpoint is not None:
            self.checkpoint.close()


def rank_candidates(items, results) -> list[tuple[float, list[int], list[int]]]:
    """This call's candidates, best first, by the mean test score of their finished
    folds: ``(mean, finished indices, all indices)`` (indices into ``items``). Those
    with no finished fold, or several metrics, are left out."""
    folds: dict[int, list[int]] = {}  # one dict of parameters per candidate
    for i, item in enumerate(items):
        folds.setdefault(id(FitCall.of(item).parameters), []).append(i)
    ranked = []
    for indices in folds.values():
        done = [i for i in indices if results[i]]
        scores = [results[i].get("test_scores") for i in done]
        if not scores or not all(isinstance(v, Real) for v in scores):
            continue
        mean = float(statistics.fmean(scores))
        ranked.append((-math.inf if math.isnan(mean) else mean, done, indices))
    ranked.sort(key=lambda entry: entry[0], reverse=True)
    return ranked


class RefitAhead:
    """The search's refit, run on the runner beside the last fits instead of after them.

    sklearn refits ``clone(estimator).set_params(**best_params_)`` on all of X in this
    process once every fit is done, while the slots wait. When the refit's candidate is
    certain before the last call (a halving search's last round of one candidate,
    ``known``) the refit goes out with that call's fits. Otherwise idle slots at the end
    start refits: of every candidate not yet refit when the idle slots are as many,
    else of the candidate ranked best by its finished folds. The search's
    ``best_estimator_`` hands sklearn a stand-in whose ``fit`` takes the model refit
    ahead for sklearn's best (:meth:`take`) when its parameters, X, y and fit
    parameters are the very ones sklearn refits with, else fits as sklearn does; the
    others are discarded. Native thread pools run with this process's limits, so the
    arithmetic is the in-process refit's.
    """

    def __init__(self, known: dict | None = None):
        self.known = known
        #: id(parameters) -> (the refit call, its units' futures), one per candidate.
        self._started: dict[int, tuple[FitCall, list]] = {}
        self.parts = 0  # units of the refit taken
        self.leaders = 0  # refits started for the leader of the moment
        self.discarded = 0  # refits started for another candidate than sklearn's best
        #: (the last call's items, id(parameters) -> index of an item of that candidate)
        self.candidates: tuple[list, dict[int, int]] | None = None

    def running(self) -> int:
        return sum(1 for future in self.futures if not future.done())

    @property
    def started(self) -> bool:
        return bool(self._started)

    @property
    def futures(self) -> list[cf.Future]:
        return [f for _, futures in self._started.values() for f in futures]

    def has(self, parameters) -> bool:
        return id(parameters) in self._started

    def start(self, runner: Runner, item, parameters, parts: int = 1) -> None:
        """Start the refit of ``parameters`` on ``runner``: a forest in up to ``parts``
        sub-forests (trees a:b of the whole, merged in order: the exact forest),
        anything else as one unit."""
        call = FitCall.of(item)
        refit = call._replace(kwargs={}).calling(
            _refit, parameters=parameters, fit_params=call.fit_params,
            limits=_thread_limits(),
            # verbose > 1 makes the runner capture the refit's prints for this process.
            verbose=10)
        calls = [refit.with_keywords(trees=trees)
                 for trees in _tree_parts(call.estimator, parameters, parts)]
        batches = [portable([c]) if runner.remote else [c] for c in calls]
        self._started[id(parameters)] = (
            refit, runner.submit_many([("single", batch) for batch in batches]))

    def discard(self, runner: Runner) -> None:
        for future in self.futures:
            runner.discard(future)
        self._started = {}

    def take(self, parameters, X, y, fit_params):
        """The fitted model and its fit time if a refit run ahead is sklearn's, else
        None; the others are cancelled."""
        from joblib import hash as joblib_hash

        from .._engines.base import forest_warnings, merge_forests

        started, self._started = self._started, {}
        hit = started.pop(id(parameters), None)
        if hit is None:  # equal parameters in another dict
            key = joblib_hash(parameters)
            mine = next((k for k, (call, _) in started.items()
                         if joblib_hash(call.parameters) == key), None)
            hit = started.pop(mine, None) if mine is not None else None
        self.discarded = len(started)
        for _, futures in started.values():
            for future in futures:
                future.cancel()
        if hit is None:
            return None
        call, futures = hit
        if not (call.X is X and call.y is y and _same_params(call.fit_params, fit_params)):
            for future in futures:
                future.cancel()
            return None
        try:
            outcomes = [future.result() for future in futures]
        except Exception:
            return None  # sklearn's own refit raises it, as sklearn would
        for outcome in outcomes:
            if outcome.printed:
                print(outcome.printed, end="", flush=True)
        reemit(forest_warnings([outcome.warnings for outcome in outcomes]))
        results = [outcome.results[0] for outcome in outcomes]
        model = results[0]["estimator"]
        if len(results) > 1:
            whole = clone_with(call.estimator, call.parameters)
            model = merge_forests(whole, [r["estimator"] for r in results])
        self.parts = len(results)
        return model, max(r["fit_time"] for r in results)


def _tree_parts(estimator, parameters, parts: int) -> list:
    """Trees ``(a, b)`` of each part of a forest's refit, or ``[None]``: one whole fit
    (not a forest, an out-of-bag score that needs all trees, a warm start, one part)."""
    from .._decide.planning import parallel_kind

    if parts < 2:
        return [None]
    model = clone_with(estimator, parameters)
    params = model.get_params(deep=False)
    if parallel_kind(model) != "forest" or params.get("oob_score") or params.get("warm_start"):
        return [None]
    n_trees = int(params["n_estimators"])
    bounds = np.linspace(0, n_trees, min(parts, n_trees) + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _same_params(ours, theirs) -> bool:
    ours, theirs = ours or {}, theirs or {}
    return ours.keys() == theirs.keys() and all(ours[k] is theirs[k] for k in ours)


def _thread_limits() -> dict:
    """This process's native thread pool sizes, by API (OpenMP, BLAS)."""
    from threadpoolctl import threadpool_info

    limits: dict[str, int] = {}
    for pool in threadpool_info():
        api = pool["user_api"]
        limits[api] = max(limits.get(api, 1), int(pool["num_threads"]))
    return limits


def _refit(estimator, X, y, *, parameters, fit_params, limits, verbose=0, trees=None):
    """sklearn's refit, where a unit runs: ``clone(estimator).set_params(**params)``
    fit on X with the client's thread pool sizes; with ``trees`` (a, b), trees a:b of
    that forest only."""
    from threadpoolctl import threadpool_limits

    from .._engines.base import fit_subforest, laid_out

    model = clone_with(estimator, parameters)
    # Data received over the network may be views into a receive buffer, which sends
    # BLAS down other paths: a LogisticRegression refit on a Dask worker differed from
    # sklearn's in every coefficient (test_data_on_cluster).
    X, y = laid_out(X), laid_out(y)
    started = time.perf_counter()
    with threadpool_limits(limits=limits):
        if trees is not None:
            model = fit_subforest(model, *trees, X, y, fit_params or {})
        elif y is None:
            model.fit(X, **(fit_params or {}))
        else:
            model.fit(X, y, **(fit_params or {}))
    return {"estimator": model, "fit_time": time.perf_counter() - started}


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


class QueuedCallbacks:
    """joblib completion callbacks answered one after another, never nested.

    joblib's completion callback dispatches the next batch, which calls ``submit``
    again: answered synchronously, every batch would add frames to the stack
    (RecursionError past ~50 batches, i.e. a 50 x 5 grid on 64 slots). A backend that
    completes jobs inside ``submit`` queues them here; the outermost call runs them.
    """

    def __init__(self):
        self._queue: collections.deque = collections.deque()
        self._draining = False

    def answer(self, callback, job) -> None:
        self._queue.append((callback, job))
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                done, result = self._queue.popleft()
                done(result)
        finally:
            self._draining = False


class CollectorBackend(ParallelBackendBase):
    """A joblib backend that collects the calls of one ``Parallel`` for a SearchEngine.

    ``submit`` returns at once with empty result dicts; ``stop_call`` (the end of the
    ``Parallel`` call, before it returns its list) runs them all and fills the dicts.
    """

    supports_retrieve_callback = True
    supports_timeout = False

    def __init__(self, engine: SearchEngine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine
        self._callbacks = QueuedCallbacks()

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        # Never 1: joblib would then run the calls itself, bypassing the engine.
        return max(2, self.engine.runner.slots)

    def configure(self, n_jobs=1, parallel=None, **kwargs):
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def compute_batch_size(self):
        return 1_000_000  # collect everything in a few joblib batches

    def submit(self, func, callback=None):
        future = cf.Future()
        future.set_result(self.engine.register(func.items))
        if callback is not None:
            self._callbacks.answer(callback, future)
        return future

    def retrieve_result_callback(self, future):
        return future.result()

    def stop_call(self):
        self.engine.run()

    def abort_everything(self, ensure_ready=True):
        self.engine.runner.cancel()

    def get_nested_backend(self):
        return SequentialBackend(nesting_level=1), None

    def __reduce__(self):  # never shipped anywhere
        return (SequentialBackend, ())
