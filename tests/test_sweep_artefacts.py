"""The estimator sweep's remaining failures come from the checks, not from distsk.

benchmarks/estimator_sweep.py runs check_estimator on every sklearn estimator wrapped in
a DistributedEstimator subclass named after it; docs/internals.rst ("The estimator
sweep") lists the checks that fail and why. Each check configures a *plain* estimator
by reaching into it -- an attribute (``regressor.alpha = 0.01``, ``n_components = 1``),
``set_params`` with the inner estimator's names, or ``getattr(est, "metric")`` to
choose the input, ``"cv" in est.get_params()`` -- which a meta-estimator's own
parameters do not answer. For each:
wrapped and plain estimators configured alike behave alike, and the wrapped one passes
the same check once its inner estimator is configured as the check configures a plain
one.
"""

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import OPTICS
from sklearn.decomposition import NMF
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LassoCV,
    LassoLars,
    LogisticRegressionCV,
    MultiTaskElasticNet,
    MultiTaskLasso,
    MultiTaskLassoCV,
    QuantileRegressor,
    RidgeClassifierCV,
    RidgeCV,
)
from sklearn.manifold import TSNE, LocallyLinearEmbedding
from sklearn.metrics.pairwise import linear_kernel
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks as ec

from distsk import DistributedEstimator


def wrapped(inner, name=None, **params):
    """``inner`` (its parameters updated by ``params``, seeded) in a DistributedEstimator
    subclass called ``name`` -- by default the inner class's name, as in the sweep."""
    inner = clone(inner).set_params(**params)
    if "random_state" in inner.get_params():
        inner.set_params(random_state=0)
    cls = type(name or type(inner).__name__, (DistributedEstimator,), {})
    return cls(inner)


def outcome(est, X, y=None, method="predict"):
    """What fitting and then ``method`` gives: the output, or the exception's type and
    message."""
    try:
        est.fit(X, y)
        return np.asarray(getattr(est, method)(X)).tolist()
    except (ValueError, TypeError) as exc:
        return type(exc), str(exc)


def check(check_function, est):
    check_function(type(est).__name__, est)


# check_regressors_train sets ``regressor.alpha = 0.01`` by attribute: a plain regressor
# then fits with alpha=0.01, the wrapper's inner estimator keeps its own alpha.
REGULARISED = [Lasso(max_iter=5), ElasticNet(max_iter=5), LassoLars(max_iter=5),
               MultiTaskElasticNet(max_iter=5), MultiTaskLasso(max_iter=5),
               QuantileRegressor()]


@pytest.mark.parametrize("inner", REGULARISED, ids=lambda e: type(e).__name__)
def test_regressors_train_sets_alpha_by_attribute(inner):
    with pytest.raises(AssertionError):  # the sweep's failure: score <= 0.5 at alpha=1
        check(ec.check_regressors_train, wrapped(inner))
    check(ec.check_regressors_train, wrapped(inner, alpha=0.01))
    X, y = ec._regression_dataset()
    y = np.c_[y, y] if type(inner).__name__.startswith("MultiTask") else y
    assert outcome(DistributedEstimator(inner), X, y) == outcome(clone(inner), X, y)


# check_fit2d_1feature and check_methods_subset_invariance set ``n_components = 1`` when
# ``hasattr(est, "n_components")``; the wrapper has no such attribute.
@pytest.mark.parametrize(
    "inner", [LocallyLinearEmbedding(max_iter=5), TSNE(perplexity=2)],
    ids=lambda e: type(e).__name__)
def test_fit2d_1feature_sets_n_components_by_attribute(inner):
    X = 3 * np.random.RandomState(0).uniform(size=(10, 1))
    plain, wrapper = clone(inner).set_params(random_state=0), wrapped(inner)
    assert outcome(wrapper, X, method="fit") == outcome(plain, X, method="fit")
    assert "must be" in outcome(wrapper, X, method="fit")[1]  # n_components=2, 1 feature
    check(ec.check_fit2d_1feature, wrapped(inner, n_components=1))


def test_nmf_subset_invariance_sets_n_components_by_attribute():
    X = 3 * np.random.RandomState(0).uniform(size=(20, 3))
    inner = NMF(max_iter=500, random_state=0)  # as wrapped() seeds it
    assert outcome(wrapped(inner), X, method="transform") == outcome(
        clone(inner), X, method="transform")
    check(ec.check_methods_subset_invariance, wrapped(inner, n_components=1))


