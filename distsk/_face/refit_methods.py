"""What a fitted search does with its refit model: predict, transform, ... as
GridSearchCV's methods (their signatures and docstrings), but blockwise on the cluster
for dask input (column names kept), as DistributedEstimator does."""

from __future__ import annotations

import types

from sklearn.utils.validation import check_is_fitted

from .._cluster.data import computed_delayed
from .._compat import BaseSearchCV, _search_estimator_has
from .._decide.profile import profile_input
from .delegation import _delegated
from .estimator import _blockwise

__all__ = ["RefitModelMethods"]


def _own_method(search, method):
    """BaseSearchCV's ``method``, bound to ``search``: what GridSearchCV shows."""
    return types.MethodType(getattr(BaseSearchCV, method), search)


class RefitModelMethods:
    """Mixin of DistributedSearchCV (before ``BaseSearchCV`` in its bases)."""

    def _call(self, method, X, *args, **params):
        X = computed_delayed(X, "X", self.max_gather_bytes)
        if profile_input(X).lazy and not args:
            check_is_fitted(self)
            return _blockwise(self.best_estimator_, method, X, params)
        return getattr(super(), method)(X, *args, **params)

    # Signatures and docstrings shown are GridSearchCV's (BaseSearchCV's methods).
    predict = _delegated("predict", _search_estimator_has, "Predictions", _own_method)
    predict_proba = _delegated(
        "predict_proba", _search_estimator_has, "Class probabilities", _own_method)
    predict_log_proba = _delegated(
        "predict_log_proba", _search_estimator_has, "Log class probabilities", _own_method)
    decision_function = _delegated(
        "decision_function", _search_estimator_has, "Decision function", _own_method)
    score_samples = _delegated(
        "score_samples", _search_estimator_has, "Per-sample scores", _own_method)
    transform = _delegated("transform", _search_estimator_has, "Transformed data", _own_method)
