"""DistributedEstimator composes like any sklearn estimator: Pipeline, GridSearchCV,
cross_validate, StackingClassifier, clone, pickle, nesting, metadata routing, set_output."""

import pickle

import numpy as np
import pandas as pd
import pytest
import sklearn
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier, StackingClassifier
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from distsk import DistributedEstimator

X, y = make_classification(n_samples=200, n_features=5, random_state=0)
W = np.random.RandomState(0).uniform(0.5, 2, size=len(y))


def test_inside_pipeline_equals_sklearn():
    ours = make_pipeline(DistributedEstimator(StandardScaler()),
                         DistributedEstimator(LogisticRegression())).fit(X, y)
    ref = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    assert_array_equal(ours.predict_proba(X), ref.predict_proba(X))


def test_inside_sklearn_gridsearch_with_nested_params():
    ours = GridSearchCV(DistributedEstimator(LogisticRegression()),
                        {"estimator__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    ref = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    assert_array_equal(ours.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    assert ours.best_params_ == {"estimator__C": ref.best_params_["C"]}


def test_cross_validate_equals_sklearn():
    est = RandomForestClassifier(n_estimators=5, random_state=0)
    ours = cross_validate(DistributedEstimator(est), X, y, cv=3)
    ref = cross_validate(est, X, y, cv=3)
    assert_array_equal(ours["test_score"], ref["test_score"])


def test_stacking_classifier_equals_sklearn():
    def stack(wrap):
        return StackingClassifier(
            [("rf", wrap(RandomForestClassifier(n_estimators=5, random_state=0))),
             ("lr", wrap(LogisticRegression()))],
            final_estimator=wrap(LogisticRegression()), cv=3,
        ).fit(X, y)

    assert_array_equal(stack(DistributedEstimator).predict_proba(X),
                       stack(lambda e: e).predict_proba(X))


def test_clone_pickle_and_nesting():
    inner = DistributedEstimator(LogisticRegression(C=0.3))
    outer = DistributedEstimator(inner)
    assert outer.get_params()["estimator__estimator__C"] == 0.3
    cloned = clone(outer)
    assert cloned.estimator is not inner and cloned.get_params()["estimator__estimator__C"] == 0.3
    outer.fit(X, y)
    again = pickle.loads(pickle.dumps(outer))
    assert_array_equal(again.predict(X), LogisticRegression(C=0.3).fit(X, y).predict(X))
    assert again.estimator_.plan_.executor == "sequential"


def test_unfitted_has_no_fitted_attributes():
    est = DistributedEstimator(LogisticRegression())
    assert not hasattr(est, "classes_") and not hasattr(est, "estimator_")
    assert hasattr(est, "predict") and not hasattr(est, "transform")


def test_fit_params_pass_through_without_routing():
    ours = DistributedEstimator(LogisticRegression()).fit(X, y, sample_weight=W)
    assert_array_equal(ours.coef_, LogisticRegression().fit(X, y, sample_weight=W).coef_)


def test_metadata_routing_routes_sample_weight():
    with sklearn.config_context(enable_metadata_routing=True):
        inner = LogisticRegression().set_fit_request(sample_weight=True)
        inner.set_score_request(sample_weight=False)
        requested = DistributedEstimator(inner)
        requested.fit(X, y, sample_weight=W)
        assert_array_equal(requested.coef_,
                           LogisticRegression().fit(X, y, sample_weight=W).coef_)
        with pytest.raises(UnsetMetadataPassedError):
            DistributedEstimator(LogisticRegression()).fit(X, y, sample_weight=W)
        # Routed through an outer sklearn search too.
        search = GridSearchCV(requested, {"estimator__C": [0.5, 1.0]}, cv=3)
        search.fit(X, y, sample_weight=W)
        ref = GridSearchCV(clone(inner), {"C": [0.5, 1.0]}, cv=3).fit(X, y, sample_weight=W)
        assert_array_equal(search.cv_results_["mean_test_score"],
                           ref.cv_results_["mean_test_score"])


def test_set_output_pandas():
    df = pd.DataFrame(X, columns=list("abcde"))
    est = DistributedEstimator(StandardScaler()).set_output(transform="pandas").fit(df)
    out = est.transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == list("abcde")
    assert list(est.get_feature_names_out()) == list("abcde")
    pd.testing.assert_frame_equal(out, StandardScaler().set_output(transform="pandas").fit(df).transform(df))


def test_fit_transform_and_fit_predict_match_sklearn():
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    assert_array_equal(DistributedEstimator(PCA(2)).fit_transform(X), PCA(2).fit_transform(X))
    km = KMeans(3, n_init=2, random_state=0)
    assert_array_equal(DistributedEstimator(km).fit_predict(X), clone(km).fit_predict(X))


def test_partial_fit_equals_sklearn():
    from sklearn.linear_model import SGDClassifier

    ours, ref = DistributedEstimator(SGDClassifier(random_state=0)), SGDClassifier(random_state=0)
    for part in np.array_split(np.arange(len(y)), 4):
        ours.partial_fit(X[part], y[part], classes=[0, 1])
        ref.partial_fit(X[part], y[part], classes=[0, 1])
    assert_array_equal(ours.coef_, ref.coef_)