# check_fit2d_1sample (OPTICS, TSNE) and the sparse checks (StandardScaler) call
# ``est.set_params(<inner name>=...)`` when the class is called so: the wrapper's
# parameters are its own and ``estimator__<name>``. Under another name, with the
# inner estimator configured as the check configures the plain one, they pass.
@pytest.mark.parametrize(
    "inner, params, check_function",
    [
        (OPTICS(), {"min_samples": 1.0}, ec.check_fit2d_1sample),
        (TSNE(perplexity=2), {"perplexity": 0.5, "n_components": 1}, ec.check_fit2d_1sample),
        (StandardScaler(), {"with_mean": False}, ec.check_estimator_sparse_array),
        (StandardScaler(), {"with_mean": False}, ec.check_estimator_sparse_matrix),
    ],
    ids=lambda v: type(v).__name__ if hasattr(v, "fit") else None,
)
def test_checks_set_inner_parameters_on_the_wrapper(inner, params, check_function):
    with pytest.raises(ValueError, match="Invalid parameter"):
        check(check_function, wrapped(inner, **params))
    check(check_function, wrapped(inner, "Wrapped" + type(inner).__name__, **params))


# _enforce_estimator_tags_X gives a pairwise estimator distances when
# ``getattr(est, "metric") == "precomputed"`` and a linear kernel otherwise: a
# KNeighbors* with metric="precomputed" inside the wrapper gets similarities as
# distances (wrong neighbours; on sparse input, a graph with missing neighbours).
KNN = [KNeighborsClassifier(metric="precomputed"), KNeighborsRegressor(metric="precomputed")]


@pytest.mark.parametrize("inner", KNN, ids=lambda e: type(e).__name__)
def test_pairwise_checks_choose_the_input_by_attribute(inner):
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(40, 3))
    X[X < 0.6] = 0
    y = (4 * rng.uniform(size=40)).astype(int)
    K = linear_kernel(X, X)
    for data in (K, sp.csr_matrix(K)):
        assert outcome(DistributedEstimator(inner), data, y) == outcome(clone(inner), data, y)
    train = (ec.check_classifiers_train if type(inner) is KNeighborsClassifier
             else ec.check_regressors_train)
    checks = (ec.check_estimator_sparse_array, ec.check_estimator_sparse_matrix, train)
    for check_function in checks:
        with pytest.raises(AssertionError):
            check(check_function, wrapped(inner))

    def inner_metric(est):
        return getattr(getattr(est, "estimator", est), "metric", None) == "precomputed"

    with mock.patch.object(ec, "_is_pairwise_metric", inner_metric):  # distances given
        for check_function in checks:
            check(check_function, wrapped(inner))


# The sample-weight equivalence checks give an estimator with an internal CV scheme
# matched splits -- ``set_params(cv=...)`` when ``"cv" in est.get_params()``. The
# wrapper's is ``estimator__cv``, so the inner estimator keeps its own cv and the
# weighted and repeated fits see different folds. These checks run on the wrapper
# since its fit names sample_weight (tests/test_fit_signature.py).
class InnerNames(DistributedEstimator):
    """Test-only: also answers the inner estimator's parameter names (``cv`` for
    ``estimator__cv``), which is what the checks assume of any estimator."""

    def get_params(self, deep=True):
        params = super().get_params(deep)
        if deep:
            inner = self.estimator.get_params(deep=False)
            params.update({k: v for k, v in inner.items() if k not in params})
        return params

    def set_params(self, **params):
        own = super().get_params(deep=False)
        return super().set_params(
            **{k if k in own or "__" in k else f"estimator__{k}": v for k, v in params.items()})


@pytest.mark.parametrize(
    "inner",
    [RidgeCV(), RidgeClassifierCV(), LassoCV(max_iter=5, cv=3), MultiTaskLassoCV(max_iter=5, cv=3),
     LogisticRegressionCV(max_iter=100), CalibratedClassifierCV()],
    ids=lambda e: type(e).__name__,
)
def test_sample_weight_equivalence_sets_cv_by_top_level_name(inner):
    name = type(inner).__name__
    for check_function in (ec.check_sample_weight_equivalence_on_dense_data,
                           ec.check_sample_weight_equivalence_on_sparse_data):
        try:
            check_function(name, clone(inner))  # plain: passes
        except TypeError as exc:  # sklearn 1.6: MultiTaskLassoCV's inner fit takes none
            pytest.skip(f"plain {name} fails this check on scikit-learn "
                        f"{sklearn.__version__}: {exc}")
        with pytest.raises(AssertionError, match="not equivalent"):
            check_function(name, wrapped(inner))
        check_function(name, type(name, (InnerNames,), {})(clone(inner)))
