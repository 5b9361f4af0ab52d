"""One driver (#22): every fit of distsk's profiles the compute once and plans once.

Counted by wrapping the driver's own steps (``distsk._search.driver``): a
DistributedSearchCV, a halving search, a DistributedEstimator and each ``Parallel``
call under the joblib backend; results compared with plain scikit-learn's.
"""

from __future__ import annotations

import collections

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, cross_validate

import distsk
from distsk._search import driver as driver_module

from .counting import logistic_without_joblib

pytestmark = pytest.mark.timeout(240)

X, y = make_classification(n_samples=400, n_features=8, random_state=0)
GRID = {"C": [0.01, 0.1, 1.0, 10.0]}


@pytest.fixture
def counts(monkeypatch):
    """Calls of the driver's steps during the test: ``profile_compute`` (the compute
    profiled) and ``Driver.plan``."""
    seen = collections.Counter()

    def counted(name, func):
        def wrapper(*args, **kwargs):
            seen[name] += 1
            return func(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(driver_module, "profile_compute",
                        counted("profile_compute", driver_module.profile_compute))
    monkeypatch.setattr(driver_module.Driver, "plan",
                        counted("plan", driver_module.Driver.plan))
    return seen


def _same_scores(ours, theirs):
    assert ours["params"] == theirs["params"]
    np.testing.assert_array_equal(ours["mean_test_score"], theirs["mean_test_score"])


@pytest.mark.parametrize("backend", ["auto", "loky", "sequential"])
def test_a_search_profiles_the_compute_once_and_plans_once(counts, backend):
    search = distsk.DistributedSearchCV(LogisticRegression(), GRID, cv=3, backend=backend)
    search.fit(X, y)
    assert counts == {"profile_compute": 1, "plan": 1}
    _same_scores(search.cv_results_,
                 GridSearchCV(LogisticRegression(), GRID, cv=3).fit(X, y).cv_results_)


def test_a_halving_search_plans_once_for_all_its_rounds(counts):
    grid = {"C": list(np.logspace(-3, 3, 9))}
    ours = distsk.DistributedHalvingGridSearchCV(
        LogisticRegression(), grid, cv=3, factor=3, random_state=0, backend="loky").fit(X, y)
    theirs = HalvingGridSearchCV(LogisticRegression(), grid, cv=3, factor=3,
                                 random_state=0).fit(X, y)
    assert ours.n_iterations_ == theirs.n_iterations_ > 1
    assert counts == {"profile_compute": 1, "plan": 1}
    _same_scores(ours.cv_results_, theirs.cv_results_)


def test_a_distributed_estimator_profiles_the_compute_once(counts):
    est = distsk.DistributedEstimator(LogisticRegression()).fit(X, y)
    assert counts["profile_compute"] == 1 and counts["plan"] == 0  # plan_fit, not a search
    np.testing.assert_array_equal(est.predict(X), LogisticRegression().fit(X, y).predict(X))


def test_each_parallel_call_under_the_backend_is_planned_once(counts):
    with distsk.parallel_backend("loky") as config:
        first = cross_validate(LogisticRegression(), X, y, cv=3, n_jobs=-1)
        second = cross_validate(LogisticRegression(C=0.1), X, y, cv=3, n_jobs=-1)
    assert counts == {"profile_compute": 2, "plan": 2}
    assert len(config["backend"].plans) == 2
    for ours, C in ((first, 1.0), (second, 0.1)):
        theirs = cross_validate(LogisticRegression(C=C), X, y, cv=3)
        np.testing.assert_array_equal(ours["test_score"], theirs["test_score"])


def test_the_backend_s_probe_keeps_its_first_fit(counts):
    # Engine "auto": the first fit may be the probe, run here, its result kept (not run
    # twice): the scores are sklearn's and the plan priced the other fits.
    with joblib.parallel_config(backend="distsk", engine="auto"):
        ours = cross_validate(logistic_without_joblib(), X, y, cv=5, n_jobs=-1)
    theirs = cross_validate(logistic_without_joblib(), X, y, cv=5)
    np.testing.assert_array_equal(ours["test_score"], theirs["test_score"])
    assert counts["plan"] == 1 and counts["profile_compute"] == 1
