"""The joblib backend "distsk": unchanged sklearn code under
``joblib.parallel_config(backend="distsk")`` gives what it gives without it, on every
engine (in process, loky, a LocalCluster, a CLI-started cluster), with its fits run by
distsk's engine (other processes, inner parallelism pinned, checkpoint), calls that are
not fits run correctly and in order, and generators consumed lazily."""

from __future__ import annotations

import math
import os
import threading
import warnings
import zlib

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.feature_selection import RFECV, SequentialFeatureSelector
from sklearn.inspection import permutation_importance
from sklearn.linear_model import (
    ElasticNetCV,
    LogisticRegression,
    LogisticRegressionCV,
    RidgeClassifierCV,
)
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
    cross_val_predict,
    cross_val_score,
    cross_validate,
    learning_curve,
    validation_curve,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.parallel import Parallel, delayed

import distsk
from distsk import DistributedEstimator, DistributedSearchCV

from ._search_helpers import TIMING_KEYS, assert_same_cv_results
from .counting import logistic_without_joblib

pytestmark = pytest.mark.timeout(300)

X, y = make_classification(n_samples=150, n_features=6, n_informative=3, random_state=0)
Xr, yr = make_regression(n_samples=120, n_features=5, noise=1.0, random_state=0)


@pytest.fixture(params=["sequential", "loky", "dask", "cli"])
def under(request):
    """A function giving the context manager that selects one engine."""
    engine = request.param
    client = None
    if engine == "dask":
        client = request.getfixturevalue("client")
    elif engine == "cli":
        engine, client = "dask", request.getfixturevalue("cli_client")

    def context(**options):
        return joblib.parallel_config(backend="distsk", engine=engine, client=client,
                                      **options)

    context.engine, context.client = engine, client
    return context


# ------------------------------------------------------------------- every function
def _search(search):
    return {k: v for k, v in search.cv_results_.items() if k not in TIMING_KEYS}


CASES = {
    "GridSearchCV": lambda: _search(GridSearchCV(
        make_pipeline(StandardScaler(), PCA(random_state=0), LogisticRegression()),
        {"pca__n_components": [2, 3], "logisticregression__C": [0.1, 1.0]}, cv=3,
        return_train_score=True).fit(X, y)),
    "RandomizedSearchCV": lambda: _search(RandomizedSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": range(1, 8)}, n_iter=4,
        cv=3, random_state=0).fit(X, y)),
    "HalvingGridSearchCV": lambda: _search(HalvingGridSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3, 4, 5, 6]}, cv=3,
        random_state=0).fit(X, y)),
    "HalvingRandomSearchCV": lambda: _search(HalvingRandomSearchCV(
        DecisionTreeClassifier(random_state=0), {"max_depth": range(1, 8)}, cv=3,
        random_state=0).fit(X, y)),
    "cross_validate": lambda: {
        k: v for k, v in cross_validate(
            RandomForestClassifier(n_estimators=8, random_state=0, n_jobs=-1), X, y, cv=3,
            return_train_score=True, scoring=["accuracy", "roc_auc"]).items()
        if k not in ("fit_time", "score_time")},
    "cross_val_score": lambda: cross_val_score(LogisticRegression(), X, y, cv=4),
    "cross_val_predict": lambda: cross_val_predict(
        LogisticRegression(), X, y, cv=3, method="predict_proba"),
    "learning_curve": lambda: learning_curve(
        LogisticRegression(), X, y, train_sizes=[0.3, 0.6, 1.0], cv=3, shuffle=True,
        random_state=0),
    "validation_curve": lambda: validation_curve(
        LogisticRegression(), X, y, param_name="C", param_range=[0.01, 0.1, 1.0], cv=3),
    "permutation_importance": lambda: permutation_importance(
        LogisticRegression().fit(X, y), X, y, n_repeats=3, random_state=0).importances,
    "RFECV": lambda: RFECV(LogisticRegression(), cv=3).fit(X, y).cv_results_,
    "SequentialFeatureSelector": lambda: SequentialFeatureSelector(
        LogisticRegression(), n_features_to_select=2, cv=3).fit(X, y).get_support(),
    "LogisticRegressionCV": lambda: LogisticRegressionCV(Cs=3, cv=3).fit(X, y).coef_,
    "ElasticNetCV": lambda: ElasticNetCV(l1_ratio=[0.5, 1.0], cv=3).fit(Xr, yr).mse_path_,
    "RidgeClassifierCV": lambda: RidgeClassifierCV(cv=3).fit(X, y).coef_,
}


