"""DistributedSearchCV: sklearn's own search, with candidates x folds run by an engine.

Scoring, refit, ``cv_results_``, multimetric and metadata routing are sklearn's
``BaseSearchCV`` code. distsk decides where and how its (candidate, fold) calls run: the
search's own ``Parallel`` gets a :class:`~distsk._search.loop.CollectorBackend`, whose
engine runs them on the plan's runner (in process, loky, Dask) with work shared where
exact. The engine is released before sklearn's refit code runs; the refit itself usually
ran ahead on the runner, beside the last fits (``_search_engine.RefitAhead``), and
sklearn's ``best_estimator_.fit`` takes that model when it is sklearn's very refit.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from numbers import Integral, Real

import numpy as np
from joblib import parallel_config
from sklearn.model_selection import ParameterGrid, ParameterSampler

from .._cluster.client import clone_sharing_client, portable_state, using_client
from .._cluster.data import OnCluster
from .._compat import BaseSearchCV, CallbacksNeedSklearn19, HTMLReprHook, Interval, StrOptions
from .._decide.learned import learned_costs
from .._decide.planning import SEARCH_BACKENDS
from .._decide.probe import timed_probe
from .._engines import ExecutionContext, get_executor
from .._engines.base import InProcessRunner, fit_estimator
from .._search.budget import Budget, BudgetCollector, MemoryStore, under_budget
from .._search.checkpoint import Checkpoint
from .._search.driver import Driver, PlannedWork, Probe
from .._search.early_drop import EarlyDrop
from .._search.loop import CollectorBackend, RefitAhead, SearchEngine
from .._search.progress import progress_bar
from .._units.fit_call import clone_with
from .mlflow_autolog import logged_by_mlflow
from .notebook import html_repr_with_plan
from .refit_methods import RefitModelMethods

__all__ = ["DistributedSearchCV"]


@dataclass
class _FitState:
    """What one ``fit`` of a search carries while it runs, in one object the search
    owns (``search._fit_state``, from the start of ``fit`` to its end): the stand-ins
    for sklearn's refit and the halving rounds write here, never into the search.

    Attributes
    ----------
    n_samples_hint : int or None
        Rows of X when known without computing (planning the halving candidates).
    candidates : list or None
        The candidates planned with, handed to ``_run_search`` once.
    engine : SearchEngine or None
        The engine of this fit's calls (a growing one for halving searches).
    collector : joblib.parallel_config or None
        The configuration holding the engine until ``_run_search`` releases it.
    refit_on_cluster : ExecutionContext or None
        With X kept on the cluster: where sklearn's refit runs.
    first_round : int or None
        Candidates of a halving search's first round.
    refit_waited, refit_fit_time : float or None
        A refit run ahead and taken: the wait for it, and its own fit time.
    refit_parts, n_refits_discarded : int
        The parts a refit ran ahead in; refits run ahead for other candidates.
    budget, server : Budget or None, SearchEngine or None
        Under ``time_budget``: the deadline, and the engine answering the report pass
        from the store (``distsk._search.budget``).
    """

    n_samples_hint: int | None = None
    candidates: list | None = None
    engine: object = None
    collector: object = None
    refit_on_cluster: object = None
    first_round: int | None = None
    refit_waited: float | None = None
    refit_fit_time: float | None = None
    refit_parts: int = 0
    n_refits_discarded: int = 0
    budget: object = None
    server: object = None

    def open_store(self, checkpoint):
        """Where the fit's results are kept as they arrive: the ``checkpoint`` file, in
        memory under a budget without one (the report pass reads them back through
        ``server``), else None."""
        store = Checkpoint(checkpoint) if checkpoint is not None else None
        if self.budget is not None:
            store = store if store is not None else MemoryStore()
            self.server = SearchEngine(InProcessRunner(), share=False, checkpoint=store)
        return store

    def fitted_attributes(self, engine) -> dict:
        """The search's fitted attributes of what this fit carried and its engine did."""
        budget = self.budget
        dropper = None if budget is None else budget.dropper
        attributes = {
            "n_fits_performed_": engine.n_fits,
            "n_final_step_fits_": engine.n_final_step_fits,
            "n_fits_resumed_": engine.n_resumed,
            "_n_speculated": engine.n_speculated,  # straggling units run a second time
            # A refit run ahead took its fit time where it ran; sklearn timed the wait.
            "_refit_ran_ahead": self.refit_fit_time is not None,
            "_refit_parts": self.refit_parts,
            # Refits run ahead for other candidates than sklearn's best (thrown away).
            "_n_refits_discarded": self.n_refits_discarded,
            "time_budget_ended_": budget is not None and budget.ended,
            "dropped_candidates_": [] if dropper is None else list(dropper.rows),
        }
        if self.refit_fit_time is not None:
            attributes["refit_time_"] = self.refit_fit_time
        return attributes

    def release_collector(self) -> None:
        """Leave the configuration that holds the engine (once)."""
        collector, self.collector = self.collector, None
        if collector is not None:
            collector.__exit__(None, None, None)


