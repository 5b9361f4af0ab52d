"""A search under a time budget (``time_budget=``, issue #24): two passes over sklearn's
``evaluate_candidates``.

Run: sklearn's call of the candidates, in the budget's order (a seeded permutation,
so a grid cut short still covers it), goes to the search's engine as any call does;
every fit's result is kept in a store as it arrives (the user's checkpoint, or one in
memory); at the deadline the engine stops (``SearchEngine.stop``: queued units never
start, running ones are dropped). The call then ends with :class:`RunDone`, so sklearn
records nothing of it.

Report: sklearn's ``evaluate_candidates`` again, for the candidates whose folds all
finished, in sklearn's own order, each fit served from the store (no fit runs). So
``cv_results_``, ``best_*`` and every error are sklearn's own for those candidates --
without a deadline reached, exactly a search without a budget.

Early dropping (``early_drop=``, ``distsk._search.early_drop``) takes the same two
passes, with or without a deadline: in the run, its ``EarlyDrop`` listens to the engine
and cancels the folds of candidates clearly behind; the report serves their folds not
run as NaN.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .collector import CollectorBackend

__all__ = ["Budget", "BudgetCollector", "MemoryStore", "RoundCut", "RunDone", "under_budget"]


class RunDone(Exception):
    """Raised out of sklearn's ``Parallel`` call when a budgeted run ends: its results
    are in the store; sklearn records them in the report pass."""


class RoundCut(Exception):
    """A halving round that the deadline cut: the search ends at the round before."""


class MemoryStore:
    """The checkpoint's interface (``get_many``, ``put``), in this process's memory:
    a budgeted search without ``checkpoint=``."""

    path = "<memory>"
    #: Not a checkpoint the user asked for: the search does not announce what it
    #: resumed from it (nothing, in the budget's own pass).
    announced = False

    def __init__(self):
        self._data: dict[str, dict] = {}
        self._lock = threading.Lock()
        self.written = self._data.keys()  # every fit in it ran in this fit (Checkpoint's)

    def get_many(self, keys, parameters=None) -> dict[str, dict]:
        with self._lock:
            return {key: dict(self._data[key]) for key in keys if key in self._data}

    def put(self, key: str, result: dict) -> None:
        with self._lock:
            self._data[key] = dict(result)

    def __len__(self) -> int:
        return len(self._data)

    def close(self) -> None:
        """Nothing to close (the store lives as long as the search's fit)."""


class Budget:
    """A budgeted search's deadline and bookkeeping, for one ``fit``.

    ``seconds`` from ``started`` (``time.monotonic()`` at the start of ``fit``), or
    None: no deadline (the two passes of ``early_drop`` alone); ``random_state`` seeds
    the order of the candidates; ``dropper``: an ``EarlyDrop``, or None.
    """

    def __init__(self, seconds: float | None, started: float, random_state=None,
                 dropper=None):
        self.seconds = None if seconds is None else float(seconds)
        self.deadline = None if seconds is None else started + self.seconds
        self.random_state = random_state
        self.dropper = dropper
        #: The progress bar, fed by the run's engine (``SearchProgress.engine_fed``).
        self.progress = None
        #: Whether the deadline stopped a run before all its fits finished.
        self.ended = False
        #: Candidates whose folds all finished, over every run of this fit.
        self.n_finished = 0
        #: Calls of sklearn's evaluate_candidates reported (a halving search's rounds).
        self.n_reports = 0
        #: The search's BudgetCollector (set by it).
        self.collector = None
        self._timer: threading.Timer | None = None

    def show_on(self, bar) -> None:
        """Feed the progress bar from the run's engine: the report pass replays every
        fit to callbacks, which the bar then ignores; drops are shown as they happen."""
        bar.engine_fed()
        self.progress = bar
        if self.dropper is not None:
            self.dropper.on_drop = bar.dropped

    def left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline - time.monotonic()

    def order(self, candidates: list) -> list:
        """The candidates in the order the run takes them: a permutation seeded by
        ``random_state`` (an int gives the same order each fit)."""
        from sklearn.utils import check_random_state

        rng = check_random_state(self.random_state)
        if isinstance(self.random_state, np.random.RandomState):
            rng = np.random.RandomState(rng.randint(np.iinfo(np.int32).max))  # not consumed
        return [candidates[i] for i in rng.permutation(len(candidates))]

    def watch(self, engine) -> None:
        """Stop ``engine`` at the deadline (a timer thread; :meth:`close` cancels it)."""
        self.close()
        if self.deadline is None:
            return
        engine.deadline = self.deadline  # no fit starts that would end after it
        if self.left() <= 0:
            engine.stop("time_budget")
            return
        self._timer = threading.Timer(self.left(), engine.stop, ("time_budget",))
        self._timer.daemon = True
        self._timer.start()

    def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()


class BudgetCollector(CollectorBackend):
    """The search's collector under a budget: a run's call goes to the engine and ends
    with :class:`RunDone`; in the report pass (:meth:`serve`) calls are answered from
    the store by ``server`` (an engine whose every fit is in the store)."""

    def __init__(self, engine, budget: Budget, **kwargs):
        super().__init__(engine, **kwargs)
        self.budget = budget
        budget.collector = self
        self.runner_engine = engine
        self.server = None
        self._running = False  # a run's calls were collected and not run yet
        #: The last run's calls: FitCalls and their result dicts, in order.
        self.calls: list = []
        self.results: list = []

    def submit(self, func, callback=None):
        if self.server is None:
            self._running = True
        return super().submit(func, callback)

    def serve(self, server) -> None:
        """From now on, answer calls with ``server`` (the report pass); None: back to
        the search's engine (the next run)."""
        self.server = server
        self.engine = server if server is not None else self.runner_engine

    def start_run(self) -> None:
        self.calls, self.results = [], []

    def stop_call(self):
        if self.server is not None:
            self.engine.run()
            return
        if not self._running:
            return  # joblib's second stop_call (its ``with parallel:`` exit)
        self._running = False
        # The run's calls in the engine's order (joblib may submit a batch from within
        # another's submit: the order of the calls to ``submit`` is not theirs).
        self.calls, self.results = map(list, self.engine.collected)
        self.budget.watch(self.engine)
        dropper = self.budget.dropper
        if dropper is not None:
            dropper.begin(self.engine, self.calls, self.results)
        if dropper is not None or self.budget.progress is not None:
            self.engine.listener = _RunListener(dropper, self.budget.progress, self.results)
        try:
            self.engine.run()
        finally:
            self.budget.close()
            self.engine.listener, self.engine.by_fold = None, False
        if self.engine.stopped is not None:
            self.budget.ended = True
        raise RunDone

    def finished(self, candidates: list) -> list:
        """Of ``candidates``, in their order, those whose every fit of the last run has
        a result, or that were dropped early (their folds up to the drop have)."""
        done: dict[int, bool] = {}
        dropper = self.budget.dropper
        for call, result in zip(self.calls, self.results):
            index = _index(candidates, call.parameters)
            if index is not None:
                done[index] = done.get(index, True) and bool(result)
        return [c for i, c in enumerate(candidates)
                if done.get(i) or (i in done and dropper is not None
                                   and dropper.is_dropped(c))]


class _RunListener:
    """The engine's listener in a run: each fit to the progress bar (the run reports to
    no callback) and to the early drops."""

    def __init__(self, dropper, bar, results: list[dict]):
        self.dropper, self.bar, self.results = dropper, bar, results

    def started(self, engine, keys) -> None:
        if self.bar is not None:
            resumed = sum(1 for result in self.results if result)
            if resumed:
                self.bar.ran(resumed, resumed=True)
        if self.dropper is not None:
            self.dropper.started(engine, keys)

    def fit_done(self, engine, index: int) -> None:
        if self.bar is not None:
            self.bar.ran(1)
        if self.dropper is not None:
            self.dropper.fit_done(engine, index)


def _index(candidates: list, params: dict) -> int | None:
    for i, candidate in enumerate(candidates):
        if candidate is params:
            return i
    for i, candidate in enumerate(candidates):
        if candidate == params:
            return i
    return None


class ReportView:
    """The report pass's store: ``store``'s results, and for the fits a drop left out
    (``EarlyDrop.not_run``, empty without ``early_drop``) their NaN results, which are
    never written to ``store``.
    It announces nothing (the run said what it resumed), and passes on which fits ran
    in this fit (``written``)."""

    announced = False

    def __init__(self, store, not_run: dict[str, dict]):
        self.store, self.not_run = store, not_run
        self.path = getattr(store, "path", "<memory>")
        self.written = getattr(store, "written", ())

    def get_many(self, keys, parameters=None) -> dict[str, dict]:
        out = self.store.get_many([k for k in keys if k not in self.not_run], parameters)
        out.update({k: dict(self.not_run[k]) for k in keys if k in self.not_run})
        return out

    def put(self, key: str, result: dict) -> None:
        self.store.put(key, result)

    def __len__(self) -> int:
        return len(self.store)

    def close(self) -> None:
        """The store is the search's: it closes it."""


def under_budget(evaluate_candidates, budget: Budget, server, search, *,
                 whole: bool = False):
    """sklearn's ``evaluate_candidates`` of ``search`` in two passes
    (``distsk._search.budget``): the run, in the budget's order, until every fit
    finished or the deadline; then the report of the candidates whose folds all
    finished, in sklearn's order, served from the store. ``whole`` (halving rounds): a
    run the deadline cut reports nothing, and raises :class:`RoundCut` for the caller to
    end the search at the round before."""

    def evaluate(candidate_params, *args, **kwargs):
        candidates = list(candidate_params)
        collector = budget.collector
        collector.start_run()
        ordered = candidates if whole or budget.seconds is None else budget.order(
            candidates)
        # The run reports to no sklearn callback (its fits are reported, as resumed,
        # by the report pass: a callback context takes each task once).
        run = {k: v for k, v in kwargs.items() if k != "callback_ctx"}
        try:
            evaluate_candidates(ordered, *args, **run)
        except RunDone:
            pass
        finished = collector.finished(candidates)
        if (whole and budget.ended) or not finished:
            if not budget.n_finished:
                raise RuntimeError(
                    f"time_budget={budget.seconds:g} s ended before any of the "
                    f"{len(candidates)} candidates finished all its folds: nothing to "
                    "rank. Give a larger time_budget (with checkpoint=, the fits finished "
                    "so far are kept and not run again).")
            if whole:
                raise RoundCut
            return None
        budget.n_finished += len(finished)
        dropper, store = budget.dropper, server.checkpoint
        # The run's results (the folds a drop left out: NaN, never stored).
        server.checkpoint = ReportView(store, {} if dropper is None else dropper.not_run())
        collector.serve(server)
        # sklearn's "Fitting K folds for each of N candidates" line was printed by the
        # run, for every candidate: the report runs no fit, and prints nothing.
        verbose, search.verbose = search.verbose, 0
        try:
            results = evaluate_candidates(finished, *args, **kwargs)
        finally:
            search.verbose = verbose
            collector.serve(None)
            server.checkpoint = store
        if dropper is not None:
            first = len(results["params"]) - len(finished)
            dropper.rows += [first + j for j, c in enumerate(finished)
                             if dropper.is_dropped(c)]
        budget.n_reports += 1
        return results

    return evaluate
