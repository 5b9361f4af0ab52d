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
from numbers import Integral

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
from .._search.checkpoint import ItemKeys
from .._search.driver import PlannedWork, Probe
from .._search.loop import RefitAhead, SearchEngine, _Running, rank_candidates
from .._units.callbacks import has_callbacks, portable
from .._units.fit_call import FitCall
from .._units.sharing import _ensemble_key, _prefix_key, _shareable_call, size_param, with_fit
from .search import DistributedSearchCV, _n_splits_hint

__all__ = ["DistributedHalvingGridSearchCV", "DistributedHalvingRandomSearchCV"]

#: Whether idle slots start the next round's fits (``_GrowingEngine._idle``); switched
#: off only to measure what running ahead brings (benchmarks/halving_sim.py).
RUN_AHEAD = True

_DISTSK_CONSTRAINTS: dict = {
    "backend": [StrOptions({"auto", *SEARCH_BACKENDS})],
    "client": "no_validation",
    "max_gather_bytes": [Interval(Integral, 0, None, closed="left"), str],
    "checkpoint": [None, str, os.PathLike],
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
        if not isinstance(engine, _GrowingEngine):
            return halving(evaluate_candidates, callback_ctx=callback_ctx)

        def evaluate_round(candidate_params, cv=None, more_results=None, **kwargs):
            # Each round tells the engine how to start the next one on idle slots.
            candidate_params = list(candidate_params)
            cv, engine.next_round, last = self._round_ahead(candidate_params, cv, more_results)
            # The last round's refit runs ahead: from its start when one candidate is
            # left (it is the best), else on the round's idle slots for the leader.
            engine.refit_ahead = None if not (last and self.refit) else RefitAhead(
                candidate_params[0] if len(candidate_params) == 1 else None)
            return evaluate_candidates(candidate_params, cv, more_results, **kwargs)

        return halving(evaluate_round, callback_ctx=callback_ctx)

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
    n_fits_performed_ : int
        Full fits distsk made over all rounds (the refit aside), counted as for
        :class:`DistributedSearchCV`. sklearn makes ``sum(n_candidates_) * n_splits_``.
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
        result and not in ``n_fits_performed_``.
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


# ------------------------------------------------------------------- the next round
class _NextRound:
    """The next round, as sklearn's ``_run_search`` will make it, known one round early
    so that idle slots can start it: how a (candidate, fold) call of this round becomes
    that candidate's call of the next round, and how many candidates survive.

    Built from sklearn's formulas (``_DistributedHalving._round_ahead``); a call made
    here is used only when the next round's own call has the same checkpoint key, so a
    formula that drifted from sklearn's wastes work and never changes a result.
    """

    def __init__(self, n_keep: int, resource: str, n_resources: int, cv=None, recorder=None):
        self.n_keep, self.resource, self.n_resources = n_keep, resource, n_resources
        self._cv, self._recorder, self._splits = cv, recorder, None

    def splits(self):
        """The next round's (train, test) per fold (resource n_samples), once this
        round's split has been drawn; else None."""
        if self._splits is None and self._recorder is not None and (
                self._recorder.splits is not None):
            self._splits = list(self._cv.split(None, None))
        return self._splits

    def call(self, call: FitCall, result: dict) -> FitCall | None:
        """The next round's call for ``call``'s candidate and fold (None: not known)."""
        fold = call.split_progress[0]
        if self.resource == "n_samples":
            splits = self.splits()
            if splits is None:
                return None
            train, test = splits[fold]
            changes: dict = {"train": train, "test": test}
        else:
            params = {**call.candidate_params, self.resource: self.n_resources}
            changes = {"parameters": params}
        if "distsk_previous" in call.kwargs:  # grown from this round's model (_growing)
            kept = result.get("estimator")
            model = kept[2] if kept else None
            size = call.candidate_params[self.resource]
            changes["distsk_previous"] = (
                (size, model) if model is not None and size < self.n_resources else None)
        return call.with_keywords(**changes)


class _RecordingSplitter:
    """A CV splitter that records its splits, then replays them: this round's base
    splits, from which the next round's subsamples are drawn ahead."""

    def __init__(self, cv):
        self.cv, self.splits = cv, None

    def split(self, X, y=None, **params):
        if self.splits is None:
            self.splits = list(self.cv.split(X, y, **params))
        yield from self.splits

    def get_n_splits(self, X=None, y=None, **params):
        return self.cv.get_n_splits(X, y, **params)


# ------------------------------------------------------------------------- growth
class _GrowingEngine(SearchEngine):
    """The halving searches' SearchEngine: survivors grow, idle slots start next rounds.

    Growth: when the halving resource is the estimator's size parameter
    (``n_estimators`` of a seeded forest or gradient boosting, ``max_iter`` of
    HistGradientBoosting), a candidate that survives round k has its round-k model of
    each fold kept; in round k+1 the same (candidate, fold) fit adds only the missing
    trees to it (warm start), which gives exactly the model a fresh fit gives for the
    conditions of ``_sharing._ensemble_key`` (seeded, no warm start, no out-of-bag
    score, no early stopping) and no fit parameters; anything else is fit fresh. Only
    the last round's models are kept.

    Running ahead: at the end of a round, slots left idle while its last fits finish
    start the next round's fits of the candidates ranked best so far (``_idle``); they
    keep running past the round's end. The next round takes over those whose call has
    the checkpoint key of one of its own (``_carried``) and discards the others (their
    candidate was eliminated): their results appear nowhere.
    """

    def __init__(self, runner, *, resource, **options):
        super().__init__(runner, **options)
        self.resource = resource
        self.counts_trees = False
        self.n_grown = 0
        self.n_trees = 0
        self._models: dict = {}  # growth key -> (size, fitted model), last round only
        self._pending: list = []  # (result dict, growth key) of this round's items
        #: Set by the search before each round: how to start the next one (or None).
        self.next_round: _NextRound | None = None
        self.n_ahead = 0  # next-round fits run ahead whose results were used
        self.n_discarded = 0  # ... whose candidate was eliminated
        # Next-round fits running ahead: future -> (hint, checkpoint key of its call, unit).
        self._ahead: dict = {}
        self._ahead_keys = ItemKeys()
        self._started: set[int] = set()  # this round's items whose next call runs ahead

    def register(self, items):
        items = [self._growing(FitCall.of(item)) for item in items]
        results = super().register([item for item, _ in items])
        self._pending.extend(zip(results, (key for _, key in items)))
        return results

    def _growing(self, call: FitCall):
        estimator, params = call.estimator, call.candidate_params
        if size_param(estimator) != self.resource or self.resource not in params:
            return call, None
        self.counts_trees = True
        key = None
        if _shareable_call(call.kwargs) and not _balanced(estimator, params):
            group = _ensemble_key(call, len(call.train))
            if group is not None:
                key = (group, call.split_progress[0], _fold_key(call.train))
        previous = None
        if key is not None and key in self._models:
            size, model = self._models[key]
            if size < params[self.resource]:
                previous = (size, model)
        grown = call.calling(_fit_and_keep, distsk_previous=previous,
                             distsk_keep=key is not None, distsk_resource=self.resource)
        return grown, key

    def run(self):
        pending, self._pending = self._pending, []
        self._started = set()
        try:
            super().run()
        finally:
            self.next_round = None
        models = {}
        for result, key in pending:
            kept = result.pop("estimator", None)
            if kept is None:  # resumed from the checkpoint, or not a size resource
                continue
            grown_from, trees, model = kept
            self.n_trees += trees
            self.n_grown += grown_from is not None
            if model is not None:
                models[key] = (getattr(model, self.resource), model)
        self._models = models  # the previous round's models are no longer needed

    def _idle(self, free, items, results):
        """Start the next round's fits of the best-ranked candidates on ``free`` slots.

        Candidates are ranked by the mean test score of their finished folds (sklearn
        keeps the ``n_keep`` best by the mean over all folds); for each of the best
        ``n_keep``, best first, each fold's next call is started (one that grows the
        fold's model, once that model is there). Returns the fits ahead still running.
        """
        ahead = self.next_round
        running = [future for future in self._ahead if not future.done()]
        if ahead is None or not RUN_AHEAD or self.runner.slots < 2 or not items:
            return running
        if has_callbacks(items) or FitCall.of(items[0]).verbose > 9:
            # A fit run ahead would report to the wrong round's callbacks; sklearn's
            # most verbose output names the candidate's place in its round.
            self.next_round = None
            return running
        free -= len(running)
        if free > 0:
            self._start_ahead(ahead, free, items, results)
        return [future for future in self._ahead if not future.done()]

    def _start_ahead(self, ahead, free, items, results):
        ranked = rank_candidates(items, results)
        for _, _done, indices in ranked[: ahead.n_keep]:
            # A fold's next fit that grows its model waits for it; others start at once.
            for i in indices:
                if free <= 0:
                    return
                if i in self._started or (results[i].get("fit_error") is not None):
                    continue
                if not results[i] and "distsk_previous" in FitCall.of(items[i]).kwargs:
                    continue
                self._started.add(i)
                call = ahead.call(FitCall.of(items[i]), results[i])
                if call is None or self._shared(call):
                    continue
                batch = portable([call]) if self.runner.remote else [call]
                future = self.runner.submit("single", batch)
                self._ahead[future] = (_hint(call), self._ahead_keys.key(call),
                                       _Running("single", [], batch))
                free -= 1

    def _shared(self, call: FitCall) -> bool:
        """Whether the next round would share this fit's work with other candidates'
        (a pipeline prefix, an ensemble's sizes): it is then left to the round, where
        it costs less, rather than run ahead alone. (A round's candidates all have the
        same size resource: growing fits never form an ensemble.)"""
        if not self.share or not _shareable_call(call.kwargs):
            return False
        if _prefix_key(call) is not None:
            return True
        param = size_param(call.estimator)
        return (param is not None and param != self.resource
                and _ensemble_key(call, len(call.train)) is not None)

    def _carried(self, items, todo):
        ahead, self._ahead = self._ahead, {}
        if not ahead:
            return {}
        # The checkpoint key decides; a cheap hint first spares hashing every call of
        # a large round (an estimator's fingerprint takes ~0.1 ms).
        hints = {hint for hint, _, _ in ahead.values()}
        by_key = {key: (future, running) for future, (_, key, running) in ahead.items()}
        carried = {}
        for i in todo:
            if _hint(items[i]) not in hints:
                continue
            hit = by_key.pop(self._ahead_keys.key(items[i]), None)
            if hit is not None:
                future, running = hit
                running.indices = [i]
                carried[future] = running
        self._discard(future for future, _ in by_key.values())
        self.n_ahead += len(carried)
        return carried

    def _discard(self, futures):
        for future in futures:
            self.runner.discard(future)
            self.n_discarded += 1

    def close(self):
        ahead, self._ahead = self._ahead, {}
        self._discard(ahead)
        super().close()


def _hint(item) -> tuple:
    """A cheap stand-in for a call's checkpoint key: equal keys have equal hints."""
    call = FitCall.of(item)
    fold = call.split_progress[0] if call.split_progress else None
    return fold, repr(sorted(call.candidate_params.items(), key=lambda kv: kv[0]))


def _balanced(estimator, params) -> bool:
    # A warm start with class_weight="balanced*" warns where a fresh fit does not.
    weight = params.get("class_weight", estimator.get_params(deep=False).get("class_weight"))
    return isinstance(weight, str)


def _fold_key(train) -> str:
    from joblib import hash as joblib_hash

    return joblib_hash(np.asarray(train))


def _fit_and_keep(estimator, X, y, *, distsk_previous=None, distsk_keep=False,
                  distsk_resource, **kwargs):
    """sklearn's ``_fit_and_score``, grown from ``distsk_previous`` (size, model) if given.

    The result's "estimator" is ``(grown_from, trees_fitted, model)``: ``model`` the
    fitted model to grow next round (when ``distsk_keep`` and the fit succeeded);
    ``distsk_resource`` the size parameter, as the client decided it.
    """
    from .._compat import _fit_and_score

    call = FitCall(_fit_and_score, (estimator, X, y), kwargs)
    grown_from = None
    if distsk_previous is not None:
        grown_from, model = distsk_previous
        estimator = with_fit(estimator, _grow_fit, _distsk_previous=model)
    result = call.with_keywords(return_estimator=True).run(estimator)
    model = result.pop("estimator", None)
    size = call.candidate_params[distsk_resource]
    keep = distsk_keep and result.get("fit_error") is None and model is not None
    result["estimator"] = (grown_from, size - (grown_from or 0), model if keep else None)
    return result


def _grow_fit(self, X, y=None, **params):
    """Add the missing trees to the previous round's model (warm start), as the
    estimator's own class does."""
    base = type(self).__mro__[1]
    previous = self.__dict__.pop("_distsk_previous")
    own = set(self.get_params(deep=False))
    for key, value in previous.__dict__.items():
        if key in own or key.startswith(("_distsk", "_callback", "_parent_callback")):
            continue
        # Lists grow in place under a warm start: the previous model keeps its own.
        setattr(self, key, list(value) if isinstance(value, list) else value)
    self.__class__ = base  # from here on an ordinary model of the user's class
    self.warm_start = True
    try:
        base.fit(self, X, y, **params)
    finally:
        self.warm_start = False
    return self