def _probe_fit(estimator, probe: Probe) -> tuple[float | None, int | None, float | None]:
    """Seconds, peak memory growth and CPU seconds of one in-process fit of the probe's
    candidate (all None if it fails); see ``distsk._decide.probe``."""
    try:
        est = clone_with(estimator, probe.candidate)
        with warnings.catch_warnings():  # a probe's warnings are not the user's
            warnings.simplefilter("ignore")
            return timed_probe(lambda: fit_estimator(est, probe.X, probe.y, {}))[1]
    except Exception:
        return None, None, None


def _candidates(param_grid, param_distributions, n_iter, random_state) -> list:
    """A DistributedSearchCV's candidates: GridSearchCV's or RandomizedSearchCV's."""
    if (param_grid is None) == (param_distributions is None):
        given = "both" if param_grid is not None else "neither"
        raise ValueError(
            "DistributedSearchCV needs exactly one of param_grid (exhaustive, as "
            "GridSearchCV) and param_distributions (sampled, as RandomizedSearchCV); "
            f"{given} was given."
        )
    if param_grid is not None:
        return list(ParameterGrid(param_grid))
    return list(ParameterSampler(param_distributions, n_iter, random_state=random_state))


def _dropper(early_drop, scoring, refit) -> EarlyDrop | None:
    """The ``EarlyDrop`` of a search's fit, comparing on one score, or None."""
    if early_drop is None:
        return None
    several = isinstance(scoring, (dict, list, tuple, set))
    if several and not isinstance(refit, str):
        raise ValueError(
            f"early_drop compares candidates on one score, and scoring has several "
            f"({scoring!r}) with refit={refit!r}: set refit to the name of the scorer "
            "to compare on.")
    return EarlyDrop(early_drop, refit if several else None)


def _rows_hint(X) -> int | None:
    """Rows of X when known without computing anything (not a dask DataFrame's)."""
    rows = getattr(X, "shape", (None,))[0]
    return int(rows) if isinstance(rows, Integral) else None


class _BestEstimator:
    """``best_estimator_`` of a search: the fitted model, or during ``fit`` (while the
    search's fit state holds an engine or a cluster) a stand-in for sklearn's refit
    (:class:`_RefitTaken`, :class:`_RefitOnCluster`). The value lives in the search's
    ``__dict__`` under the same name, as a plain attribute would (pickles, clones)."""

    def __get__(self, search, owner=None):
        if search is None:
            return self
        try:
            estimator = search.__dict__["best_estimator_"]
        except KeyError:
            raise AttributeError(
                f"{type(search).__name__!r} object has no attribute 'best_estimator_'"
            ) from None
        state = getattr(search, "_fit_state", None)
        if state is None:
            return estimator
        if state.engine is not None and state.engine.refit_ahead is not None:
            return _RefitTaken(search, state, estimator, state.engine.refit_ahead)
        if state.refit_on_cluster is not None:
            return _RefitOnCluster(search, state, estimator)
        return estimator

    def __set__(self, search, value):
        search.__dict__["best_estimator_"] = value

    def __delete__(self, search):
        del search.__dict__["best_estimator_"]