def assert_same(ours, ref):
    if isinstance(ref, dict):
        assert_same_cv_results(ours, ref)
    elif isinstance(ref, tuple):
        assert len(ours) == len(ref)
        for a, b in zip(ours, ref):
            assert_array_equal(a, b)
    else:
        assert_array_equal(ours, ref)


# sklearn 1.9 announces LogisticRegressionCV's new defaults (FutureWarning); the
# parameters that silence it do not exist at the scikit-learn floor.
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_each_function_gives_what_it_gives_without_the_backend(case, under):
    ref = CASES[case]()
    with under():
        ours = CASES[case]()
    assert_same(ours, ref)


def test_the_helper_is_parallel_config_with_engine(client):
    ref = CASES["GridSearchCV"]()
    with distsk.parallel_backend("dask", client=client):
        assert joblib.parallel.get_active_backend()[0].engine == "dask"
        ours = CASES["GridSearchCV"]()
    assert_same(ours, ref)


# ------------------------------------------------------------- run by distsk's engine
class WhereFit(ClassifierMixin, BaseEstimator):
    """A LogisticRegression whose fit writes where it ran: process and joblib backend."""

    def __init__(self, C=1.0, log=None):
        self.C = C
        self.log = log

    def fit(self, X, y):
        backend = joblib.parallel.get_active_backend()[0]
        rows = zlib.crc32(np.ascontiguousarray(X).tobytes())  # which fold
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()} {type(backend).__name__} {rows}\n")
        self.model_ = logistic_without_joblib(C=self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def _where(log):
    with open(log) as f:
        return [line.split() for line in f.read().splitlines()]


def test_fits_run_on_the_engine_with_inner_parallelism_pinned(under, tmp_path):
    log = str(tmp_path / "where.log")
    with under() as config:
        cross_validate(WhereFit(log=log), X, y, cv=4)
    assert [plan.executor for plan in config["backend"].plans] == [under.engine]
    where = _where(log)
    # Four folds; on Dask a straggling fit may run a second time (speculation).
    assert len({rows for _, _, rows in where}) == 4
    assert len(where) == 4 or under.client is not None
    pids = {int(pid) for pid, _, _ in where}
    if under.engine == "sequential":
        # In this process, the fits' own parallelism is left as it is (as
        # DistributedSearchCV(backend="sequential") does).
        assert pids == {os.getpid()}
    else:
        # Pinned to one core in the worker, never under the distsk backend itself
        # (which would nest a cluster inside a task).
        assert {backend for _, backend, _ in where} == {"SequentialBackend"}
        assert os.getpid() not in pids
    if under.client is not None:
        workers = set(under.client.run(os.getpid).values())
        assert pids <= workers


def test_checkpoint_keeps_the_fits_of_unchanged_code(tmp_path):
    log, path = str(tmp_path / "where.log"), str(tmp_path / "ck.sqlite")
    grid = {"C": [0.1, 1.0, 10.0]}
    ref = GridSearchCV(WhereFit(log=str(tmp_path / "ref.log")), grid, cv=3).fit(X, y)
    with distsk.parallel_backend("loky", checkpoint=path):
        first = GridSearchCV(WhereFit(log=log), grid, cv=3).fit(X, y)
    assert len(_where(log)) == 9 + 1  # nine (candidate, fold) fits and the refit
    with distsk.parallel_backend("loky", checkpoint=path):
        again = GridSearchCV(WhereFit(log=log), grid, cv=3).fit(X, y)
    assert len(_where(log)) == 9 + 1 + 1  # only the refit ran again
    assert_same_cv_results(_search(first), _search(ref))
    assert_same_cv_results(_search(again), _search(ref))


def test_ensemble_sizes_are_shared_as_in_distributedsearchcv(tmp_path):
    # Three n_estimators on one fold are one forest fit: equal to three separate fits.
    grid = {"n_estimators": [5, 10, 20]}
    ref = GridSearchCV(RandomForestClassifier(random_state=0), grid, cv=3).fit(X, y)
    with distsk.parallel_backend("sequential"):
        ours = GridSearchCV(RandomForestClassifier(random_state=0), grid, cv=3).fit(X, y)
    assert_same_cv_results(_search(ours), _search(ref))


class CountingScaler(StandardScaler):
    """A StandardScaler that appends a line to ``log`` for every fit."""

    def __init__(self, log=None):
        super().__init__()
        self.log = log

    def fit(self, X, y=None, sample_weight=None):
        with open(self.log, "a") as f:
            f.write("fit\n")
        return super().fit(X, y, sample_weight)


def test_pipeline_prefixes_are_shared_as_in_distributedsearchcv(tmp_path):
    # Candidates differing only in the final step share the scaler fit of each fold.
    grid = {"logisticregression__C": [0.1, 1.0, 10.0]}
    ref_log, log = str(tmp_path / "ref.log"), str(tmp_path / "ours.log")
    ref = GridSearchCV(make_pipeline(CountingScaler(ref_log), LogisticRegression()),
                       grid, cv=3).fit(X, y)
    with distsk.parallel_backend("sequential"):
        ours = GridSearchCV(make_pipeline(CountingScaler(log), LogisticRegression()),
                            grid, cv=3).fit(X, y)
    assert_same_cv_results(_search(ours), _search(ref))
    with open(ref_log) as f, open(log) as g:
        assert (len(f.readlines()), len(g.readlines())) == (9 + 1, 3 + 1)  # + the refit


# ------------------------------------------------------------------- other calls
def _square(i, *, offset=0):
    return i * i + offset


def _record_thread(i):
    return i, os.getpid(), threading.get_ident()


def test_user_functions_run_in_order(under):
    with under():
        out = Parallel()(delayed(_square)(i, offset=1) for i in range(25))
        plain = joblib.Parallel(n_jobs=-1)(joblib.delayed(math.factorial)(i) for i in range(8))
        kwargs_only = joblib.Parallel()(joblib.delayed(dict)(a=i) for i in range(3))
    assert out == [i * i + 1 for i in range(25)]
    assert plain == [math.factorial(i) for i in range(8)]
    assert kwargs_only == [{"a": 0}, {"a": 1}, {"a": 2}]
    named = joblib.Parallel(backend="distsk", n_jobs=2)(
        joblib.delayed(_square)(i) for i in range(5))
    assert named == [i * i for i in range(5)]


def test_work_for_threads_runs_on_local_threads(under):
    # A forest's per-tree jobs ask for threads: they stay here, never one cluster task
    # per tree.
    with under():
        out = Parallel(n_jobs=2, prefer="threads")(
            delayed(_record_thread)(i) for i in range(6))
        forest = RandomForestClassifier(n_estimators=12, n_jobs=2, random_state=0).fit(X, y)
    assert [i for i, _, _ in out] == list(range(6))
    assert {pid for _, pid, _ in out} == {os.getpid()}
    ref = RandomForestClassifier(n_estimators=12, n_jobs=2, random_state=0).fit(X, y)
    assert_array_equal(forest.predict_proba(X), ref.predict_proba(X))


def _nap(i):
    import time

    time.sleep(0.1)
    return i * i


def test_a_generator_is_consumed_lazily_and_in_order(under):
    taken = []

    def tasks():
        for i in range(20):
            taken.append(i)
            yield delayed(_nap)(i)

    with under():
        gen = Parallel(n_jobs=2, return_as="generator", pre_dispatch=4)(tasks())
        first = next(gen)
        # The first result comes while most of the input is still unread (20 naps of
        # 0.1 s on two workers take a second): joblib's promise, kept.
        assert len(taken) < 20
        rest = list(gen)
    assert [first, *rest] == [i * i for i in range(20)]


# ------------------------------------------------------------------------- nesting
def test_distributedsearchcv_under_the_backend(under):
    grid = {"C": [0.1, 1.0]}
    ref = GridSearchCV(LogisticRegression(), grid, cv=3).fit(X, y)
    with under():
        ours = DistributedSearchCV(LogisticRegression(), grid, cv=3, backend="loky").fit(X, y)
    assert_same_cv_results(_search(ours), _search(ref))


def test_the_backend_inside_a_distributedestimator_fit(under):
    grid = {"max_depth": [2, 4]}
    ref = GridSearchCV(DecisionTreeClassifier(random_state=0), grid, cv=3).fit(X, y)
    wrapped = DistributedEstimator(GridSearchCV(DecisionTreeClassifier(random_state=0),
                                                grid, cv=3), backend="loky")
    with under():
        wrapped.fit(X, y)
    assert_same_cv_results(_search(wrapped.estimator_), _search(ref))


def test_nested_cross_validation_of_a_search(under):
    search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2)
    ref = cross_val_score(clone(search), X, y, cv=3)
    with under():
        ours = cross_val_score(clone(search), X, y, cv=3)
    assert_array_equal(ours, ref)


