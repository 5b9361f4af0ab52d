"""Wrapped estimators' methods behave as the inner estimator's: the same arguments
(PLSRegression's ``transform(X, y)``), the same signature and docstring for ``help()``
and IDEs, and stateless transformers usable unfitted, as in plain scikit-learn."""

import inspect

import numpy as np
import pytest
import sklearn
from sklearn.cross_decomposition import CCA, PLSRegression
from sklearn.exceptions import NotFittedError
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import Binarizer, FunctionTransformer, Normalizer
from sklearn.utils.validation import check_is_fitted

from distsk import DistributedEstimator, DistributedSearchCV

rng = np.random.RandomState(0)
X = rng.rand(40, 5)
Y = X[:, :2] @ rng.rand(2, 2) + 0.1 * rng.rand(40, 2)

CROSS_DECOMPOSITION = [PLSRegression(n_components=2), CCA(n_components=2)]


@pytest.mark.parametrize("inner", CROSS_DECOMPOSITION, ids=lambda e: type(e).__name__)
def test_transform_takes_x_and_y_as_the_inner_estimator(inner):
    plain = sklearn.clone(inner).fit(X, Y)
    wrapped = DistributedEstimator(inner, backend="sequential").fit(X, Y)
    for got, expected in zip(wrapped.transform(X, Y), plain.transform(X, Y)):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(wrapped.transform(X, y=Y, copy=True), plain.transform(X, Y)):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(wrapped.transform(X), plain.transform(X))
    np.testing.assert_array_equal(wrapped.predict(X, copy=True), plain.predict(X))
    too_many = [None] * len(inspect.signature(plain.transform).parameters)
    with pytest.raises(TypeError) as wrapped_error:
        wrapped.transform(X, *too_many)
    with pytest.raises(TypeError) as plain_error:
        plain.transform(X, *too_many)
    assert str(wrapped_error.value) == str(plain_error.value)


@pytest.mark.parametrize("inner", CROSS_DECOMPOSITION, ids=lambda e: type(e).__name__)
def test_transform_with_routing_enabled_passes_named_arguments(inner):
    plain = sklearn.clone(inner).fit(X, Y)
    with sklearn.config_context(enable_metadata_routing=True):
        wrapped = DistributedEstimator(inner, backend="sequential").fit(X, Y)
        got = wrapped.transform(X, y=Y)
    for a, b in zip(got, plain.transform(X, Y)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("method", ["transform", "inverse_transform", "predict"])
def test_methods_show_the_inner_signature_and_docstring(method):
    plain = PLSRegression(n_components=2)
    wrapped = DistributedEstimator(plain)
    bound = getattr(wrapped, method)
    assert inspect.signature(bound) == inspect.signature(getattr(plain, method))
    assert bound.__doc__ == getattr(plain, method).__doc__
    assert bound.__name__ == method
    wrapped.fit(X, Y)  # once fitted, the fitted model's method
    assert inspect.signature(getattr(wrapped, method)) == inspect.signature(
        getattr(plain, method))


def test_methods_pickle_by_name_as_sklearn_methods_do():
    import pickle

    wrapped = DistributedEstimator(PLSRegression(n_components=2), backend="sequential")
    wrapped.fit(X, Y)
    again = pickle.loads(pickle.dumps(wrapped.transform))
    np.testing.assert_array_equal(again(X), wrapped.transform(X))
    assert again.__self__ is not wrapped and again.__name__ == "transform"


def test_search_methods_show_gridsearchcv_signature_and_docstring():
    grid = {"C": [1.0]}
    ours = DistributedSearchCV(LogisticRegression(), grid)
    theirs = GridSearchCV(LogisticRegression(), grid)
    for method in ("predict", "predict_proba", "decision_function", "score_samples"):
        if not hasattr(theirs, method):
            assert not hasattr(ours, method)
            continue
        assert inspect.signature(getattr(ours, method)) == inspect.signature(
            getattr(theirs, method))
        assert getattr(ours, method).__doc__ == getattr(theirs, method).__doc__
    assert not hasattr(ours, "transform") and not hasattr(theirs, "transform")


def test_methods_exist_exactly_when_the_inner_estimator_has_them():
    wrapped = DistributedEstimator(LogisticRegression())
    assert hasattr(wrapped, "predict_proba") and not hasattr(wrapped, "transform")
    with pytest.raises(AttributeError, match="transform"):
        wrapped.transform  # noqa: B018
    assert "X" in inspect.signature(DistributedEstimator.predict).parameters


STATELESS = [Binarizer(), Normalizer(), FunctionTransformer(np.sqrt), AdditiveChi2Sampler()]


@pytest.mark.parametrize("inner", STATELESS, ids=lambda e: type(e).__name__)
def test_stateless_transformers_work_unfitted_as_plain(inner):
    wrapped = DistributedEstimator(inner)
    np.testing.assert_array_equal(wrapped.transform(X), inner.transform(X))
    check_is_fitted(wrapped)  # as check_is_fitted(inner): requires_fit=False
    assert "estimator_" not in wrapped.__dict__  # nothing was fitted on the way
    assert wrapped.__sklearn_is_fitted__() == (
        inner.__sklearn_is_fitted__() if hasattr(inner, "__sklearn_is_fitted__") else False)


def test_an_unfitted_stateful_estimator_still_refuses_to_predict():
    with pytest.raises(NotFittedError):
        DistributedEstimator(LogisticRegression()).predict(X)
    assert DistributedEstimator(LogisticRegression()).__sklearn_is_fitted__() is False


def test_extra_positional_arguments_on_dask_input_are_refused_clearly():
    import dask.array as da

    wrapped = DistributedEstimator(PLSRegression(n_components=2), backend="sequential")
    wrapped.fit(X, Y)
    with pytest.raises(TypeError, match="positional argument.*Compute X first"):
        wrapped.transform(da.from_array(X, chunks=10), Y)