class DistributedSearchCV(RefitModelMethods, CallbacksNeedSklearn19, HTMLReprHook, BaseSearchCV):
    """Exhaustive or sampled hyperparameter search on every core and every worker.

    A drop-in for :class:`~sklearn.model_selection.GridSearchCV` (give ``param_grid``)
    and :class:`~sklearn.model_selection.RandomizedSearchCV` (give
    ``param_distributions``): the same ``cv_results_``, ``best_params_``,
    ``best_estimator_`` and errors, computed in process, on local loky processes, or on a
    Dask cluster with the data sent to each worker once.

    Parameters
    ----------
    estimator : estimator object
        The estimator to search over; cloned for every fit.
    param_grid : dict or list of dicts, default=None
        As GridSearchCV's. Exactly one of ``param_grid`` and ``param_distributions``.
    param_distributions : dict or list of dicts, default=None
        As RandomizedSearchCV's: lists are sampled uniformly, distributions with ``rvs``.
    n_iter : int, default=10
        Number of sampled candidates (``param_distributions`` only).
    random_state : int, RandomState instance or None, default=None
        Sampling seed (``param_distributions`` only), as RandomizedSearchCV's.
    scoring, n_jobs, refit, cv, verbose, pre_dispatch, error_score, return_train_score
        As in GridSearchCV. ``n_jobs=None`` uses every local core or every worker thread
        (the engine's default); ``n_jobs=1`` runs in process. ``verbose=1`` also shows
        a live progress bar (fits done of total, resumed, elapsed and remaining time) in
        a terminal or a notebook, from every engine; it is drawn with ``rich``.
    backend : {"auto", "sequential", "loky", "dask"}, default="auto"
        Where candidates x folds run. "auto" times one probe fit and predicts the
        search's time in this process, on loky and on the cluster (if a client is in
        use), overheads and data transfer included, and takes the fastest whose
        predicted peak memory fits; ``plan_.predictions`` keeps every prediction and
        the actual time (see "How distsk decides").
    client : None, distributed.Client or str, default=None
        As for :class:`DistributedEstimator`.
    max_gather_bytes : "auto", int or str, default="auto"
        Dask input that no worker can hold is gathered into this process up to this
        size; input too large for both is an error naming both limits.
    checkpoint : str or path-like, default=None
        A SQLite file that keeps every finished (candidate, fold) result as it arrives.
        Fitting again with the same file runs only the fits it does not hold; a result is
        reused only when everything that determines it is unchanged (see "Long
        searches"). The probe fit of ``backend="auto"`` is skipped when it is set.
    time_budget : float, default=None
        Seconds for the candidates x folds (the refit aside), run in an order seeded
        by ``random_state``; ``cv_results_`` then holds the candidates whose folds all
        finished, as sklearn computes them. With a ``checkpoint``, fitting again
        continues. None: sklearn's search. See "Long searches".
    early_drop : float in (0, 1), default=None
        Opt-in, changes sklearn's results: the confidence at which a candidate clearly
        behind the leader gets no further folds (folds run in rounds across
        candidates; a one-sided paired t-test over the folds both finished, from 2
        folds on). A dropped candidate's other folds are NaN in ``cv_results_``, so it
        ranks after every candidate that finished; ``dropped_candidates_`` lists them.
        With several scorers it compares on the one ``refit`` names. None: sklearn's
        search. See "Long searches".

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_, \
n_splits_, refit_time_, multimetric_
        As in GridSearchCV.
    plan_ : Plan
        Where the fits ran and why.
    n_fits_resumed_ : int
        (candidate, fold) results read from ``checkpoint`` instead of being fit.
    n_fits_performed_ : int
        Full fits distsk made for candidates x folds (the refit aside): an ordinary
        candidate fit, a shared pipeline prefix fit (the final steps fit on its output
        are counted apart, in ``n_final_step_fits_``) or a shared large ensemble each
        count once. Plain sklearn makes candidates x folds full fits.
    n_final_step_fits_ : int
        Final-step fits made on the output of a shared pipeline prefix (one per
        candidate and fold sharing it); 0 when no prefix was shared.
    time_budget_ended_, n_candidates_evaluated_ : bool, int
        Whether ``time_budget`` ended the search; the candidates in ``cv_results_``.
    dropped_candidates_ : list of int
        Rows of ``cv_results_`` of the candidates ``early_drop`` dropped (empty when
        it is None).

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from distsk import DistributedSearchCV
    >>> X, y = make_classification(n_samples=100, random_state=0)
    >>> search = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)
    >>> search.fit(X, y).best_params_
    {'C': 1.0}
    """

    _parameter_constraints: dict = {
        **BaseSearchCV._parameter_constraints,
        "param_grid": [dict, list, None],
        "param_distributions": [dict, list, None],
        "n_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "backend": [StrOptions({"auto", *SEARCH_BACKENDS})],
        "client": "no_validation",
        "max_gather_bytes": [Interval(Integral, 0, None, closed="left"), str],
        "checkpoint": [None, str, os.PathLike],
        "time_budget": [None, Interval(Real, 0, None, closed="neither")],
        "early_drop": [None, Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        estimator,
        param_grid=None,
        *,
        param_distributions=None,
        n_iter=10,
        random_state=None,
        scoring=None,
        n_jobs=None,
        refit=True,
        cv=None,
        verbose=0,
        pre_dispatch="2*n_jobs",
        error_score=np.nan,
        return_train_score=False,
        backend="auto",
        client=None,
        max_gather_bytes="auto",
        checkpoint=None,
        time_budget=None,
        early_drop=None,
    ):
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_grid = param_grid
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.random_state = random_state
        self.backend = backend
        self.client = client
        self.max_gather_bytes = max_gather_bytes
        self.checkpoint = checkpoint
        self.time_budget = time_budget
        self.early_drop = early_drop

    def _candidates(self):
        return _candidates(self.param_grid, self.param_distributions, self.n_iter,
                           self.random_state)

    def _planned_work(self, X, y, candidates) -> PlannedWork:
        """The search's fits for the planner, and the fit that probes their cost."""
        return PlannedWork(len(candidates) * _n_splits_hint(self.cv),
                           (Probe(candidates[0], X, y),))

    @logged_by_mlflow  # mlflow.sklearn.autolog(): logged as GridSearchCV's fit is
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters, on the engine the plan chooses.

        Parameters
        ----------
        X : array-like, sparse matrix, DataFrame or dask collection
            Training data; dask input stays on the workers when one can hold it,
            else is gathered when under ``max_gather_bytes`` (see "Scaling out").
        y : array-like or dask collection, default=None
            Target; None for unsupervised learning.
        **params : dict
            Passed to the estimator's fit, the scorer and the CV splitter, as in
            GridSearchCV.

        Returns
        -------
        self : DistributedSearchCV
        """
        self._validate_params()
        self._fit_state = state = _FitState(n_samples_hint=_rows_hint(X))
        if self.time_budget is not None or self.early_drop is not None:
            state.budget = Budget(self.time_budget, time.monotonic(), self.random_state,
                                  _dropper(self.early_drop, self.scoring, self.refit))
        try:
            return self._fit(state, X, y, params)
        finally:
            del self._fit_state

    def _fit(self, state: _FitState, X, y, params):
        candidates = self._candidates()
        driver = Driver(backend=self.backend, n_jobs=self.n_jobs, client=self.client,
                        max_gather_bytes=self.max_gather_bytes, checkpoint=self.checkpoint)
        placed = driver.place(X, y, params)
        work = self._planned_work(placed.X, placed.y, candidates) if candidates else None
        planned = driver.plan(placed, work, lambda probe: _probe_fit(self.estimator, probe),
                              self.estimator)
        plan = planned.plan
        if self.time_budget is not None:
            plan = replace(plan, time_budget=float(self.time_budget))
        if self.verbose > 0:
            print(f"[distsk] {plan}")
        store = state.open_store(self.checkpoint)
        engine = self._make_engine(driver.runner(plan, placed.client),
                                   seconds_per_fit=planned.seconds_per_fit,
                                   checkpoint=store, verbose=self.verbose)
        if self.refit is True:
            # One call: its idle slots at the end start the refit of the leader (halving
            # searches set it per round, in their own _run_search).
            engine.refit_ahead = RefitAhead()
        state.engine, state.candidates = engine, candidates
        if plan.on_workers:
            # sklearn refits best_estimator_ on X in this process: here, on the cluster.
            state.refit_on_cluster = ExecutionContext(plan, placed.client)
        try:
            spent = self._fit_on(engine, placed, state, plan)
        finally:
            self._release_engine()
            if isinstance(placed.X, OnCluster):
                placed.X.future.release()
            engine.close()
        self._record_fit(plan, engine, state, spent, work.n_fits if work else 0)
        return self

    def _fit_on(self, engine, placed, state: _FitState, plan) -> float:
        """sklearn's ``BaseSearchCV.fit`` with its ``Parallel`` calls collected for
        ``engine``: its seconds, without the refit (a refit run ahead: without the wait
        for it)."""
        backend = (CollectorBackend(engine) if state.budget is None
                   else BudgetCollector(engine, state.budget))
        state.collector = parallel_config(backend=backend)
        state.collector.__enter__()
        with using_client(placed.client), progress_bar(self) as bar:  # verbose > 0
            if bar is not None and state.budget is not None:
                state.budget.show_on(bar)
            started = time.perf_counter()
            super().fit(placed.X, placed.y, **placed.params)
            spent = time.perf_counter() - started
            refit = getattr(self, "refit_time_", 0.0) if self.refit else 0.0
            spent -= refit if state.refit_waited is None else state.refit_waited
        n_run = self.n_splits_ * len(self.cv_results_.get("params", ()))
        if n_run and not engine.n_registered:
            raise RuntimeError(_BYPASSED.format(n_run=n_run, executor=plan.executor))
        return spent

    def _record_fit(self, plan, engine, state: _FitState, spent: float, n_fits: int):
        # The actual time beside the prediction; a prediction > 2x off corrects the model
        # (not when the search shared fits, or for halving's growing rounds: work the
        # probe does not predict).
        self.plan_, note = learned_costs().learn(
            plan, spent, calibrate=type(engine) is SearchEngine and engine.n_fits == n_fits)
        if note and self.verbose > 0:
            print(f"[distsk] cost model: {note}")
        for name, value in state.fitted_attributes(engine).items():
            setattr(self, name, value)
        self.n_candidates_evaluated_ = len(self.cv_results_["params"])
        self._record_engine(engine)

    def _record_engine(self, engine):
        """Fitted attributes from this fit's engine (the halving searches add theirs)."""

    # sklearn's refit is ``self.best_estimator_.fit(X, y, ...)`` (a contract test checks
    # it): during fit, a stand-in whose fit takes the refit run ahead or runs on the
    # cluster holding X.
    best_estimator_ = _BestEstimator()

    def _make_engine(self, runner, **options) -> SearchEngine:
        # The halving searches (distsk._face.halving) run their rounds on a growing engine.
        return SearchEngine(runner, **options)

    def _release_engine(self):
        state = getattr(self, "_fit_state", None)
        if state is not None:
            state.release_collector()

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        # The search's Parallel already holds the engine; from here on (scoring on the
        # client, the refit) sklearn runs with the caller's own joblib settings.
        self._release_engine()
        state = getattr(self, "_fit_state", None)
        candidates = None if state is None else state.candidates
        if state is not None:
            state.candidates = None  # planned for the first call only
        if candidates is None:
            candidates = self._candidates()
        budget = None if state is None else state.budget
        if budget is not None:
            evaluate_candidates = under_budget(evaluate_candidates, budget, state.server, self)
        _evaluate(self, evaluate_candidates, candidates, callback_ctx)

    # In a notebook: sklearn's diagram, then the plan once fitted (distsk._face.notebook).
    _html_repr = html_repr_with_plan

    def __getstate__(self):
        # The search travels with its fits (sklearn passes it to callbacks as
        # ``caller``): the engine it refits from stays here.
        state = portable_state(super().__getstate__())
        state.pop("_fit_state", None)
        return state

    def __sklearn_clone__(self):
        return clone_sharing_client(self)


def _evaluate(search, evaluate_candidates, candidates, callback_ctx) -> None:
    """``evaluate_candidates(candidates)``, within a "search" task of sklearn's fit
    callbacks when ``_run_search`` was given their context (sklearn >= 1.9)."""
    if callback_ctx is None:
        evaluate_candidates(candidates)
        return
    search_ctx = callback_ctx.subcontext(
        task_name="search",
        max_subtasks=len(candidates) * search.n_splits_,
        sequential_subtasks=False,
    ).call_on_fit_task_begin(estimator=search)
    evaluate_candidates(candidates, callback_ctx=search_ctx)
    search_ctx.call_on_fit_task_end(estimator=search)


_BYPASSED = (
    "scikit-learn ran the search's {n_run} (candidate, fold) fits without distsk's "
    "collector: they ran on plain joblib instead of the planned {executor!r} engine "
    "(no plan_, no sharing, no checkpoint). The likely cause is a scikit-learn release "
    "that builds the search's joblib Parallel elsewhere than before calling _run_search, "
    "or something entering its own joblib.parallel_config inside the search's fit. "
    "tests/test_contracts.py checks this assumption; please report it with your "
    "scikit-learn and joblib versions."
)


class _RefitOnCluster:
    """The unfitted best estimator, whose ``fit`` runs on the cluster holding X."""

    def __init__(self, search, state: _FitState, estimator):
        self._search, self._state, self._estimator = search, state, estimator
        self._ctx = state.refit_on_cluster

    def __getattr__(self, name):
        return getattr(self.__dict__["_estimator"], name)

    def fit(self, X, y=None, **fit_params):
        from dataclasses import replace

        ctx = self._ctx
        plan = replace(ctx.plan, strategy="single-task", n_jobs=1)
        fitted = get_executor("dask").fit(
            self._estimator, X, y, fit_params, ExecutionContext(plan, ctx.client))
        self._state.refit_on_cluster = None
        self._search.best_estimator_ = fitted
        return fitted


class _RefitTaken:
    """The unfitted best estimator, whose ``fit`` takes the refit run ahead when it is
    sklearn's (the same parameters, X, y and fit parameters), else is sklearn's refit
    (on the cluster holding X, or here)."""

    def __init__(self, search, state: _FitState, estimator, ahead):
        self._search, self._state = search, state
        self._estimator, self._ahead = estimator, ahead

    def __getattr__(self, name):
        return getattr(self.__dict__["_estimator"], name)

    def fit(self, X, y=None, **fit_params):
        search, state = self._search, self._state
        state.engine = None  # the getter hands no stand-in from here on
        started = time.perf_counter()
        taken = self._ahead.take(search.best_params_, X, y, fit_params)
        state.n_refits_discarded = self._ahead.discarded
        if taken is None:
            return search.best_estimator_.fit(X, y, **fit_params)
        state.refit_waited = time.perf_counter() - started
        state.refit_parts = self._ahead.parts
        model, state.refit_fit_time = taken
        search.best_estimator_ = model
        return model


def _n_splits_hint(cv) -> int:
    if cv is None:
        return 5
    if isinstance(cv, Integral):
        return int(cv)
    try:
        return int(cv.get_n_splits())
    except Exception:
        return 5
