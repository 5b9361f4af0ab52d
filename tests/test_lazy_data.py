"""Dask input: small data is gathered; large data goes to dask-ml / xgboost.dask; predict and
friends run blockwise. Compared against sklearn on the same numbers."""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification, make_regression
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    PoissonRegressor,
    SGDClassifier,
)
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import SVC

from distsk import DataTooLargeError, DistributedEstimator, NoFaithfulTranslationError

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

X, y = make_classification(n_samples=2000, n_features=6, n_informative=4, n_redundant=0,
                           random_state=0)
Xr, yr = make_regression(n_samples=2000, n_features=6, noise=1.0, random_state=0)
dX = da.from_array(X, chunks=(500, 6))
dy = da.from_array(y, chunks=500)


def big(est, client, **kw):
    """Force the larger-than-memory path with a gather limit of 0 bytes."""
    return DistributedEstimator(est, max_gather_bytes=0, client=client, **kw)


def test_small_dask_array_is_gathered_and_equals_sklearn(active_client):
    est = DistributedEstimator(LogisticRegression()).fit(dX, dy)
    assert est.plan_.gather and est.plan_.executor == "sequential"
    assert "dask array" in est.plan_.reason
    assert_array_equal(est.coef_, LogisticRegression().fit(X, y).coef_)


def test_small_dask_dataframe_size_is_measured_and_gathered(active_client):
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    ddf = dd.from_pandas(df, npartitions=4)
    dys = dd.from_pandas(pd.Series(y), npartitions=4)
    est = DistributedEstimator(LogisticRegression()).fit(ddf, dys)
    assert est.plan_.gather
    assert "dask DataFrame (" in est.plan_.reason  # size known after measuring
    ref = LogisticRegression().fit(df, y)
    assert_array_equal(est.coef_, ref.coef_)
    assert list(est.feature_names_in_) == list(df.columns)


def test_lr_large_goes_through_dask_ml_and_matches_sklearn(client):
    est = big(LogisticRegression(C=0.5), client).fit(dX, dy)
    assert (est.plan_.executor, est.plan_.strategy) == ("dask-ml", "translated")
    assert type(est.estimator_) is LogisticRegression
    ref = LogisticRegression(C=0.5).fit(X, y)
    # dask-glm also penalises the intercept: a difference of order 1/(C n).
    assert_allclose(est.coef_, ref.coef_, rtol=0.01, atol=1e-3)
    assert np.mean(est.predict(X) == ref.predict(X)) > 0.99
    assert_array_equal(est.classes_, ref.classes_)


def test_linear_regression_large_matches_sklearn(client):
    dXr = da.from_array(Xr, chunks=(500, 6))
    est = big(LinearRegression(), client).fit(dXr, da.from_array(yr, chunks=500))
    ref = LinearRegression().fit(Xr, yr)
    assert_allclose(est.coef_, ref.coef_, rtol=1e-3)
    assert_allclose(est.intercept_, ref.intercept_, atol=1e-2)


def test_poisson_large_matches_sklearn(client):
    rng = np.random.RandomState(0)
    Xp = rng.normal(size=(2000, 3)) * 0.3
    yp = rng.poisson(np.exp(Xp @ [0.5, -0.3, 0.2] + 0.5))
    est = big(PoissonRegressor(alpha=0.01), client).fit(
        da.from_array(Xp, chunks=(500, 3)), da.from_array(yp, chunks=500))
    ref = PoissonRegressor(alpha=0.01).fit(Xp, yp)
    assert_allclose(est.coef_, ref.coef_, rtol=0.05, atol=0.01)


@pytest.mark.parametrize("scaler", [StandardScaler(), MinMaxScaler(feature_range=(-1, 2))])
def test_scalers_large_match_sklearn(client, scaler):
    est = big(scaler, client).fit(dX)
    ref = clone(scaler).fit(X)
    assert type(est.estimator_) is type(scaler)
    assert_allclose(est.transform(X), ref.transform(X), rtol=1e-10, atol=1e-12)


def test_pca_large_matches_sklearn_up_to_sign(client):
    est = big(PCA(n_components=3, svd_solver="full"), client).fit(dX)
    ref = PCA(n_components=3, svd_solver="full").fit(X)
    assert_allclose(np.abs(est.components_), np.abs(ref.components_), rtol=1e-6, atol=1e-8)
    assert_allclose(est.explained_variance_, ref.explained_variance_, rtol=1e-6)
    assert_allclose(np.abs(est.transform(X)), np.abs(ref.transform(X)), rtol=1e-6, atol=1e-8)


def test_truncated_svd_large_matches_sklearn_singular_values(client):
    est = big(TruncatedSVD(n_components=2, algorithm="arpack"), client).fit(dX)
    ref = TruncatedSVD(n_components=2, algorithm="arpack").fit(X)
    assert_allclose(est.singular_values_, ref.singular_values_, rtol=1e-6)


def test_kmeans_large_finds_sklearns_clusters(client):
    Xb, _ = make_blobs(n_samples=2000, centers=3, n_features=4, random_state=0, cluster_std=0.5)
    est = big(KMeans(n_clusters=3, random_state=0), client).fit(da.from_array(Xb, chunks=(500, 4)))
    ref = KMeans(n_clusters=3, random_state=0).fit(Xb)
    assert type(est.estimator_) is KMeans
    assert_allclose(np.sort(est.cluster_centers_, axis=0), np.sort(ref.cluster_centers_, axis=0),
                    rtol=1e-3)
    assert_array_equal(est.predict(Xb[:5]).shape, (5,))


