"""The search's refit, run ahead on the runner beside the last fits (``RefitAhead``).

sklearn refits the best candidate on all of X in this process once every fit is done,
while the slots wait; distsk starts it on idle slots at the end of the last call (under
a time budget: once no fit may start before the deadline) and hands sklearn the model
when it is the very refit sklearn asks for.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import statistics
import time
from numbers import Real

import numpy as np

from .._engines.base import Runner, reemit
from .._units.callbacks import has_callbacks, portable
from .._units.fit_call import FitCall, clone_with

__all__ = ["RefitAhead", "rank_candidates", "LEADER_REFITS"]

#: Refits run ahead for the leader of the moment, at most (a new leader may follow).
LEADER_REFITS = 2


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

    def begin(self, runner: Runner, items, parts: int) -> bool:
        """The start of the last call: False when no refit is to run ahead (one slot:
        nothing to overlap; callbacks report the refit in this process). A refit whose
        candidate is already certain (a last round of one) goes out first, the longest
        unit, beside the call's fits; a forest in ``parts``."""
        if runner.slots < 2 or has_callbacks(items) or FitCall.of(items[0]).verbose > 9:
            return False
        if self.known is not None:
            self.start(runner, items[0], self.known, parts=parts)
        return True

    def lead(self, runner: Runner, items, results, free: int) -> None:
        """Idle slots at the end of the last call: start refits ahead. With as many idle
        slots as candidates not refit yet, each of those (a forest in parts over the
        slots); else, once every candidate has a finished fold, the candidate ranked
        best by them, if not refit yet. sklearn picks the best by all folds: a refit of
        another candidate is discarded (:meth:`take`)."""
        free -= self.running()
        if free <= 0:
            return
        if self.candidates is None or self.candidates[0] is not items:  # once per call
            index: dict[int, int] = {}  # id(parameters) -> an item of that candidate
            for i, item in enumerate(items):
                index.setdefault(id(FitCall.of(item).parameters), i)
            self.candidates = (items, index)
        candidates = self.candidates[1]
        todo = [i for i in candidates.values() if not self.has(FitCall.of(items[i]).parameters)]
        if todo and free >= len(todo):
            for i in todo:
                call = FitCall.of(items[i])
                self.start(runner, call, call.parameters, parts=free // len(todo))
            return
        # One leader's refit at a time, and at most LEADER_REFITS: with equal scores
        # the leader changes with every result, and refits taking every idle slot
        # kept a straggling unit from being copied (tests/test_elastic.py).
        if self.running() or self.leaders >= LEADER_REFITS:
            return
        ranked = rank_candidates(items, results)
        if ranked and len(ranked) == len(candidates):
            call = FitCall.of(items[ranked[0][2][0]])
            if not self.has(call.parameters):
                self.leaders += 1
                self.start(runner, call, call.parameters, parts=free)

    def lead_at_deadline(self, runner: Runner, items, results, free: int) -> None:
        """A time budget's deadline is near: no fit may start (``SearchEngine``), and
        the search will rank only the candidates whose every fold finished
        (``distsk._search.budget``). The refit of the best of those starts now, one at a
        time and at most LEADER_REFITS (a later fit may make another the best): on the
        ``free`` idle slots (a forest in parts over them), else queued on the runner,
        where it runs on the first slot the units out leave (they are dropped at the
        deadline), instead of after the search's report, in this process."""
        if self.running() or self.leaders >= LEADER_REFITS:
            return
        complete = [entry for entry in rank_candidates(items, results)
                    if len(entry[1]) == len(entry[2])]
        if complete:
            call = FitCall.of(items[complete[0][2][0]])
            if not self.has(call.parameters):
                self.leaders += 1
                self.start(runner, call, call.parameters, parts=max(1, free))

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
