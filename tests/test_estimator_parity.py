"""DistributedEstimator gives plain sklearn's model on every engine, with real clusters."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import DataConversionWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier

from distsk import DistributedEstimator

X, y = make_classification(n_samples=300, n_features=8, n_informative=4, n_classes=3,
                           random_state=0)
Xr, yr = make_regression(n_samples=300, n_features=8, random_state=0)
W = np.random.RandomState(1).uniform(0.1, 2.0, size=len(y))


def assert_same_forest(local, dist, Xt):
    assert len(dist.estimators_) == len(local.estimators_)
    for a, b in zip(local.estimators_, dist.estimators_):
        assert a.random_state == b.random_state
        assert_array_equal(a.tree_.feature, b.tree_.feature)
        assert_array_equal(a.tree_.threshold, b.tree_.threshold)
    assert_array_equal(local.predict(Xt), dist.predict(Xt))
    assert_array_equal(local.feature_importances_, dist.feature_importances_)
    if hasattr(local, "predict_proba"):
        assert_array_equal(local.predict_proba(Xt), dist.predict_proba(Xt))


@pytest.mark.parametrize(
    "forest, data",
    [
        (RandomForestClassifier(n_estimators=7, random_state=0), (X, y)),
        (ExtraTreesClassifier(n_estimators=6, random_state=3, class_weight="balanced_subsample"), (X, y)),
        (RandomForestRegressor(n_estimators=5, random_state=np.random.RandomState(5)), (Xr, yr)),
        (ExtraTreesRegressor(n_estimators=9, random_state=1, bootstrap=True), (Xr, yr)),
    ],
)
def test_split_forest_equals_local_forest(client, forest, data):
    Xd, yd = data
    local = clone(forest).fit(Xd, yd)
    est = DistributedEstimator(forest, backend="dask", client=client).fit(Xd, yd)
    assert est.plan_.strategy == "split-forest" and est.plan_.n_jobs == 2
    assert_same_forest(local, est.estimator_, Xd)
    # The merged forest keeps the user's parameters.
    assert est.estimator_.get_params()["n_estimators"] == forest.n_estimators
    assert est.estimator_.get_params()["warm_start"] is False


def test_split_forest_with_sample_weight_on_cli_cluster(cli_client):
    forest = RandomForestClassifier(n_estimators=8, random_state=0)
    local = clone(forest).fit(X, y, sample_weight=W)
    est = DistributedEstimator(forest, backend="dask", client=cli_client.scheduler.address)
    est.fit(X, y, sample_weight=W)
    assert_same_forest(local, est.estimator_, X)
    assert cli_client.scheduler.address in est.plan_.reason


@pytest.mark.parametrize(
    "est",
    [LogisticRegression(max_iter=500), Ridge(alpha=0.5), KNeighborsClassifier(n_jobs=2),
     RandomForestClassifier(n_estimators=5, random_state=0, oob_score=True)],
)
def test_cluster_fit_equals_local_fit(client, est):
    target = yr if isinstance(est, Ridge) else y
    Xd = Xr if isinstance(est, Ridge) else X
    local = clone(est).fit(Xd, target)
    dist = DistributedEstimator(est, backend="dask", client=client).fit(Xd, target)
    assert dist.plan_.executor == "dask"
    assert_array_equal(local.predict(Xd), dist.predict(Xd))
    if hasattr(local, "coef_"):
        assert_array_equal(local.coef_, dist.coef_)
    if hasattr(local, "oob_score_"):
        assert local.oob_score_ == dist.oob_score_


def test_active_client_is_used_without_passing_it(active_client):
    est = DistributedEstimator(LogisticRegression(), backend="dask").fit(X, y)
    assert active_client.scheduler.address in est.plan_.reason


@pytest.mark.parametrize("backend", ["sequential", "loky"])
def test_local_engines_equal_sklearn(backend):
    forest = RandomForestClassifier(n_estimators=6, random_state=0, n_jobs=2)
    local = clone(forest).fit(X, y)
    est = DistributedEstimator(forest, backend=backend).fit(X, y)
    assert est.plan_.executor == backend
    assert_same_forest(local, est.estimator_, X)


def test_worker_exception_keeps_type_and_message(client):
    y_bad = y.astype(float)
    y_bad[3] = np.nan
    with pytest.raises(ValueError) as local_err:
        LogisticRegression().fit(X, y_bad)
    with pytest.raises(ValueError) as dist_err:
        DistributedEstimator(LogisticRegression(), backend="dask", client=client).fit(X, y_bad)
    assert type(dist_err.value) is type(local_err.value)
    assert str(dist_err.value) == str(local_err.value)


def test_worker_warnings_are_reemitted(client):
    with pytest.warns(DataConversionWarning, match="column-vector y was passed"):
        DistributedEstimator(
            RandomForestClassifier(n_estimators=4, random_state=0), backend="dask", client=client
        ).fit(X, y.reshape(-1, 1))


def test_fitted_model_pickles_and_runs_without_cluster(client):
    est = DistributedEstimator(
        RandomForestClassifier(n_estimators=4, random_state=0), backend="dask", client=client
    ).fit(X, y)
    restored = pickle.loads(pickle.dumps(est))
    # The client travels as its address, never as a live object.
    assert restored.client == client.scheduler.address
    assert_array_equal(restored.predict(X), est.predict(X))
    plain = pickle.loads(pickle.dumps(est.estimator_))
    assert type(plain) is RandomForestClassifier


def test_no_warning_in_plain_local_fit():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DistributedEstimator(LogisticRegression()).fit(X, y)