# ------------------------------------------------------- errors, warnings, error_score
class Failing(ClassifierMixin, BaseEstimator):
    def __init__(self, fail=True):
        self.fail = fail

    def fit(self, X, y):
        if self.fail:
            raise ArithmeticError(f"cannot fit {len(X)} rows")
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _fails(i):
    if i == 3:
        raise KeyError(f"no item {i}")
    return i


def _message(exc_info):
    return type(exc_info.value), str(exc_info.value)


def test_exceptions_are_sklearns(under):
    grid = {"fail": [True, False]}
    with pytest.raises(ArithmeticError) as ref:
        GridSearchCV(Failing(), grid, cv=3, error_score="raise").fit(X, y)
    with under(), pytest.raises(ArithmeticError) as ours:
        GridSearchCV(Failing(), grid, cv=3, error_score="raise").fit(X, y)
    assert _message(ours) == _message(ref)
    with pytest.raises(KeyError) as ref:
        Parallel()(delayed(_fails)(i) for i in range(5))
    with under(), pytest.raises(KeyError) as ours:
        Parallel()(delayed(_fails)(i) for i in range(5))
    assert _message(ours) == _message(ref)


def _warning_texts(record):
    return sorted((w.category.__name__, str(w.message).splitlines()[0]) for w in record)


