"""DistributedEstimator: profile the input, plan the engine, run it.

``fit`` is the whole pipeline: profile X and the compute present, plan (a pure
decision), execute through the plan's engine. Prediction-like methods are plain calls
on in-memory input and blockwise cluster tasks on dask collections.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
import time
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier, is_regressor
from sklearn.utils import get_tags
from sklearn.utils.metadata_routing import MetadataRouter, MethodMapping, process_routing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._cluster.client import (
    clone_sharing_client,
    inside_worker,
    portable_state,
    using_client,
)
from .._cluster.data import (
    computed_delayed,
    gather_inputs,
    inputs_to_read,
    resolve_gather_limit,
)
from .._compat import (
    HasMethods,
    HTMLReprHook,
    Interval,
    StrOptions,
    _fit_context,
    _routing_enabled,
)
from .._decide.learned import learned_costs
from .._decide.planning import BACKENDS, Plan, parallel_kind, plan_fit
from .._decide.profile import profile_input
from .._engines import ExecutionContext, get_executor
from .._engines.base import pinned
from .._search.driver import Driver
from .delegation import (
    _DELEGATED,
    _delegated,
    _fit_signature,
    _inner_has,
    _inner_method,
    _named_arguments,
)
from .notebook import html_repr_with_plan

__all__ = ["DistributedEstimator", "explain", "resolve_gather_limit", "gather_inputs"]

_log = logging.getLogger("distsk")

class DistributedEstimator(MetaEstimatorMixin, HTMLReprHook, BaseEstimator):
    """Run any scikit-learn estimator the fastest correct way on the compute present.

    At ``fit`` the input (numpy, pandas, scipy.sparse, dask) and the compute (an active
    ``distributed.Client``, its workers and memory, local cores) are profiled, an engine
    is chosen, and the choice and its reason are kept in ``plan_``. The fitted model is
    the same one plain scikit-learn would produce.

    Parameters
    ----------
    estimator : estimator object
        The scikit-learn (or xgboost) estimator to fit. It is cloned.
    backend : str, default="auto"
        The engine: "auto" or one of ``distsk.BACKENDS`` ("sequential", "loky", "dask",
        "dask-ml", "xgboost", "xgboost-external-memory"). "auto" decides from the data and compute (see "How distsk decides");
        "sequential" fits in this process with inner parallelism off; "loky" fits in this
        process with the estimator's own ``n_jobs``; "dask" fits in-memory data on the
        cluster; "dask-ml" and "xgboost" train on dask collections where they live;
        "xgboost-external-memory" trains xgboost models on dask data larger than the
        workers' memory (xgboost's external memory, one task per worker).
    client : None, distributed.Client or str, default=None
        The cluster. None uses the active client if there is one (a client is never
        started silently); a string is a scheduler address to connect to.
    max_gather_bytes : "auto", int or str, default="auto"
        Dask input up to this size is gathered into memory and fit as in-memory data.
        "auto" is a quarter of this machine's free memory; text like "2GB" is accepted.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted estimator: a plain, picklable object usable without any cluster.
    plan_ : Plan
        How the fit ran (``plan_.executor``, ``plan_.strategy``) and why (``plan_.reason``).

    See Also
    --------
    explain : The plan for a fit, without fitting.
    DistributedSearchCV : Hyperparameter search on every core and every worker.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> from distsk import DistributedEstimator
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> est = DistributedEstimator(RandomForestClassifier(n_estimators=5, random_state=0))
    >>> est.fit(X, y).plan_.executor
    'sequential'
    >>> est.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit"])],
        "backend": [StrOptions({"auto", *BACKENDS})],
        "client": "no_validation",
        "max_gather_bytes": [Interval(Integral, 0, None, closed="left"), str],
    }

    def __init__(self, estimator, *, backend="auto", client=None, max_gather_bytes="auto"):
        self.estimator = estimator
        self.backend = backend
        self.client = client
        self.max_gather_bytes = max_gather_bytes

    # ------------------------------------------------------------------ planning
    def _driver(self) -> Driver:
        # A fit connects to the cluster option whatever the backend (an engine may
        # need it; a bad address fails here, as before any work).
        return Driver(backend=self.backend, client=self.client,
                      max_gather_bytes=self.max_gather_bytes, connect=True)

    def _plan(self, driver: Driver, X, y=None, fit_params=None):
        """``(plan, X, y, fit_params)``: the input read (a ``dask.delayed`` resolved;
        lazy X measured for "auto") and planned, through ``driver``."""
        client, compute = driver.where()
        X, y, fit_params, prof = driver.read(X, y, fit_params or {}, client=client,
                                             measure=self.backend == "auto")
        nested = self.backend == "auto" and inside_worker()
        plan = plan_fit(
            self.estimator, prof, compute,
            backend=self.backend,
            max_gather_bytes=resolve_gather_limit(self.max_gather_bytes),
            inside_worker=nested,
            costs=learned_costs().costs(client) if self.backend == "auto" and not nested else None,
        )
        return plan, X, y, fit_params

    # ------------------------------------------------------------------ fitting
    def _fit(self, X, y, fit_params, then=None):
        if _routing_enabled():
            fit_params = process_routing(self, "fit", **fit_params).estimator.fit
        driver = self._driver()
        plan, X, y, fit_params = self._plan(driver, X, y, fit_params)
        client = driver.where()[0]
        lazy_X = X if plan.on_workers else None
        X, y, fit_params = driver.put(X, y, fit_params, plan.input, client=client,
                                      on_workers=plan.on_workers, gather=plan.gather)
        with using_client(client):
            try:
                return self._run(plan, client, X, y, fit_params, then, lazy_X)
            finally:
                if plan.on_workers:
                    X.future.release()

    def _run(self, plan, client, X, y, fit_params, then, lazy_X):
        estimator = clone(self.estimator)
        out = None
        started = time.perf_counter()
        if then is not None and plan.executor in ("sequential", "loky"):
            # fit_transform / fit_predict in one call, as the estimator defines them.
            ctx = pinned() if plan.executor == "sequential" else contextlib.nullcontext()
            with ctx:
                method = getattr(estimator, then)
                out = method(X, y, **fit_params)
            self.estimator_ = estimator
        else:
            self.estimator_ = get_executor(plan.executor).fit(
                estimator, X, y, fit_params, ExecutionContext(plan, client)
            )
            if then is not None and lazy_X is not None:
                # X stayed on the cluster: the output is computed blockwise there.
                out = _blockwise(self.estimator_, then.removeprefix("fit_"), lazy_X, {})
                out = out.compute()
            elif then is not None:
                out = getattr(self.estimator_, then.removeprefix("fit_"))(X)
        # The actual time beside the prediction; timed fits teach the cost model.
        spent = time.perf_counter() - started
        if then is None and plan.executor in ("sequential", "loky", "dask"):
            learned_costs().learn_fit_rate(self.estimator, parallel_kind(self.estimator), plan, spent)
        self.plan_, note = learned_costs().learn(plan, spent)
        if note:
            _log.info("distsk cost model: %s", note)
        return out

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **fit_params):
        """Fit the estimator on the engine the plan chooses.

        Parameters
        ----------
        X : array-like, sparse matrix, DataFrame, dask Array or dask DataFrame
            Training data.
        y : array-like or dask collection, default=None
            Target values; None for unsupervised estimators.
        **fit_params : dict
            Passed to the estimator's ``fit`` (routed when metadata routing is enabled).

        Returns
        -------
        self : DistributedEstimator
        """
        self._fit(X, y, fit_params)
        return self

    fit = _fit_signature(fit)

    @available_if(_inner_has("fit_transform"))
    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None, **fit_params):
        """Fit, then transform ``X``; one ``fit_transform`` call where it runs in-process."""
        return self._fit(X, y, fit_params, then="fit_transform")

    @available_if(_inner_has("fit_predict"))
    @_fit_context(prefer_skip_nested_validation=False)
    def fit_predict(self, X, y=None, **fit_params):
        """Fit, then predict ``X``; one ``fit_predict`` call where it runs in-process."""
        return self._fit(X, y, fit_params, then="fit_predict")

    @available_if(_inner_has("partial_fit"))
    def partial_fit(self, X, y=None, **params):
        """Incremental fit on one batch, in this process (dask batches are gathered)."""
        if _routing_enabled():
            params = process_routing(self, "partial_fit", **params).estimator.partial_fit
        X, y, params = inputs_to_read(X, y, params, self.max_gather_bytes)
        if profile_input(X).lazy:
            X, y, params = gather_inputs(X, y, params)
        if "estimator_" not in self.__dict__:
            self._validate_params()
            self.estimator_ = clone(self.estimator)
            self.plan_ = Plan(
                "sequential", "in-process",
                "partial_fit runs in this process on each batch it is given.", n_jobs=1,
            )
        if y is None:
            self.estimator_.partial_fit(X, **params)
        else:
            self.estimator_.partial_fit(X, y, **params)
        return self

    # ------------------------------------------------------------------ delegation
    def _model(self):
        """The fitted estimator; unfitted, a stateless one (``requires_fit=False``), which
        sklearn uses as it is (Binarizer, Normalizer, FunctionTransformer, ...)."""
        check_is_fitted(self)
        return self.__dict__.get("estimator_", self.estimator)

    def _call(self, method, X, *args, **params):
        model = self._model()
        if _routing_enabled():
            # Arguments the method names (PLSRegression.transform's y, copy) are passed
            # as given; only the rest is metadata to route.
            named, params = _named_arguments(getattr(model, method), params)
            routed = getattr(process_routing(self, method, **params).estimator, method)
            params = {**named, **routed}
        X = computed_delayed(X, "X", self.max_gather_bytes)
        if profile_input(X).lazy:
            _no_extra_arguments(method, args)
            return _blockwise(model, method, X, params)
        return getattr(model, method)(X, *args, **params)

    predict = _delegated("predict", _inner_has, "Predictions", _inner_method)
    predict_proba = _delegated(
        "predict_proba", _inner_has, "Class probabilities", _inner_method)
    predict_log_proba = _delegated(
        "predict_log_proba", _inner_has, "Log class probabilities", _inner_method)
    decision_function = _delegated(
        "decision_function", _inner_has, "Decision function", _inner_method)
    transform = _delegated("transform", _inner_has, "Transformed data", _inner_method)
    inverse_transform = _delegated(
        "inverse_transform", _inner_has, "Inverse transform", _inner_method)
    score_samples = _delegated("score_samples", _inner_has, "Per-sample scores", _inner_method)

    @available_if(_inner_has("score"))
    def score(self, X, y=None, **params):
        """The estimator's score; from blockwise predictions for dask input."""
        model = self._model()
        if _routing_enabled():
            params = process_routing(self, "score", **params).estimator.score
        X, y, params = inputs_to_read(X, y, params, self.max_gather_bytes)
        if not profile_input(X).lazy:
            return model.score(X, y, **params)
        return _score_lazy(self, X, y, params)

    @available_if(_inner_has("get_feature_names_out"))
    def get_feature_names_out(self, input_features=None):
        """Output feature names of the fitted estimator."""
        return self._model().get_feature_names_out(input_features)

    @available_if(_inner_has("set_output"))
    def set_output(self, *, transform=None):
        """Set the output container of ``transform`` (as the inner estimator's)."""
        self.estimator.set_output(transform=transform)
        if "estimator_" in self.__dict__:
            self.estimator_.set_output(transform=transform)
        return self

    def __getattr__(self, name):
        # Fitted attributes (classes_, coef_, n_features_in_, ...) come from the fitted
        # estimator only; read __dict__ directly so unpickling cannot recurse.
        if name.endswith("_") and not name.startswith("_") and not name.endswith("__"):
            est = self.__dict__.get("estimator_")
            if est is not None:
                return getattr(est, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __sklearn_is_fitted__(self):
        if "estimator_" in self.__dict__:
            return True
        # Unfitted, a stateless inner estimator is as fitted as it says it is (always,
        # for FunctionTransformer): the wrapper then answers as the inner one would.
        inner = self.estimator
        return (hasattr(inner, "__sklearn_is_fitted__") and not _requires_fit(inner)
                and bool(inner.__sklearn_is_fitted__()))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            inner = copy.deepcopy(get_tags(self.estimator))
        except Exception:  # estimators without tags: keep the defaults
            return tags
        inner.array_api_support = False
        return inner

    # In a notebook: sklearn's diagram, then the plan once fitted (distsk._face.notebook).
    _html_repr = html_repr_with_plan

    def __getstate__(self):
        return portable_state(super().__getstate__())

    def __sklearn_clone__(self):
        return clone_sharing_client(self)

    def get_metadata_routing(self):
        """Route metadata of every method to the inner estimator."""
        mapping = MethodMapping()
        for method in ("fit", "partial_fit", "score", *_DELEGATED):
            if method != "score_samples":
                mapping.add(caller=method, callee=method)
        return MetadataRouter(owner=self).add(estimator=self.estimator, method_mapping=mapping)


# ---------------------------------------------------------------------------- dask input
def _apply(block, estimator, method, params, kind, empty=None):
    if empty is not None and len(block) == 0:
        # sklearn refuses zero rows, but a block of a non-empty collection can be empty
        # (boolean-masked arrays, filtered frames): its share of the output is empty.
        return empty.set_axis(block.index, axis=0) if kind == "dask-dataframe" else empty
    out = getattr(estimator, method)(_aligned(block), **params)
    if kind == "dask-dataframe":
        import pandas as pd

        if isinstance(out, (pd.DataFrame, pd.Series)):
            return out.set_axis(block.index, axis=0)
        if np.ndim(out) == 1:
            return pd.Series(out, index=block.index)
        return pd.DataFrame(out, index=block.index)
    return out


def _blockwise(estimator, method, X, params):
    """``estimator.method`` on each block of a dask collection, as a lazy collection."""
    import dask

    kind = profile_input(X).kind
    est = dask.delayed(estimator, pure=True)
    if kind == "dask-array":
        if X.ndim == 2 and X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        sample = getattr(estimator, method)(_first_rows(X), **params)
        # meta is given: dask cannot infer it through a delayed estimator.
        meta = np.empty((0,) * np.ndim(sample), dtype=sample.dtype)
        if np.ndim(sample) == 1:
            return X.map_blocks(_apply, est, method, params, kind, sample[:0], meta=meta,
                                drop_axis=1, chunks=(X.chunks[0],))
        return X.map_blocks(_apply, est, method, params, kind, sample[:0], meta=meta,
                            chunks=(X.chunks[0], (sample.shape[1],)))
    head = X.head(1, npartitions=-1)
    meta = _apply(head, estimator, method, params, kind).iloc[:0]
    return X.map_partitions(_apply, est, method, params, kind, meta, meta=meta)


def _aligned(block):
    """``block``, copied if its numbers sit at addresses unaligned for their dtype.

    After a cluster computed a dask collection, dask can serve even a local recompute
    of it from the receive buffer, at odd addresses (seen with ``dd.from_pandas``);
    sklearn's output on such input differs in the last bits from its output on the
    same numbers laid out as usual (the reason for ``_own``, too).
    """
    if isinstance(block, np.ndarray):
        return block if block.flags.aligned else np.array(block, order="K", copy=True)
    pd = sys.modules.get("pandas")
    if pd is None or not isinstance(block, (pd.DataFrame, pd.Series)):
        return block  # sparse or other blocks, as they are
    columns = [block] if block.ndim == 1 else (block.iloc[:, i] for i in range(block.shape[1]))
    for column in columns:
        values = column.to_numpy(copy=False)
        if isinstance(values, np.ndarray) and not values.flags.aligned:
            return _copied_in_layout(block, pd)
    return block


def _copied_in_layout(frame, pd):
    """A deep copy of ``frame`` whose numbers keep their memory layout.

    sklearn reads a one-dtype frame as a view of its block (``to_numpy``), and BLAS gives
    other last bits on a C-ordered array than on an F-ordered one. pandas 2.x's
    ``copy(deep=True)`` re-lays a block in C order (pandas GH#60469, fixed in 3.0):
    predictions on the copy differed from sklearn's on the frame in the last bit.
    """
    if frame.ndim == 2:
        values = frame.to_numpy(copy=False)  # a view of the block when there is one
        if isinstance(values, np.ndarray) and not values.flags.owndata and values.size:
            copied = pd.DataFrame(np.array(values, order="K", copy=True),
                                  index=frame.index, columns=frame.columns, copy=False)
            if (copied.dtypes == frame.dtypes).all():
                copied.attrs = dict(frame.attrs)
                return copied
    return frame.copy(deep=True)  # a Series, or blocks to_numpy interleaves anyway


def _no_extra_arguments(method, args):
    if args:
        raise TypeError(
            f"{method}() got {len(args)} positional argument(s) after X; on a dask "
            "collection X, distsk runs the method block by block and can pass only "
            "keyword parameters. Compute X first (X.compute()) to pass them."
        )


def _requires_fit(estimator) -> bool:
    try:
        return bool(get_tags(estimator).requires_fit)
    except Exception:  # an estimator without tags: as sklearn's default
        return True


def _first_rows(X):
    """The first row of a dask array (none if it is empty), to learn the output's shape.

    Unknown chunk sizes (a boolean-masked array) cannot be sliced, so blocks are
    computed in order until one has rows.
    """
    if not np.isnan(X.shape[0]):
        return X[:1].compute()
    for i in range(X.numblocks[0]):
        block = X.blocks[i].compute()
        if len(block):
            break
    return block[:1]


def _score_lazy(self, X, y, params):
    from sklearn.metrics import accuracy_score, r2_score

    est = self._model()
    if is_classifier(est) or is_regressor(est):
        y_pred = _blockwise(est, "predict", X, {})
        y_true, y_pred, params = gather_inputs(y, y_pred, params)
        metric = accuracy_score if is_classifier(est) else r2_score
        return float(metric(np.asarray(y_true), np.asarray(y_pred), **params))
    from .._cluster.data import compute_all

    X, y = compute_all(X, y)
    return est.score(X, y, **params)


def explain(estimator, X, y=None, client=None) -> Plan:
    """The plan ``DistributedEstimator(estimator).fit(X, y)`` would follow, without fitting.

    Parameters
    ----------
    estimator : estimator or DistributedEstimator
        A plain estimator is planned with the default options (``backend="auto"``).
    X : array-like, DataFrame, sparse matrix or dask collection
        The training input (only profiled; a dask DataFrame's size is measured).
    y : ignored
        Accepted so the call reads like ``fit``.
    client : None, distributed.Client or str, default=None
        The cluster to plan for; None uses the active client, if any.

    Returns
    -------
    plan : Plan
        With ``executor``, ``strategy``, a one-sentence ``reason`` naming what each
        engine was predicted to take, and ``predictions``: one entry per engine
        considered, with its predicted seconds (None until a fit of the estimator's
        type was timed in this process), predicted peak memory and the memory there;
        ``plan.predictions_table()`` prints them. See "How distsk decides".

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from distsk import explain
    >>> explain(LogisticRegression(), np.zeros((100, 4))).executor
    'sequential'
    >>> [p.engine for p in explain(LogisticRegression(), np.zeros((100, 4))).predictions]
    ['sequential']
    """
    if not isinstance(estimator, DistributedEstimator):
        estimator = DistributedEstimator(estimator, client=client)
    elif client is not None:
        estimator = clone(estimator).set_params(client=client)
    estimator._validate_params()
    # A dask.delayed X is computed: its size is unknown until then.
    return estimator._plan(estimator._driver(), X)[0]
