"""What joblib promises a call, kept on every engine of the joblib backend and of
DistributedSearchCV (issue #21, section 4; found by running scikit-learn's own test
files under the backend, tests/upstream/run_sklearn_suites.py):

- the arguments of one call are pickled together: an object two of them share (a fit
  parameter also held by a callback's closure, an array passed twice) is one object
  where the call runs, even when distsk sends its data ahead to the Dask workers;
- when several fits fail, the error raised is the first failing fit's in sklearn's
  order, every time, whichever fit fails first in time.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_predict, cross_validate

import distsk
from distsk import DistributedEstimator, DistributedSearchCV

pytestmark = pytest.mark.timeout(180)

X, y = make_classification(n_samples=150, n_features=6, n_informative=3, random_state=0)
#: Train folds of 100, 110 and 120 rows: each fit knows its fold by its size.
FOLDS = [(np.arange(n), np.arange(n, 150)) for n in (100, 110, 120)]


@pytest.fixture(params=["sequential", "loky", "dask"])
def engine(request):
    """(engine, client): "dask" runs on the session's LocalCluster."""
    client = request.getfixturevalue("client") if request.param == "dask" else None
    return request.param, client


def _outcome(func):
    """What ``func()`` gives: ("ok", value) or ("raised", type, message)."""
    try:
        return ("ok", func())
    except Exception as exc:  # noqa: BLE001 - the outcome is what is compared
        return ("raised", type(exc), str(exc))


# ------------------------------------------------------------------ shared objects
class SharedChecks(ClassifierMixin, BaseEstimator):
    """Fails unless its fit parameters are the very objects ``check``'s closure holds."""

    def fit(self, X, y, token=None, table=None, check=None):
        check(token, table)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _shared_params():
    token = object()
    # Not one value per sample (sklearn would split it by fold), and over the size that
    # distsk sends to the workers ahead of the tasks.
    table = np.arange(1_000, dtype=float)

    def check(got_token, got_table):
        if got_token is not token or got_table is not table:
            raise AssertionError("the fit parameters arrived as copies of the objects "
                                 "the callback's closure holds")

    return {"token": token, "table": table, "check": check}


def test_objects_shared_by_a_calls_arguments_arrive_as_one_object(engine):
    name, client = engine

    def run():
        scores = cross_validate(SharedChecks(), X, y, cv=3, error_score="raise",
                                params=_shared_params())
        return scores["test_score"]

    ref = _outcome(run)
    assert ref[0] == "ok"
    with joblib.parallel_config(backend="distsk", engine=name, client=client):
        ours = _outcome(run)
    assert ours[0] == "ok", ours
    assert_array_equal(ours[1], ref[1])


def test_objects_shared_by_a_calls_arguments_arrive_as_one_object_in_a_search(engine):
    name, client = engine
    search = DistributedSearchCV(SharedChecks(), {}, cv=3, error_score="raise",
                                 backend=name, client=client)
    search.fit(X, y, **_shared_params())
    ref = GridSearchCV(SharedChecks(), {}, cv=3, error_score="raise").fit(
        X, y, **_shared_params())
    assert_array_equal(search.cv_results_["mean_test_score"],
                       ref.cv_results_["mean_test_score"])


def test_a_distributed_estimator_fit_receives_shared_objects_as_one(client):
    params = _shared_params()
    DistributedEstimator(SharedChecks(), backend="dask", client=client).fit(X, y, **params)


# ------------------------------------------------------------------ the first error
class FoldFails(ClassifierMixin, BaseEstimator):
    """Fails on the first fold after ``delay`` seconds, on the last at once."""

    def __init__(self, delay=1.0):
        self.delay = delay

    def fit(self, X, y):
        if len(X) == 100:
            time.sleep(self.delay)
            raise ValueError("the first fold fails, slowly")
        if len(X) == 120:
            raise ValueError("the last fold fails, at once")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _fails_in_order(i, delay):
    if i == 1:
        time.sleep(delay)
        raise KeyError(f"call {i}")
    if i >= 3:
        raise KeyError(f"call {i}")
    return i


@pytest.mark.parametrize("call", ["cross_validate", "cross_val_predict", "Parallel"])
def test_the_first_failing_call_in_sklearns_order_raises(engine, call):
    name, client = engine
    funcs = {
        "cross_validate": lambda: cross_validate(FoldFails(), X, y, cv=FOLDS,
                                                 error_score="raise"),
        "cross_val_predict": lambda: cross_val_predict(FoldFails(), X, y, cv=FOLDS),
        "Parallel": lambda: joblib.Parallel(n_jobs=2)(
            joblib.delayed(_fails_in_order)(i, 1.0) for i in range(6)),
    }
    with joblib.parallel_config(backend="sequential"):
        ref = _outcome(funcs[call])
    assert ref[0] == "raised"
    with joblib.parallel_config(backend="distsk", engine=name, client=client):
        ours = _outcome(funcs[call])
    assert ours == ref