def test_error_score_and_warnings_are_sklearns(under):
    grid = {"fail": [True, False]}
    with pytest.warns(FitFailedWarning) as ref_warned:
        ref = GridSearchCV(Failing(), grid, cv=3).fit(X, y)
    with under(), pytest.warns(FitFailedWarning) as warned:
        ours = GridSearchCV(Failing(), grid, cv=3).fit(X, y)
    assert_same_cv_results(_search(ours), _search(ref))
    assert _warning_texts(warned) == _warning_texts(ref_warned)
    # A warning raised in the fit (a worker process on loky and Dask) reaches the caller.
    slow = LogisticRegression(max_iter=1)
    with warnings.catch_warnings(record=True) as ref_warned:
        warnings.simplefilter("always")
        ref = cross_val_score(slow, X, y, cv=3)
    with under(), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ours = cross_val_score(slow, X, y, cv=3)
    assert_array_equal(ours, ref)
    convergence = [w for w in warned if issubclass(w.category, ConvergenceWarning)]
    assert len(convergence) == len(
        [w for w in ref_warned if issubclass(w.category, ConvergenceWarning)]) == 3


def test_n_jobs_1_runs_here_as_joblib_does(tmp_path):
    log = str(tmp_path / "where.log")
    with distsk.parallel_backend("loky"):
        cross_validate(WhereFit(log=log), X, y, cv=3, n_jobs=1)
    assert {int(pid) for pid, _, _ in _where(log)} == {os.getpid()}


