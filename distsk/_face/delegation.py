"""Methods a meta-estimator shows as its inner estimator's: present exactly when the
inner estimator has them (``hasattr`` tells the truth), with its signature and
docstring (``_delegated``), and ``fit`` with the inner ``fit``'s parameter names
(``_fit_signature``). Used by DistributedEstimator and DistributedSearchCV."""

from __future__ import annotations

import functools
import inspect
import types

from sklearn.utils.metaestimators import available_if

_DELEGATED = (
    "predict", "predict_proba", "predict_log_proba", "decision_function", "transform",
    "inverse_transform", "score_samples",
)


def _inner_has(name):
    def check(self):
        est = self.__dict__.get("estimator_", self.estimator)
        return hasattr(est, name) or hasattr(self.estimator, name)

    return check


class _delegated:
    """``method`` of a meta-estimator: ``obj._call(method, X, *args, **params)``, which
    runs it on the model -- blockwise on the cluster for dask input.

    Present exactly when ``has(method)(obj)`` says so (sklearn's ``available_if`` makes
    the check, so ``hasattr`` and its AttributeError are sklearn's). On an instance it is
    a bound method that looks like the one ``like(obj, method)`` returns -- the inner
    estimator's, or BaseSearchCV's -- in signature and docstring (``help()``,
    ``inspect.signature`` and IDEs see them), takes exactly its arguments, and pickles by
    name as sklearn's methods do.
    """

    def __init__(self, method: str, has, what: str, like):
        def call(self, X, *args, **params):
            return self._call(method, X, *args, **params)

        call.__name__ = call.__qualname__ = method
        call.__doc__ = (f"{what} of the fitted model (``{method}``), with its signature; "
                        "blockwise on the cluster for dask input, returning a dask "
                        "collection.")
        self.method, self.like = method, like
        self.guard = available_if(has(method))(call)
        self._looks_like: dict = {}  # one function per method it stands for

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.guard.__get__(None, owner)
        self.guard.__get__(obj, owner)  # AttributeError when the model lacks it
        like = self.like(obj, self.method)
        return types.MethodType(self._function(getattr(like, "__func__", like), obj), obj)

    def _function(self, like, obj):
        func = self._looks_like.get((like, type(obj)))
        if func is None:
            method = self.method

            def func(self, X, *args, **params):
                return self._call(method, X, *args, **params)

            functools.update_wrapper(func, like)  # __wrapped__: the signature shown
            func.__name__ = method  # bound methods pickle as getattr(obj, __name__)
            func.__qualname__ = f"{type(obj).__name__}.{method}"
            func.__module__ = type(obj).__module__
            self._looks_like[like, type(obj)] = func
        return func


class _fit_signature:
    """``fit`` whose signature on an instance also names the inner estimator's ``fit``
    parameters (``sample_weight``, ...), keyword-only, before ``**fit_params``.

    sklearn decides from ``signature(est.fit)`` whether an estimator takes sample
    weights (``has_fit_parameter``): AdaBoost, RANSAC and the multi-output wrappers
    refuse one that does not; CalibratedClassifierCV fits it without the weights. The
    wrapper takes whatever its inner estimator does, so it says so. On the class,
    ``fit`` is the plain function (docs).
    """

    def __init__(self, func):
        self.func = func
        functools.update_wrapper(self, func)
        self._functions: dict = {}  # one per inner fit signature

    def __get__(self, obj, owner=None):
        if obj is None:
            return self.func
        # __dict__ read directly: a half-unpickled object has no ``estimator`` yet.
        inner_fit = getattr(type(obj.__dict__.get("estimator")), "fit", None)
        func = self._functions.get(inner_fit)
        if func is None:
            func = self._functions[inner_fit] = self._with_signature(inner_fit)
        return types.MethodType(func, obj)

    def _with_signature(self, inner_fit):
        own = inspect.signature(self.func)
        try:
            inner = list(inspect.signature(inner_fit).parameters.values())[1:]
        except (TypeError, ValueError):  # no fit, or no signature to read
            return self.func
        names = set(own.parameters)
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        extra = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inner
                 if p.name not in names and p.kind in named]
        if not extra:
            return self.func
        *head, var_kw = own.parameters.values()
        fit = self.func

        @functools.wraps(fit)
        def func(estimator, *args, **kwargs):
            return fit(estimator, *args, **kwargs)

        func.__signature__ = own.replace(parameters=[*head, *extra, var_kw])
        return func


def _inner_method(obj, method):
    """The inner estimator's ``method`` (the fitted one's once fitted)."""
    return getattr(obj.__dict__.get("estimator_", obj.estimator), method)


def _named_arguments(func, params: dict) -> tuple[dict, dict]:
    """``params`` split into the arguments ``func`` names and the rest (metadata)."""
    try:
        names = {name for name, p in inspect.signature(func).parameters.items()
                 if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    except (TypeError, ValueError):  # no signature to read: everything is metadata
        names = set()
    named = {k: v for k, v in params.items() if k in names}
    return named, {k: v for k, v in params.items() if k not in names}