def test_partial_fit_estimator_trains_block_by_block(client):
    est = big(SGDClassifier(random_state=0), client).fit(dX, dy)
    assert est.plan_.strategy == "incremental"
    ref = SGDClassifier(random_state=0)
    for start in range(0, 2000, 500):
        ref.partial_fit(X[start:start + 500], y[start:start + 500], classes=np.unique(y))
    assert_array_equal(est.coef_, ref.coef_)


def test_multiclass_lr_large_is_an_error_not_a_different_model(client):
    y3 = np.arange(len(y)) % 3
    with pytest.raises(NoFaithfulTranslationError, match="3 classes"):
        big(LogisticRegression(), client).fit(dX, da.from_array(y3, chunks=500))


def test_untranslatable_parameter_is_named(client):
    with pytest.raises(NoFaithfulTranslationError, match="class_weight"):
        big(LogisticRegression(class_weight="balanced"), client).fit(dX, dy)


def test_large_data_without_a_large_data_engine_is_fit_exactly_on_a_worker(client):
    # Over the client's gather limit, but a worker holds it: assembled there and fit
    # as plain sklearn would fit it, never through this process (#10).
    est = big(SVC(), client).fit(dX, dy)
    assert (est.plan_.executor, est.plan_.on_workers, est.plan_.gather) == ("dask", True, False)
    assert "each worker's memory" in est.plan_.reason
    assert_array_equal(est.predict(X), SVC().fit(X, y).predict(X))
    assert_array_equal(est.estimator_.dual_coef_, SVC().fit(X, y).dual_coef_)


def test_large_data_for_unsupported_estimator_names_options(client):
    # Over the gather limit and over what a worker may hold.
    est = DistributedEstimator(SVC(), max_gather_bytes=0, client=client)
    from distsk._decide import planning as _planning

    room = _planning.WORKER_DATA_FRACTION
    try:
        _planning.WORKER_DATA_FRACTION = 1e-12
        with pytest.raises(DataTooLargeError, match="max_gather_bytes"):
            est.fit(dX, dy)
    finally:
        _planning.WORKER_DATA_FRACTION = room


def test_xgboost_large_returns_plain_model(client):
    xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
    est = big(xgboost.XGBClassifier(n_estimators=10, max_depth=3), client).fit(dX, dy)
    assert est.plan_.executor == "xgboost"
    plain = est.estimator_
    assert type(plain) is xgboost.XGBClassifier
    assert_array_equal(plain.classes_, [0, 1])
    assert plain.n_classes_ == 2
    # xgboost.dask sketches histograms per partition, so trees differ in detail from a
    # local fit; the model quality must not.
    local = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y)
    assert abs(np.mean(plain.predict(X) == y) - np.mean(local.predict(X) == y)) < 0.03
    import pickle

    assert_array_equal(pickle.loads(pickle.dumps(plain)).predict(X), plain.predict(X))


def test_missing_extra_names_it(client, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask_ml", None)
    with pytest.raises(ImportError, match=r"distsk\[dask-ml\]"):
        big(StandardScaler(), client).fit(dX)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_predict_on_dask_array_is_blockwise_and_equal(active_client, method):
    est = DistributedEstimator(LogisticRegression()).fit(X, y)
    out = getattr(est, method)(dX)
    assert isinstance(out, da.Array)
    assert_allclose(out.compute(), getattr(est.estimator_, method)(X))


def test_transform_on_dask_dataframe_keeps_index(active_client):
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    ddf = dd.from_pandas(df, npartitions=3)
    est = DistributedEstimator(StandardScaler().set_output(transform="pandas")).fit(df)
    out = est.transform(ddf)
    assert isinstance(out, dd.DataFrame)
    pd.testing.assert_frame_equal(out.compute(), est.estimator_.transform(df))


def test_score_on_dask_input_equals_sklearn(active_client):
    est = DistributedEstimator(LogisticRegression()).fit(X, y)
    assert est.score(dX, dy) == pytest.approx(est.estimator_.score(X, y), abs=1e-12)
    reg = DistributedEstimator(LinearRegression()).fit(Xr, yr)
    dXr = da.from_array(Xr, chunks=(500, 6))
    assert reg.score(dXr, da.from_array(yr, chunks=500)) == pytest.approx(
        reg.estimator_.score(Xr, yr), rel=1e-12)


def test_lr_on_unscaled_features_matches_sklearn(client):
    # dask-glm standardises X unless told not to; that would move the penalty.
    Xs, ys = make_classification(n_samples=2000, n_features=8, n_redundant=0, random_state=1)
    Xs = Xs * np.array([1, 10, 100, 0.1, 1, 5, 50, 0.5])
    est = big(LogisticRegression(max_iter=1000), client).fit(
        da.from_array(Xs, chunks=(500, 8)), da.from_array(ys, chunks=500))
    ref = LogisticRegression(max_iter=1000).fit(Xs, ys)
    assert_allclose(est.coef_, ref.coef_, rtol=0.02, atol=2e-3)


def test_non_default_client_does_the_dask_work(cli_client):
    def transitions(dask_scheduler):
        return dask_scheduler.transition_counter

    before = cli_client.run_on_scheduler(transitions)
    est = DistributedEstimator(LogisticRegression(), client=cli_client.scheduler.address)
    est.fit(dX, dy)
    assert est.plan_.gather
    assert cli_client.run_on_scheduler(transitions) > before