def test_bad_options_say_what_was_expected():
    with pytest.raises(ValueError, match=r"engine must be one of .*'loky'.*got 'lokyy'"):
        with joblib.parallel_config(backend="distsk", engine="lokyy"):
            pass
    with pytest.raises(ValueError, match=r"engine must be one of"):
        distsk.parallel_backend("spark")
    with pytest.raises(TypeError, match=r"checkpoint must be None, a str or a path-like; got int"):
        distsk.parallel_backend("loky", checkpoint=3)


def test_dask_engine_without_a_cluster_is_refused_as_distributedsearchcv_does():
    from distsk import ClusterUnavailableError

    with distsk.parallel_backend("dask"), pytest.raises(ClusterUnavailableError,
                                                        match="needs a Dask cluster"):
        cross_val_score(LogisticRegression(), X, y, cv=3)


# -------------------------------------------------------------- joblib's contracts
def test_joblib_and_sklearn_behave_as_the_backend_assumes():
    """What ``distsk._face.joblib_backend`` relies on: joblib configures the backend raised
    as ``FallbackToBackend`` from ``configure``; sklearn's ``delayed`` names the function
    it wraps in ``__wrapped__``; joblib passes ``prefer`` to ``configure``."""
    from distsk._compat import FallbackToBackend, SequentialBackend, _fit_and_score

    seen = {}

    class Probe(SequentialBackend):
        def configure(self, n_jobs=1, parallel=None, prefer=None, **kwargs):
            seen["prefer"] = prefer
            raise FallbackToBackend(SequentialBackend(nesting_level=0))

    joblib.register_parallel_backend("distsk-probe", Probe)
    with joblib.parallel_config(backend="distsk-probe"):
        parallel = joblib.Parallel(n_jobs=2, prefer="threads")
        assert parallel(joblib.delayed(abs)(-1) for _ in range(2)) == [1, 1]
    assert type(parallel._backend) is SequentialBackend and seen["prefer"] == "threads"
    func, _, _ = delayed(_fit_and_score)(None)
    assert func.__wrapped__ is _fit_and_score


# ------------------------------------------------------------ one runner per block
def _kept_runner(config):
    (runner,) = config["backend"]._kept.values()  # between calls, the block holds it
    return runner


def test_a_parallel_backend_block_sends_its_data_once_for_all_its_calls(client):
    # Two Parallel calls on the same X: one send under distsk.parallel_backend; one per
    # call under joblib.parallel_config, which never tells a backend that a block ended.
    # (A search's rounds, HalvingGridSearchCV's, are one Parallel: sklearn enters it
    # once, ``with parallel:``, so they always had one runner.)
    def two_calls():
        return (cross_val_score(LogisticRegression(), X, y, cv=3),
                cross_validate(LogisticRegression(C=0.5), X, y, cv=3)["test_score"])

    ref = two_calls()
    with distsk.parallel_backend("dask", client=client) as config:
        ours = two_calls()
        runner = _kept_runner(config)
        assert len(config["backend"].plans) == 2
        assert runner.sent[id(X)] == 1 and runner.sent[id(y)] == 1
    assert_same(ours, ref)
    assert config["backend"]._kept is None and runner._scattered == {}  # released
    with joblib.parallel_config(backend="distsk", engine="dask", client=client) as config:
        assert_same(two_calls(), ref)
        assert config["backend"]._kept is None  # each call's runner closed with it


