"""The wrapper's ``fit`` names the inner estimator's fit parameters, so sklearn's
meta-estimators pass sample weights to it exactly as to the plain estimator."""

import inspect
import warnings

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.cluster import KMeans
from sklearn.datasets import make_classification
from sklearn.ensemble import AdaBoostClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import has_fit_parameter

from distsk import DistributedEstimator

X, y = make_classification(n_samples=120, n_features=6, random_state=0)
W = np.random.RandomState(0).uniform(0.1, 2.0, size=len(y))


@pytest.mark.parametrize(
    "inner",
    [SVC(), LogisticRegression(), KMeans(n_init=1), StandardScaler(), ComplementNB(),
     make_pipeline(StandardScaler(), SVC())],
    ids=lambda e: type(e).__name__,
)
def test_has_fit_parameter_as_the_inner_estimator(inner):
    for name in ("sample_weight", "check_input", "not_a_parameter"):
        assert has_fit_parameter(DistributedEstimator(inner), name) == has_fit_parameter(
            inner, name)


def test_fit_signature_keeps_its_own_parameters():
    sig = inspect.signature(DistributedEstimator(SVC()).fit)
    assert list(sig.parameters) == ["X", "y", "sample_weight", "fit_params"]
    assert sig.parameters["sample_weight"].kind is inspect.Parameter.KEYWORD_ONLY
    # On the class: the plain method, as documented.
    assert list(inspect.signature(DistributedEstimator.fit).parameters) == [
        "self", "X", "y", "fit_params"]


def test_adaboost_accepts_the_wrapper_and_fits_as_plain():
    stump = DecisionTreeClassifier(max_depth=1, random_state=0)
    plain = AdaBoostClassifier(stump, n_estimators=5, random_state=0).fit(X, y)
    wrapped = AdaBoostClassifier(
        DistributedEstimator(stump), n_estimators=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(wrapped.predict_proba(X), plain.predict_proba(X))


def test_calibration_passes_sample_weight_to_the_wrapper():
    plain = CalibratedClassifierCV(SVC(random_state=0), cv=2).fit(X, y, sample_weight=W)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "does not appear to accept sample_weight"
        wrapped = CalibratedClassifierCV(
            DistributedEstimator(SVC(random_state=0)), cv=2).fit(X, y, sample_weight=W)
    np.testing.assert_allclose(wrapped.predict_proba(X), plain.predict_proba(X))


@pytest.mark.parametrize("inner", [SVC(), ComplementNB()], ids=lambda e: type(e).__name__)
def test_one_class_after_weighting_fails_as_plain(inner):
    from sklearn.utils.estimator_checks import check_classifiers_one_label_sample_weights

    Xs = np.random.RandomState(0).uniform(size=(10, 10))
    ys = np.arange(10) % 2
    outcomes = []
    for est in (inner, DistributedEstimator(inner)):
        try:
            outcomes.append(est.fit(Xs, ys, sample_weight=ys.copy()).predict(Xs).tolist())
        except ValueError as exc:
            outcomes.append((type(exc), str(exc)))
    assert outcomes[0] == outcomes[1]
    check_classifiers_one_label_sample_weights(
        type(inner).__name__, DistributedEstimator(inner))
