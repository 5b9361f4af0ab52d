"""sklearn's check_estimator on DistributedEstimator and DistributedSearchCV, with no client,
with an active client, and with fits forced onto the cluster."""

import pytest
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.kernel_approximation import AdditiveChi2Sampler
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, FunctionTransformer, Normalizer, StandardScaler
from sklearn.utils.estimator_checks import (
    check_estimator,
    check_sample_weight_equivalence_on_sparse_data,
)

from distsk import DistributedEstimator, DistributedSearchCV

INNER = [
    LogisticRegression(),
    Ridge(),
    RandomForestClassifier(n_estimators=5, random_state=0),
    RandomForestRegressor(n_estimators=5, random_state=0),
    StandardScaler(),
    KMeans(n_clusters=3, n_init=2, random_state=0),
    PCA(),
    HistGradientBoostingClassifier(max_iter=10, random_state=0),
    make_pipeline(StandardScaler(), LogisticRegression()),
    # Stateless (requires_fit=False): they transform unfitted, wrapped as plain.
    Binarizer(),
    Normalizer(),
    FunctionTransformer(),
    AdditiveChi2Sampler(),
]


# sklearn's own expected failures for these plain estimators (``_get_expected_failed_checks``
# in sklearn/utils/_test_common/instance_generator.py, 1.9). The sample-weight checks run
# on the wrapper as on them, since its fit names the inner fit's sample_weight.
_WEIGHTS = "sample_weight is not equivalent to removing/repeating samples (as plain)"
_EQUIVALENCE = {
    "check_sample_weight_equivalence_on_dense_data": _WEIGHTS,
    "check_sample_weight_equivalence_on_sparse_data": _WEIGHTS,
}
PLAIN_EXPECTED = {
    LogisticRegression: _EQUIVALENCE,
    RandomForestClassifier: {
        **_EQUIVALENCE,
        "check_classifiers_one_label_sample_weights": "as plain RandomForestClassifier",
    },
    RandomForestRegressor: _EQUIVALENCE,
    KMeans: _EQUIVALENCE,
    HistGradientBoostingClassifier: _EQUIVALENCE,
}


def _plain_fails(check, est) -> bool:
    try:
        check(type(est).__name__, clone(est))
    except Exception:
        return True
    return False


# sklearn 1.6's sparse sample-weight check fits StandardScaler with its default
# with_mean=True on sparse data, which plain StandardScaler refuses (ValueError); 1.7+
# fits it as it can.
if _plain_fails(check_sample_weight_equivalence_on_sparse_data, StandardScaler()):
    PLAIN_EXPECTED[StandardScaler] = {
        "check_sample_weight_equivalence_on_sparse_data": "fails as plain StandardScaler "
        "(sklearn < 1.7's check centres sparse data)"}


def _expected(inner):
    return PLAIN_EXPECTED.get(type(inner))


def _id(est):
    return type(est).__name__ if not hasattr(est, "steps") else "Pipeline"


def failures(estimator, expected=None):
    results = check_estimator(
        estimator, on_fail=None, on_skip=None, expected_failed_checks=expected or {}
    )
    failed = {r["check_name"]: repr(r["exception"]) for r in results if r["status"] == "failed"}
    assert len(results) > 30
    return failed


@pytest.mark.parametrize("inner", INNER, ids=_id)
def test_check_estimator_no_client(inner):
    assert failures(DistributedEstimator(inner), _expected(inner)) == {}


@pytest.mark.parametrize("inner", INNER, ids=_id)
def test_check_estimator_with_active_client(active_client, inner):
    assert failures(DistributedEstimator(inner), _expected(inner)) == {}


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    "inner",
    [LogisticRegression(), RandomForestClassifier(n_estimators=5, random_state=0), StandardScaler()],
    ids=_id,
)
def test_check_estimator_every_fit_on_the_cluster(active_client, inner):
    assert failures(DistributedEstimator(inner, backend="dask"), _expected(inner)) == {}


def test_checks_see_the_inner_estimator_type():
    from sklearn.base import is_classifier, is_regressor

    assert is_classifier(DistributedEstimator(LogisticRegression()))
    assert is_regressor(DistributedEstimator(Ridge()))
    n_classifier_checks = len(check_estimator(
        DistributedEstimator(LogisticRegression()), on_fail=None, on_skip=None))
    n_generic_checks = len(check_estimator(
        DistributedEstimator(StandardScaler()), on_fail=None, on_skip=None))
    assert n_classifier_checks > 45 and n_generic_checks > 35


# sklearn lists these two as expected failures of its own searches (SKLEARN_NOTES.md).
SEARCH_EXPECTED = {
    "check_supervised_y_2d": "DataConversionWarning not caught (as GridSearchCV)",
    "check_requires_y_none": "as GridSearchCV",
}
SEARCHES = [
    (LogisticRegression(), {"C": [0.1, 1.0]}),
    (Ridge(), {"alpha": [0.1, 1.0]}),
    (make_pipeline(PCA(), Ridge()), {"ridge__alpha": [0.1, 1.0]}),
    (make_pipeline(PCA(), LogisticRegression()), {"logisticregression__C": [0.1, 1.0]}),
]


def _search_id(case):
    return _id(case[0]) + "-" + "-".join(case[1])


@pytest.mark.parametrize("case", SEARCHES, ids=_search_id)
def test_check_estimator_search_no_client(case):
    est, grid = case
    search = DistributedSearchCV(est, grid, cv=2, error_score="raise")
    assert failures(search, SEARCH_EXPECTED) == {}


@pytest.mark.parametrize("case", SEARCHES, ids=_search_id)
def test_check_estimator_search_with_active_client(active_client, case):
    est, grid = case
    search = DistributedSearchCV(est, grid, cv=2, error_score="raise", backend="dask")
    assert failures(search, SEARCH_EXPECTED) == {}
