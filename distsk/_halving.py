"""Successive halving on distsk's engine: sklearn's halving searches, rounds run by distsk.

sklearn's ``BaseSuccessiveHalving._run_search`` decides every round (candidates,
resources, survivors) and calls ``evaluate_candidates`` once per round; each call is one
``Parallel`` call whose fits the :class:`~distsk._search_engine.CollectorBackend` hands
to the plan's runner, as for :class:`~distsk.DistributedSearchCV` (whose ``fit`` these
classes reuse). Results, ties and errors are therefore sklearn's own.
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral

import numpy as np
from sklearn.model_selection import ParameterGrid, ParameterSampler
from sklearn.utils.validation import _num_samples

from ._compat import (
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    Interval,
    StrOptions,
)
from ._planning import SEARCH_BACKENDS
from ._search import DistributedSearchCV, _n_splits_hint

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
            Training data; dask input is gathered when under ``max_gather_bytes``.
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
        try:
            self._n_samples_hint = _num_samples(X)
        except TypeError:
            self._n_samples_hint = None
        try:
            return super().fit(X, y, **params)
        finally:
            self.__dict__.pop("_n_samples_hint", None)

    def _planning_candidates(self):
        raise NotImplementedError

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
        Dask input up to this size is gathered into memory; larger input is an error.
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
        with warnings.catch_warnings():  # sklearn's own sampling warns, once, in fit
            warnings.simplefilter("ignore")
            return list(ParameterSampler(self.param_distributions, n,
                                         random_state=self.random_state))