def test_a_block_sends_again_data_changed_in_place_and_releases_data_not_passed_again(
        client):
    Xm = X.copy()
    with distsk.parallel_backend("dask", client=client) as config:
        before = cross_val_score(LogisticRegression(), Xm, y, cv=3)
        Xm[:, :3] = Xm[::-1, :3]  # same object, new content
        ours = cross_val_score(LogisticRegression(), Xm, y, cv=3)
        runner = _kept_runner(config)
        assert runner.sent[id(Xm)] == 2
        Xs = Xm[:, :2].copy()  # as SequentialFeatureSelector passes a new X per call
        cross_val_score(LogisticRegression(), Xs, y, cv=3)
        assert id(Xm) not in runner._scattered and runner.sent[id(Xs)] == 1
    assert not np.array_equal(ours, before)
    assert_array_equal(ours, cross_val_score(LogisticRegression(), Xm, y, cv=3))


@pytest.mark.timeout(120)
def test_engine_auto_times_the_first_fit_here_keeps_it_and_predicts_every_engine(
        active_client, tmp_path):
    log = str(tmp_path / "where.log")
    grid = {"C": [0.1, 1.0, 10.0]}
    ref = GridSearchCV(WhereFit(log=str(tmp_path / "ref.log")), grid, cv=3).fit(X, y)
    with joblib.parallel_config(backend="distsk") as config:  # engine "auto", client active
        backend = config["backend"]
        ours = GridSearchCV(WhereFit(log=log), grid, cv=3, n_jobs=-1).fit(X, y)
    assert_same_cv_results(ours.cv_results_, ref.cv_results_)
    assert len(backend.plans) == 1, [str(p)[:200] for p in backend.plans]
    (plan,) = backend.plans  # the search's one Parallel call
    assert {p.engine for p in plan.predictions} >= {"sequential", "loky", "dask"}
    assert plan.actual_seconds is not None  # beside the prediction, after the run
    where = _where(log)
    # The probe is the first call, run here (pinned, as on a worker) and kept: every
    # fold of every candidate was fit once (a straggler on Dask may run twice), the
    # refit aside (sklearn's, here).
    assert where[0][0] == str(os.getpid()) and where[0][1] == "SequentialBackend"
    assert len(where) == 9 + 1 or plan.executor == "dask"


@pytest.mark.timeout(120)
def test_engine_auto_with_a_checkpoint_probes_nothing(active_client, tmp_path):
    with joblib.parallel_config(backend="distsk",
                                checkpoint=str(tmp_path / "ck.sqlite")) as config:
        backend = config["backend"]
        GridSearchCV(logistic_without_joblib(), {"C": [0.1, 1.0]}, cv=3, n_jobs=-1).fit(X, y)
    (plan,) = backend.plans
    assert plan.predictions == ()  # every fit goes through the checkpoint


def test_a_halving_search_under_the_backend_plans_once_and_sends_x_once(client):
    """sklearn's halving rounds are one Parallel (entered once, ``with parallel:``): one
    plan, one runner, X and y scattered once; each later round sends only its folds'
    row indices. Counted at the client's own scatter (#22)."""
    Xh, yh = make_classification(n_samples=600, n_features=8, random_state=0)
    grid = {"C": list(np.logspace(-3, 3, 9))}

    def search():
        return HalvingGridSearchCV(logistic_without_joblib(), grid, cv=3, factor=3,
                                   random_state=0).fit(Xh, yh)

    ref = search()
    shapes, scatter = [], client.scatter

    def counting(data, *args, **kwargs):
        values = data.values() if isinstance(data, dict) else (
            data if isinstance(data, list) else [data])
        shapes.extend(getattr(v, "shape", None) for v in values)
        return scatter(data, *args, **kwargs)

    client.scatter = counting
    try:
        with joblib.parallel_config(backend="distsk", engine="dask", client=client) as config:
            ours = search()
    finally:
        del client.scatter  # the instance attribute; the method is the class's again
    assert ours.n_iterations_ == 3 and len(config["backend"].plans) == 1
    assert shapes.count(Xh.shape) == 1 and shapes.count(yh.shape) == 1, shapes
    assert_same(ours.cv_results_, ref.cv_results_)
