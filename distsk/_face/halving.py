"""Successive halving on distsk's engine: sklearn's halving searches, rounds run by distsk.

sklearn's ``BaseSuccessiveHalving._run_search`` decides every round (candidates,
resources, survivors) and calls ``evaluate_candidates`` once per round; each call is one
``Parallel`` call whose fits the :class:`~distsk._search.loop.CollectorBackend` hands
to the plan's runner, as for :class:`~distsk.DistributedSearchCV` (whose ``fit`` these
classes reuse). Results, ties and errors are therefore sklearn's own.
"""

from __future__ import annotations

import copy
import os
import warnings
from math import ceil, floor, log
from numbers import Integral, Real

import numpy as np
from sklearn.base import is_classifier
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils import check_random_state

from .._cluster.data import OnCluster
from .._compat import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    Interval,
    StrOptions,
    _num_samples,
    _safe_indexing,
)
from .._decide.planning import SEARCH_BACKENDS
from .._search.budget import RoundCut, under_budget
from .._search.driver import PlannedWork, Probe
from .._search.halving_rounds import _GrowingEngine, _NextRound, _RecordingSplitter
from .._search.loop import RefitAhead
from .._units.sharing import size_param
from .search import DistributedSearchCV, _n_splits_hint

__all__ = ["DistributedHalvingGridSearchCV", "DistributedHalvingRandomSearchCV"]

_DISTSK_CONSTRAINTS: dict = {
    "backend": [StrOptions({"auto", *SEARCH_BACKENDS})],
    "client": "no_validation",
    "max_gather_bytes": [Interval(Integral, 0, None, closed="left"), str],
    "checkpoint": [None, str, os.PathLike],
    "time_budget": [None, Interval(Real, 0, None, closed="neither")],
    "early_drop": [None, Interval(Real, 0, 1, closed="neither")],
}


