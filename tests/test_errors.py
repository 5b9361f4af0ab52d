"""Bad options and unreachable clusters get clear errors in bounded time."""

import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from distsk import ClusterUnavailableError, DistributedEstimator, DistributedSearchCV, explain

from .conftest import free_port

X, y = make_classification(n_samples=60, n_features=4, random_state=0)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="'backend' parameter") as err:
        DistributedEstimator(LogisticRegression(), backend="spark").fit(X, y)
    for name in ("auto", "sequential", "loky", "dask", "dask-ml", "xgboost"):
        assert repr(name) in str(err.value)


def test_search_unknown_backend_lists_valid_names():
    with pytest.raises(ValueError, match="'backend' parameter.*'loky'"):
        DistributedSearchCV(LogisticRegression(), {"C": [1]}, backend="ray").fit(X, y)


@pytest.mark.parametrize("backend", ["dask", "dask-ml", "xgboost"])
def test_cluster_backend_without_cluster_fails_fast(backend):
    start = time.perf_counter()
    with pytest.raises(ClusterUnavailableError, match="needs a Dask cluster"):
        DistributedEstimator(LogisticRegression(), backend=backend).fit(X, y)
    assert time.perf_counter() - start < 5


def test_unanswering_address_is_named_within_the_timeout():
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(ClusterUnavailableError, match=address.replace(".", r"\.")):
        DistributedEstimator(LogisticRegression(), client=address).fit(X, y)
    assert time.perf_counter() - start < 30


def test_client_of_wrong_type_is_explained():
    with pytest.raises(TypeError, match="client must be None, a distributed.Client or a scheduler address"):
        DistributedEstimator(LogisticRegression(), client=42).fit(X, y)


def test_bad_gather_limit_is_explained():
    with pytest.raises(ValueError, match="max_gather_bytes='lots' is not a size"):
        DistributedEstimator(LogisticRegression(), max_gather_bytes="lots").fit(X, y)


def test_search_needs_exactly_one_candidate_source():
    with pytest.raises(ValueError, match="exactly one of param_grid"):
        DistributedSearchCV(LogisticRegression()).fit(X, y)
    with pytest.raises(ValueError, match="both was given"):
        DistributedSearchCV(LogisticRegression(), {"C": [1]}, param_distributions={"C": [1]}).fit(X, y)


def test_explain_does_not_fit():
    est = DistributedEstimator(LogisticRegression())
    plan = explain(est, X)
    assert plan.executor == "sequential" and "in-memory numpy array" in plan.reason
    assert not hasattr(est, "estimator_")
    assert explain(LogisticRegression(), np.zeros((10, 2))).executor == "sequential"


def test_inner_exception_type_and_message_kept():
    with pytest.raises(ValueError) as ref:
        LogisticRegression(C=-1).fit(X, y)
    with pytest.raises(ValueError) as ours:
        DistributedEstimator(LogisticRegression(C=-1)).fit(X, y)
    assert type(ours.value) is type(ref.value) and str(ours.value) == str(ref.value)
