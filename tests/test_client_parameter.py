"""An estimator given a Client: clone shares it (a Client cannot be deep-copied, which is what
sklearn's clone does with parameters that are not estimators), and pickling sends its address
without touching the estimator that was pickled."""

import pickle

import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from distsk import DistributedEstimator, DistributedSearchCV


def _estimators(client):
    return [
        DistributedEstimator(LogisticRegression(), client=client),
        DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, client=client),
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["estimator", "search"])
def test_clone_shares_the_client(client, which):
    est = _estimators(client)[which]
    twin = clone(est)
    assert twin is not est and twin.client is client
    assert twin.get_params()["estimator"] is not est.estimator


@pytest.mark.parametrize("which", [0, 1], ids=["estimator", "search"])
def test_pickling_sends_the_address_and_leaves_the_estimator_as_it_was(client, which):
    est = _estimators(client)[which]
    again = pickle.loads(pickle.dumps(est))
    assert again.client == client.scheduler.address
    assert est.client is client
