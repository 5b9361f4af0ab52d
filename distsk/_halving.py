"""Successive halving on distsk's engine: sklearn's halving searches, rounds run by distsk.

sklearn's ``BaseSuccessiveHalving._run_search`` decides every round (candidates,
resources, survivors) and calls ``evaluate_candidates`` once per round; each call is one
``Parallel`` call whose fits the :class:`~distsk._search_engine.CollectorBackend` hands
to the plan's runner, as for :class:`~distsk.DistributedSearchCV` (whose ``fit`` these
classes reuse). Results, ties and errors are therefore sklearn's own.
"""

from __future__ import annotations

import copy
import os
import warnings
from numbers import Integral

import numpy as np
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils import check_random_state

from ._compat import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    Interval,
    StrOptions,
)
from ._planning import SEARCH_BACKENDS
from ._search import DistributedSearchCV, _n_splits_hint
from ._search_engine import SearchEngine
from ._sharing import _ensemble_key, _shareable_call, size_param

__all__ = ["DistributedHalvingGridSearchCV", "DistributedHalvingRandomSearchCV"]

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
        # For planning only; never computes lazy input (a dask DataFrame's length).
        rows = getattr(X, "shape", (None,))[0]
        self._n_samples_hint = int(rows) if isinstance(rows, Integral) else None
        try:
            super().fit(X, y, **params)
        finally:
            self.__dict__.pop("_n_samples_hint", None)
            engine = self.__dict__.pop("_growing_engine", None)
        self.n_fits_grown_ = engine.n_grown
        self.n_trees_fitted_ = engine.n_trees if engine.counts_trees else None
        return self

    def _planning_candidates(self):
        raise NotImplementedError

    def _make_engine(self, runner, **options):
        engine = _GrowingEngine(runner, resource=self.resource, **options)
        self._growing_engine = engine
        return engine

    def __getstate__(self):
        # The search travels with its fits (sklearn passes it to callbacks as
        # ``caller``): its engine, with the runner's locks and pools, stays here.
        state = super().__getstate__()
        state.pop("_growing_engine", None)
        return state

    def _candidates(self):
        # Only for planning (the probe fit and the number of fits): the rounds' own
        # candidates are sklearn's ``_generate_candidate_params``, in ``_run_search``.
        return self._planning_candidates()

    def _run_search(self, evaluate_candidates, *, callback_ctx=None):
        # The search's Parallel already holds the engine, for every round's call; from
        # here on (scoring on the client, the refit) sklearn runs with the caller's own
        # joblib settings.
        self._release_engine()
        self.__dict__.pop("_candidate_list", None)
        halving = super(DistributedSearchCV, self)._run_search
        return halving(evaluate_candidates, callback_ctx=callback_ctx)


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
            most = self.max_resources if isinstance(self.max_resources, Integral) else (
                self._n_samples_hint or 1)
            least = (self.min_resources if isinstance(self.min_resources, Integral)
                     else 2 * _n_splits_hint(self.cv))
            n = max(1, most // max(1, least))
        # A copy of the generator: a RandomState (or None's global one) drawn from here
        # would give sklearn's own sampling in fit other candidates.
        rng = copy.deepcopy(check_random_state(self.random_state))
        with warnings.catch_warnings():  # sklearn's own sampling warns, once, in fit
            warnings.simplefilter("ignore")
            return list(ParameterSampler(self.param_distributions, n, random_state=rng))



# ------------------------------------------------------------------------- growth
class _GrowingEngine(SearchEngine):
    """A SearchEngine that grows a survivor's ensemble from its previous round's model.

    When the halving resource is the estimator's size parameter (``n_estimators`` of a
    seeded forest or gradient boosting, ``max_iter`` of HistGradientBoosting), a
    candidate that survives round k has its round-k model of each fold kept; in round
    k+1 the same (candidate, fold) fit adds only the missing trees to it (warm start),
    which gives exactly the model a fresh fit gives for the conditions of
    ``_sharing._ensemble_key`` (seeded, no warm start, no out-of-bag score, no early
    stopping) and no fit parameters; anything else is fit fresh. Only the last round's
    models are kept.
    """

    def __init__(self, runner, *, resource, **options):
        super().__init__(runner, **options)
        self.resource = resource
        self.counts_trees = False
        self.n_grown = 0
        self.n_trees = 0
        self._models: dict = {}  # growth key -> (size, fitted model), last round only
        self._pending: list = []  # (result dict, growth key) of this round's items

    def register(self, items):
        items = [self._growing(item) for item in items]
        results = super().register([item for item, _ in items])
        self._pending.extend(zip(results, (key for _, key in items)))
        return results

    def _growing(self, item):
        f, args, kwargs = item
        estimator, params = args[0], kwargs.get("parameters") or {}
        if size_param(estimator) != self.resource or self.resource not in params:
            return item, None
        self.counts_trees = True
        key = None
        if _shareable_call(kwargs) and not _balanced(estimator, params):
            group = _ensemble_key(item, len(kwargs["train"]))
            if group is not None:
                key = (group, kwargs["split_progress"][0], _fold_key(kwargs["train"]))
        previous = None
        if key is not None and key in self._models:
            size, model = self._models[key]
            if size < params[self.resource]:
                previous = (size, model)
        return (_fit_and_keep, args, {**kwargs, "distsk_previous": previous,
                                      "distsk_keep": key is not None}), key

    def run(self):
        pending, self._pending = self._pending, []
        super().run()
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


def _balanced(estimator, params) -> bool:
    # A warm start with class_weight="balanced*" warns where a fresh fit does not.
    weight = params.get("class_weight", estimator.get_params(deep=False).get("class_weight"))
    return isinstance(weight, str)


def _fold_key(train) -> str:
    from joblib import hash as joblib_hash

    return joblib_hash(np.asarray(train))


def _fit_and_keep(estimator, X, y, *, distsk_previous=None, distsk_keep=False, **kwargs):
    """sklearn's ``_fit_and_score``, grown from ``distsk_previous`` (size, model) if given.

    The result's "estimator" is ``(grown_from, trees_fitted, model)``: ``model`` the
    fitted model to grow next round (when ``distsk_keep`` and the fit succeeded).
    """
    from ._compat import _fit_and_score

    param = size_param(estimator)
    grown_from = None
    if distsk_previous is not None:
        grown_from, model = distsk_previous
        grown = _grown_class(type(estimator)).__new__(_grown_class(type(estimator)))
        grown.__dict__.update(estimator.__dict__)
        grown._distsk_previous = model
        estimator = grown
    result = _fit_and_score(estimator, X, y, return_estimator=True, **kwargs)
    model = result.pop("estimator", None)
    size = (kwargs.get("parameters") or {})[param]
    keep = distsk_keep and result.get("fit_error") is None and model is not None
    result["estimator"] = (grown_from, size - (grown_from or 0), model if keep else None)
    return result


_GROWN_CLASSES: dict[type, type] = {}


def _grown_class(base: type) -> type:
    cls = _GROWN_CLASSES.get(base)
    if cls is None:
        cls = _GROWN_CLASSES[base] = type(base.__name__, (base,), {
            "fit": _grow_fit, "__module__": base.__module__,
            "__qualname__": base.__qualname__,
        })
    return cls


def _grow_fit(self, X, y=None, **params):
    """Add the missing trees to the previous round's model (warm start), as ``base``."""
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