def test_the_first_failing_fit_raises_in_a_search_with_error_score_raise(engine):
    name, client = engine
    grid = {"delay": [1.0]}
    ref = _outcome(lambda: GridSearchCV(FoldFails(), grid, cv=FOLDS,
                                        error_score="raise").fit(X, y))
    assert ref[0] == "raised" and "first fold" in ref[2]
    ours = _outcome(lambda: DistributedSearchCV(
        FoldFails(), grid, cv=FOLDS, error_score="raise", backend=name,
        client=client).fit(X, y))
    assert ours == ref


def test_the_first_failing_fit_raises_when_fits_run_in_batches():
    """Fits batched into one unit stop at their first failure without naming it: the
    engine runs the earlier ones again, alone, to find it."""
    from distsk._engines.base import InProcessRunner
    from distsk._search.loop import SearchEngine

    class Backwards(InProcessRunner):
        """Two slots whose units finish in the reverse of the order they were sent."""

        slots = 2

        def submit_many(self, units):
            ran = [self.submit(kind, items) for kind, items in units]
            futures = [cf.Future() for _ in units]
            for k, (src, dst) in enumerate(zip(ran, futures)):
                threading.Timer(0.1 * (len(units) - k), _copy, (src, dst)).start()
            return futures

    items = [(_fails_in_order, (i, 0.0), {}) for i in range(8)]
    with joblib.parallel_config(backend="sequential"):
        ref = _outcome(lambda: joblib.Parallel(n_jobs=2)(
            joblib.delayed(_fails_in_order)(i, 0.0) for i in range(8)))
    engine = SearchEngine(Backwards(), share=False, seconds_per_fit=1e-3)
    engine.register([(distsk._face.joblib_backend._call_plain, (func, *args), kwargs)
                     for func, args, kwargs in items])
    assert _outcome(engine.run) == ref


def _copy(src: cf.Future, dst: cf.Future) -> None:
    if src.exception() is not None:
        dst.set_exception(src.exception())
    else:
        dst.set_result(src.result())


def test_a_failed_search_holds_nothing_on_the_cluster_while_its_error_lives(client):
    """A unit's error raised to the user kept the frames that held the unit's futures
    (the runner's callback, ``Future.result``), so every unit that had finished stayed
    in the cluster's memory as long as the error did (6 of them here before). Only
    the worker's frames -- the user's fit -- stay in its traceback."""
    def held():
        return {k for k in client.who_has() if str(k).startswith("distsk-")}

    before = held()
    with pytest.raises(ValueError, match="first fold") as info:
        DistributedSearchCV(FoldFails(delay=0.5), {"delay": [0.5, 0.6, 0.7]}, cv=FOLDS,
                            error_score="raise", backend="dask", client=client).fit(X, y)
    deadline = time.monotonic() + 10
    while (left := held() - before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left
    assert "fit" in [frame.name for frame in __import__("traceback").extract_tb(
        info.value.__traceback__)]


def _nested_backend():
    """The backend a Parallel call made inside a task gets, and its nesting level."""
    from joblib.parallel import get_active_backend

    backend, n_jobs = get_active_backend()
    return type(backend).__name__, getattr(backend, "nesting_level", None)


def _task_with_a_nested_call(i):
    return joblib.Parallel(n_jobs=-1)(joblib.delayed(_nested_backend)() for _ in range(2))


def test_a_calls_own_parallel_calls_run_as_in_a_loky_worker():
    # A task that is not a fit (StackingClassifier's cross_val_predict) makes Parallel
    # calls of its own: plain joblib's loky runs them on threads, one level deep
    # (joblib's nested backend); the backend did them one by one, and a slow base
    # estimator's folds could not use the core a fast one had left (1.26x plain's time).
    with joblib.parallel_config(backend="loky"):
        plain = joblib.Parallel(n_jobs=2)(
            joblib.delayed(_task_with_a_nested_call)(i) for i in range(2))
    with joblib.parallel_config(backend="distsk", engine="loky"):
        ours = joblib.Parallel(n_jobs=2)(
            joblib.delayed(_task_with_a_nested_call)(i) for i in range(2))
    # The nested call ran on threads (ThreadingBackend, level 1): its tasks' own calls
    # would be one by one (joblib's level 2).
    assert plain == [[("SequentialBackend", 2)] * 2] * 2
    assert ours == plain