class _DistributedHalving(DistributedSearchCV):
    """DistributedSearchCV's fit (plan, engine, checkpoint) around sklearn's halving.

    In the subclasses' MRO this class comes before sklearn's halving class, so
    ``DistributedSearchCV.fit`` calls sklearn's halving ``fit`` inside the engine, and
    ``_run_search`` below hands over to sklearn's halving ``_run_search``.
    """

    def fit(self, X, y=None, **params):
        """Run successive halving over the candidates, on the engine the plan chooses.

        Parameters
        ----------
        X : array-like, sparse matrix, DataFrame or dask collection
            Training data; dask input stays on the workers when one can hold it,
            else is gathered when under ``max_gather_bytes`` (see "Scaling out").
        y : array-like or dask collection, default=None
            Target; None for unsupervised learning.
        **params : dict
            Passed to the estimator's fit, the scorer and the CV splitter, as in
            sklearn's halving searches.

        Returns
        -------
        self : object
            The fitted search.
        """
        return super().fit(X, y, **params)

    def _record_engine(self, engine):
        self.n_fits_grown_ = engine.n_grown
        self.n_fits_ahead_ = engine.n_ahead
        self.n_fits_discarded_ = engine.n_discarded
        self.n_trees_fitted_ = engine.n_trees if engine.counts_trees else None

    def _planning_candidates(self):
        raise NotImplementedError

    def _planned_work(self, X, y, candidates):
        """The rounds' fits for the planner, in first-round fits, probed at the first
        round's resources (a probe at full resources cost 27x a first-round fit in the
        halving-trees benchmark and predicted 7x the actual time)."""
        plain = super()._planned_work(X, y, candidates)
        if isinstance(X, OnCluster):  # never probed here
            return plain
        try:
            return self._rounds_work(X, y, candidates) or plain
        except Exception:  # sklearn's own checks in fit say what is wrong
            return plain

    def _rounds_work(self, X, y, candidates):
        rows = _num_samples(X)
        rounds = self._planned_rounds(rows, y, len(candidates))
        if not rounds:
            return None
        splits = _n_splits_hint(self.cv)
        grows = size_param(self.estimator) == self.resource
        terms, previous = [], 0
        for n, r in rounds:
            # A survivor's model grows by the missing trees: a fit of that many.
            terms.append((splits * n, r - previous if grows and previous else r))
            previous = r
        amounts = sorted({r for _, r in rounds})[:2]  # the first two rounds' sizes
        probes = tuple(self._probe_at(X, y, candidates[0], rows, r, splits)
                       for r in amounts)
        detail = (f" ({len(rounds)} rounds: "
                  + ", ".join(f"{n} x {r}" for n, r in rounds)
                  + f" {self.resource}{'; survivors grow' if grows else ''}; probes at "
                  + " and ".join(str(r) for r in amounts) + ")")
        return PlannedWork(splits * sum(n for n, _ in rounds), probes, tuple(terms), detail)

    def _probe_at(self, X, y, candidate, rows, amount, splits) -> Probe:
        """A probe fit at ``amount`` of the resource: a fold's training rows of a round
        on that many rows (spread over X), or the candidate with that many trees."""
        if self.resource != "n_samples":
            return Probe({**candidate, self.resource: amount}, X, y, amount)
        picked = np.linspace(0, rows - 1, max(2, amount * (splits - 1) // splits))
        picked = picked.astype(int)
        return Probe(candidate, _safe_indexing(X, picked),
                     None if y is None else _safe_indexing(y, picked), amount)

    def _planned_rounds(self, rows: int, y, n_first: int) -> list[tuple[int, int]]:
        """``(candidates, resources)`` of each round, by sklearn's formulas
        (``_check_input_parameters`` and ``_run_search``), before fit."""
        if self.resource == "n_samples":
            most = rows if self.max_resources == "auto" else self.max_resources
        else:
            most = self.max_resources
        if not isinstance(most, Integral) or not rows:
            return []
        least = self.min_resources
        if least in ("smallest", "exhaust"):
            least = 1
            if self.resource == "n_samples":
                least = 2 * _n_splits_hint(self.cv)
                if is_classifier(self.estimator) and y is not None:
                    least *= len(np.unique(np.asarray(y)))
        required = 1 + floor(log(n_first, self.factor))
        if self.min_resources == "exhaust":
            least = max(least, most // self.factor ** (required - 1))
        possible = 1 + floor(log(most // least, self.factor))
        n_iterations = required if self.aggressive_elimination else min(possible, required)
        rounds, n = [], n_first
        for itr in range(n_iterations):
            power = (max(0, itr - required + possible) if self.aggressive_elimination
                     else itr)
            rounds.append((n, min(int(self.factor**power * least), most)))
            n = ceil(n / self.factor)
        return rounds

    def _make_engine(self, runner, **options):
        return _GrowingEngine(runner, resource=self.resource, **options)

    def _candidates(self):
        # Only for planning (the probe fit and the number of fits): the rounds' own
        # candidates are sklearn's ``_generate_candidate_params``, in ``_run_search``.
        return self._planning_candidates()

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        # The search's Parallel already holds the engine, for every round's call; from
        # here on (scoring on the client, the refit) sklearn runs with the caller's own
        # joblib settings.
        self._release_engine()
        state = getattr(self, "_fit_state", None)
        engine = None if state is None else state.engine
        if state is not None:
            state.candidates = None  # the rounds' candidates are sklearn's
        halving = super(DistributedSearchCV, self)._run_search
        # sklearn >= 1.9 passes its callback context; older releases take no such keyword.
        ctx = {} if callback_ctx is None else {"callback_ctx": callback_ctx}
        if not isinstance(engine, _GrowingEngine):
            return halving(evaluate_candidates, **ctx)

        budget = state.budget
        if budget is not None:
            # A round the deadline cuts is reported nowhere: the search ends at the
            # round before (RoundCut, below).
            evaluate_candidates = under_budget(evaluate_candidates, budget, state.server,
                                               self, whole=True)

        def evaluate_round(candidate_params, cv=None, more_results=None, **kwargs):
            # Each round tells the engine how to start the next one on idle slots.
            candidate_params = list(candidate_params)
            cv, engine.next_round, last = self._round_ahead(candidate_params, cv, more_results)
            # The last round's refit runs ahead: from its start when one candidate is
            # left (it is the best), else on the round's idle slots for the leader.
            engine.refit_ahead = None if not (last and self.refit) else RefitAhead(
                candidate_params[0] if len(candidate_params) == 1 else None)
            return evaluate_candidates(candidate_params, cv, more_results, **kwargs)

        try:
            return halving(evaluate_round, **ctx)
        except RoundCut:
            # The deadline cut a round: the round attributes say what ran.
            done = budget.n_reports
            self.n_iterations_ = done
            self.n_candidates_ = self.n_candidates_[:done]
            self.n_resources_ = self.n_resources_[:done]

    def _round_ahead(self, candidate_params, cv, more_results):
        """``(cv, next, last)``: this round's splitter, the next round (a
        :class:`_NextRound`) and whether this is the last round, from the formulas of
        sklearn's ``_run_search``; next is None in the last round, or when the next
        round cannot be known now. For ``resource="n_samples"`` the
        splitter returned records this round's base splits (splitting exactly as
        ``cv``), from which the next round's subsamples are drawn."""
        try:
            (itr, *_), (n_resources, *_) = more_results["iter"], more_results["n_resources"]
        except (TypeError, KeyError, ValueError):
            return cv, None, False
        state = self._fit_state
        if itr == 0:
            state.first_round = len(candidate_params)
        first = state.first_round
        if not first:
            return cv, None, False
        required = 1 + floor(log(first, self.factor))
        possible = 1 + floor(log(self.max_resources_ // self.min_resources_, self.factor))
        n_iterations = required if self.aggressive_elimination else min(possible, required)

        def resources(itr):
            power = max(0, itr - required + possible) if self.aggressive_elimination else itr
            return min(int(self.factor**power * self.min_resources_), self.max_resources_)

        if resources(itr) != n_resources:
            return cv, None, False  # sklearn's formulas have changed
        if itr + 1 >= n_iterations:
            return cv, None, True
        n_keep = ceil(len(candidate_params) / self.factor)
        if self.resource != "n_samples":
            return cv, _NextRound(n_keep, self.resource, resources(itr + 1)), False
        n_samples = getattr(self, "_n_samples_orig", None)
        if not isinstance(self.random_state, Integral) or not hasattr(cv, "base_cv") or (
                not n_samples):
            # Without a seed, drawing the next subsample now would draw other rows (or
            # draw from the user's generator).
            return cv, None, False
        recorder = _RecordingSplitter(cv.base_cv)
        this, following = copy.copy(cv), copy.copy(cv)
        this.base_cv = following.base_cv = recorder
        following.fraction = resources(itr + 1) / n_samples
        return this, _NextRound(n_keep, "n_samples", resources(itr + 1), following,
                                recorder), False


_SHARED_DOC = """
    factor, resource, max_resources, min_resources, aggressive_elimination, cv, \
scoring, refit, error_score, return_train_score, random_state, n_jobs, verbose
        As in sklearn's {name}. ``n_jobs=None`` uses every local core or every worker
        thread (the engine's default); ``n_jobs=1`` runs in process.
    backend : {{"auto", "sequential", "loky", "dask"}}, default="auto"
        Where the fits of every round run, as for :class:`DistributedSearchCV`.
    client : None, distributed.Client or str, default=None
        As for :class:`DistributedEstimator`.
    max_gather_bytes : "auto", int or str, default="auto"
        Dask input that no worker can hold is gathered into this process up to this
        size; input too large for both is an error naming both limits.
    checkpoint : str or path-like, default=None
        A SQLite file keeping every finished (candidate, fold) result of every round.
        Fitting again with the same file reruns nothing it holds: a run killed in round
        3 resumes in round 3 (rounds 1 and 2 are read back and give the same survivors).
    time_budget : float, default=None
        Seconds ``fit`` may take for the rounds (the refit aside). A round the deadline
        cuts is dropped and the search ends at the round before, with sklearn's
        results for the rounds run (``n_iterations_``, ``n_candidates_`` and
        ``n_resources_`` count those; ``time_budget_ended_`` says so). With a
        ``checkpoint``, fitting again continues. None: no budget.
    early_drop : float in (0, 1), default=None
        Opt-in, changes sklearn's results: within each round, the confidence at which
        a candidate clearly behind the round's leader gets no further folds (as for
        :class:`DistributedSearchCV`); its mean score is NaN, so it is promoted only
        when too few others remain. ``dropped_candidates_`` lists its rows. None:
        sklearn's rounds.

    Attributes
    ----------
    cv_results_, best_estimator_, best_score_, best_params_, best_index_, scorer_, \
n_splits_, refit_time_, multimetric_, n_resources_, n_candidates_, \
n_remaining_candidates_, max_resources_, min_resources_, n_iterations_, \
n_possible_iterations_, n_required_iterations_
        As in sklearn's {name}.
    plan_ : Plan
        Where the fits ran and why.
    n_fits_resumed_ : int
        (candidate, fold) results read from ``checkpoint`` instead of being fit.
    time_budget_ended_ : bool
        Whether ``time_budget`` ended the search before its last round.
    dropped_candidates_ : list of int
        Rows of ``cv_results_`` dropped by ``early_drop`` (empty when it is None).
    n_candidates_evaluated_ : int
        Rows of ``cv_results_`` (candidates over the rounds run).
    n_fits_performed_ : int
        Full fits distsk made over all rounds (the refit aside), counted as for
        :class:`DistributedSearchCV`. sklearn makes ``sum(n_candidates_) * n_splits_``.
    n_final_step_fits_ : int
        Final-step fits on shared pipeline prefixes over all rounds, as for
        :class:`DistributedSearchCV`.
    n_fits_grown_ : int
        Of those, fits that grew the candidate's model from its previous round (warm
        start) instead of starting afresh: with ``resource`` the size parameter of a
        seeded forest or gradient boosting model (``n_estimators``, ``max_iter``), where
        the grown model equals a fresh fit exactly. 0 otherwise.
    n_fits_ahead_ : int
        Of those, fits started before their round, on slots left idle while the
        previous round's last fits finished, for the candidates ranked best so far
        (their results are used as they are: the same call, the same result).
    n_fits_discarded_ : int
        Fits started ahead whose candidate was then eliminated: discarded, in no
        result and not in ``n_fits_performed_`` (one still queued in its unit is
        stopped before it runs).
    n_trees_fitted_ : int or None
        With ``resource`` the estimator's ``n_estimators`` / ``max_iter``: trees (or
        boosting iterations) fitted over all rounds, counting only what each grown fit
        added. sklearn fits ``sum(n_c * n_r for n_c, n_r in zip(n_candidates_,
        n_resources_)) * n_splits_``. None for other resources.
"""


class DistributedHalvingGridSearchCV(_DistributedHalving, HalvingGridSearchCV):
    __doc__ = """Successive halving over a parameter grid, on every core and every worker.

    A drop-in for sklearn's :class:`~sklearn.model_selection.HalvingGridSearchCV` (and an
    instance of it): the same rounds, survivors, ``cv_results_`` (with ``iter`` and
    ``n_resources``), ``best_*`` and errors, with each round's fits run in process, on
    local loky processes or on a Dask cluster, and kept in ``checkpoint``.

    Parameters
    ----------
    estimator : estimator object
        The estimator to search over; cloned for every fit.
    param_grid : dict or list of dicts
        As HalvingGridSearchCV's.
""" + _SHARED_DOC.format(name="HalvingGridSearchCV") + """
    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from distsk import DistributedHalvingGridSearchCV
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> search = DistributedHalvingGridSearchCV(
    ...     LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3, random_state=0)
    >>> search.fit(X, y).n_candidates_
    [4, 2]
    """

    _parameter_constraints: dict = {
        **HalvingGridSearchCV._parameter_constraints, **_DISTSK_CONSTRAINTS,
    }

    def __init__(
        self,
        estimator,
        param_grid,
        *,
        factor=3,
        resource="n_samples",
        max_resources="auto",
        min_resources="exhaust",
        aggressive_elimination=False,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
        backend="auto",
        client=None,
        max_gather_bytes="auto",
        checkpoint=None,
        time_budget=None,
        early_drop=None,
    ):
        HalvingGridSearchCV.__init__(
            self, estimator, param_grid, factor=factor, resource=resource,
            max_resources=max_resources, min_resources=min_resources,
            aggressive_elimination=aggressive_elimination, cv=cv, scoring=scoring,
            refit=refit, error_score=error_score, return_train_score=return_train_score,
            random_state=random_state, n_jobs=n_jobs, verbose=verbose,
        )
        self.backend = backend
        self.client = client
        self.max_gather_bytes = max_gather_bytes
        self.checkpoint = checkpoint
        self.time_budget = time_budget
        self.early_drop = early_drop

    def _planning_candidates(self):
        return list(ParameterGrid(self.param_grid))


class DistributedHalvingRandomSearchCV(_DistributedHalving, HalvingRandomSearchCV):
    __doc__ = """Successive halving over sampled candidates, on every core and every worker.

    A drop-in for sklearn's :class:`~sklearn.model_selection.HalvingRandomSearchCV` (and
    an instance of it): the same sampled candidates, rounds, survivors, ``cv_results_``
    (with ``iter`` and ``n_resources``), ``best_*`` and errors, with each round's fits
    run in process, on local loky processes or on a Dask cluster, and kept in
    ``checkpoint``.

    Parameters
    ----------
    estimator : estimator object
        The estimator to search over; cloned for every fit.
    param_distributions : dict or list of dicts
        As HalvingRandomSearchCV's: lists are sampled uniformly, distributions with
        ``rvs``.
    n_candidates : "exhaust" or int, default="exhaust"
        As HalvingRandomSearchCV's: the number of candidates in the first round.
""" + _SHARED_DOC.format(name="HalvingRandomSearchCV") + """
    Examples
    --------
    >>> from scipy.stats import loguniform
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from distsk import DistributedHalvingRandomSearchCV
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> search = DistributedHalvingRandomSearchCV(
    ...     LogisticRegression(), {"C": loguniform(1e-3, 1e2)}, n_candidates=9,
    ...     cv=3, random_state=0)
    >>> search.fit(X, y).n_candidates_
    [9, 3, 1]
    """

    _parameter_constraints: dict = {
        **HalvingRandomSearchCV._parameter_constraints, **_DISTSK_CONSTRAINTS,
    }

    def __init__(
        self,
        estimator,
        param_distributions,
        *,
        n_candidates="exhaust",
        factor=3,
        resource="n_samples",
        max_resources="auto",
        min_resources="smallest",
        aggressive_elimination=False,
        cv=5,
        scoring=None,
        refit=True,
        error_score=np.nan,
        return_train_score=True,
        random_state=None,
        n_jobs=None,
        verbose=0,
        backend="auto",
        client=None,
        max_gather_bytes="auto",
        checkpoint=None,
        time_budget=None,
        early_drop=None,
    ):
        HalvingRandomSearchCV.__init__(
            self, estimator, param_distributions, n_candidates=n_candidates,
            factor=factor, resource=resource, max_resources=max_resources,
            min_resources=min_resources, aggressive_elimination=aggressive_elimination,
            cv=cv, scoring=scoring, refit=refit, error_score=error_score,
            return_train_score=return_train_score, random_state=random_state,
            n_jobs=n_jobs, verbose=verbose,
        )
        self.backend = backend
        self.client = client
        self.max_gather_bytes = max_gather_bytes
        self.checkpoint = checkpoint
        self.time_budget = time_budget
        self.early_drop = early_drop

    def _planning_candidates(self):
        n = self.n_candidates
        if n == "exhaust":
            # sklearn samples max_resources_ // min_resources_ candidates, known only
            # inside its fit; "smallest" min_resources is about 2 x n_splits x n_classes.
            state = getattr(self, "_fit_state", None)
            rows = None if state is None else state.n_samples_hint
            most = self.max_resources if isinstance(self.max_resources, Integral) else (
                rows or 1)
            least = (self.min_resources if isinstance(self.min_resources, Integral)
                     else 2 * _n_splits_hint(self.cv))
            n = max(1, most // max(1, least))
        # A copy of the generator: a RandomState (or None's global one) drawn from here
        # would give sklearn's own sampling in fit other candidates.
        rng = copy.deepcopy(check_random_state(self.random_state))
        with warnings.catch_warnings():  # sklearn's own sampling warns, once, in fit
            warnings.simplefilter("ignore")
            return list(ParameterSampler(self.param_distributions, n, random_state=rng))
