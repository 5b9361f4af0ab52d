"""distsk's halving searches equal sklearn's HalvingGridSearchCV / HalvingRandomSearchCV
(cv_results_ with iter and n_resources, best_*, the rounds' attributes, errors) on every
engine: in-process, loky and a LocalCluster."""

import contextlib
import pickle
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_array_equal
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.exceptions import FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import (
    GroupKFold,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    KFold,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils._param_validation import InvalidParameterError

from distsk import DistributedHalvingGridSearchCV, DistributedHalvingRandomSearchCV

from ._search_helpers import assert_same_search
from .counting import count, needs_sklearn_callbacks

ROOT = Path(__file__).resolve().parents[1]
X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
Xr, yr = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
W = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
GROUPS = np.arange(len(y)) % 6
HALVING_ATTRS = (
    "n_resources_", "n_candidates_", "n_remaining_candidates_", "n_iterations_",
    "n_possible_iterations_", "n_required_iterations_", "min_resources_", "max_resources_",
)


@pytest.fixture(params=["sequential", "loky", "dask"])
def engine(request):
    """(backend, client) for each engine; "dask" runs on the session's LocalCluster."""
    if request.param == "dask":
        return "dask", request.getfixturevalue("client")
    return request.param, None


def pair(engine, estimator, space, *, random=False, **kw):
    backend, client = engine
    if random:
        return (DistributedHalvingRandomSearchCV(clone(estimator), space, backend=backend,
                                                 client=client, **kw),
                HalvingRandomSearchCV(clone(estimator), space, **kw))
    return (DistributedHalvingGridSearchCV(clone(estimator), space, backend=backend,
                                           client=client, **kw),
            HalvingGridSearchCV(clone(estimator), space, **kw))


def run(engine, estimator, space, Xd=X, yd=y, fit_params=None, *, random=False, **kw):
    ours, ref = pair(engine, estimator, space, random=random, **kw)
    ref.fit(Xd, yd, **(fit_params or {}))
    ours.fit(Xd, yd, **(fit_params or {}))
    assert ours.plan_.executor == engine[0]
    assert_same_search(ours, ref)
    for attr in HALVING_ATTRS:
        assert getattr(ours, attr) == getattr(ref, attr), attr
    assert len(ours.n_candidates_) > 1  # a real halving, several rounds
    return ours, ref


def test_grid_every_round_runs_on_the_engine(engine):
    grid = {"C": list(np.logspace(-3, 2, 10)), "fit_intercept": [True, False]}
    ours, ref = run(engine, LogisticRegression(), grid, cv=3, random_state=0)
    assert ours.n_candidates_ == [20, 7, 3]
    # Every round's (candidate, fold) fits went through distsk's engine (none ran in
    # sklearn's own Parallel): nothing is shared for a LogisticRegression, so the
    # engine made exactly sklearn's number of fits.
    assert ours.n_fits_performed_ == sum(ours.n_candidates_) * ours.n_splits_
    assert_array_equal(ours.predict(X), ref.predict(X))
    assert isinstance(ours, HalvingGridSearchCV)


def test_random_distributions_exhaust_candidates(engine):
    dists = {"C": loguniform(1e-3, 1e2), "fit_intercept": [True, False]}
    ours, _ = run(engine, LogisticRegression(), dists, random=True, cv=3, random_state=0)
    assert ours.n_candidates_[0] == ours.max_resources_ // ours.min_resources_
    assert ours.n_fits_performed_ == sum(ours.n_candidates_) * ours.n_splits_


def test_random_min_resources_exhaust_and_factor(engine):
    dists = {"max_depth": randint(1, 8), "min_samples_leaf": randint(1, 10)}
    run(engine, DecisionTreeClassifier(random_state=0), dists, random=True, n_candidates=16,
        min_resources="exhaust", factor=2, cv=3, random_state=1)


def test_resource_n_estimators_on_a_seeded_forest(engine):
    grid = {"max_depth": [2, 4, None], "max_features": [1, 2, "sqrt"]}
    ours, _ = run(engine, RandomForestClassifier(random_state=0), grid,
                  resource="n_estimators", max_resources=27, cv=3, random_state=0)
    assert ours.n_resources_ == [3, 9, 27]
    assert list(ours.cv_results_["param_n_estimators"]) == [3] * 9 + [9] * 3 + [27]


@pytest.mark.slow
def test_resource_max_iter_on_hist_gradient_boosting(engine):
    grid = {"learning_rate": [0.05, 0.1, 0.3], "max_leaf_nodes": [4, 15, 31]}
    run(engine, HistGradientBoostingRegressor(random_state=0, early_stopping=False), grid,
        Xd=Xr, yd=yr, resource="max_iter", max_resources=27, cv=3, random_state=0)


def test_aggressive_elimination(engine):
    grid = {"C": list(np.logspace(-3, 2, 12)), "fit_intercept": [True, False]}
    ours, ref = run(engine, LogisticRegression(), grid, cv=3, random_state=0,
                    max_resources=120, min_resources=40, aggressive_elimination=True)
    assert ours.n_iterations_ > ours.n_possible_iterations_  # aggressive rounds happened
    assert ours.n_resources_[0] == ours.n_resources_[1]


def test_ties_broken_as_sklearn_breaks_them(engine):
    # Deep trees on small subsamples fit them perfectly: many equal scores per round.
    grid = {"max_depth": [6, 7, 8, 9, 10, 11, 12, None], "min_samples_split": [2, 3]}
    ours, ref = run(engine, DecisionTreeClassifier(random_state=0), grid, cv=3,
                    random_state=0)
    first = ours.cv_results_["mean_test_score"][: ours.n_candidates_[0]]
    assert len(set(first)) < len(first)


def test_error_score_numeric_and_warning(engine):
    grid = {"C": [1.0, -1.0, 0.1, 10.0]}  # C=-1 fails validation in every fold
    with pytest.warns(FitFailedWarning, match="fits failed"):
        ours, _ = run(engine, LogisticRegression(), grid, error_score=-7.0, cv=3,
                      random_state=0)
    assert -7.0 in list(ours.cv_results_["split0_test_score"])


def test_error_score_nan_never_survives(engine):
    with pytest.warns(FitFailedWarning):
        ours, _ = run(engine, LogisticRegression(), {"C": [1.0, -1.0, 0.1, 10.0]}, cv=3,
                      random_state=0)
    assert {"C": -1.0} not in ours.cv_results_["params"][ours.n_candidates_[0]:]


def test_error_score_raise_keeps_exception_type(engine):
    ours, ref = pair(engine, LogisticRegression(), {"C": [1.0, -1.0, 0.1]},
                     error_score="raise", cv=3)
    with pytest.raises(ValueError) as ref_exc:
        ref.fit(X, y)
    with pytest.raises(ValueError) as ours_exc:
        ours.fit(X, y)
    assert type(ours_exc.value) is type(ref_exc.value)
    assert str(ours_exc.value) == str(ref_exc.value)


def test_multimetric_is_refused_as_sklearn_refuses_it(engine):
    # sklearn's halving searches are single-metric: a list of scorers is an invalid
    # parameter, a callable returning a dict fails when the round's best are picked.
    def two_scores(est, Xs, ys):
        return {"accuracy": est.score(Xs, ys), "one": 1.0}

    for scoring, exc_type in ((["accuracy", "recall"], InvalidParameterError),
                              (two_scores, KeyError)):
        ours, ref = pair(engine, LogisticRegression(), {"C": [0.1, 1.0, 10.0]},
                         scoring=scoring, refit="accuracy", cv=3)
        with pytest.raises(exc_type) as ref_exc:
            ref.fit(X, y)
        with pytest.raises(exc_type) as ours_exc:
            ours.fit(X, y)
        assert str(ours_exc.value).replace(type(ours).__name__, type(ref).__name__) == str(
            ref_exc.value)


def test_scoring_string_and_refit_false(engine):
    ours, _ = run(engine, LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]},
                  scoring="balanced_accuracy", refit=False, cv=3, random_state=0)
    assert not hasattr(ours, "best_estimator_")


def test_groups_with_group_kfold(engine):
    run(engine, LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=GroupKFold(3),
        fit_params={"groups": GROUPS}, random_state=0)


def test_sample_weight_with_metadata_routing(engine):
    with sklearn.config_context(enable_metadata_routing=True):
        est = LogisticRegression().set_fit_request(sample_weight=True).set_score_request(
            sample_weight=True)
        run(engine, est, {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3, random_state=0,
            fit_params={"sample_weight": W})


def test_pipeline_candidates_and_return_train_score_false(engine):
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    run(engine, pipe, {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=KFold(3),
        return_train_score=False, random_state=0)


def test_bad_parameters_get_sklearns_errors():
    cases = [
        dict(resource="nope"),  # not a parameter of the estimator
        dict(resource="C", max_resources=10),  # searched over
        dict(max_resources=5, min_resources=10),
        dict(cv=KFold(3, shuffle=True)),  # folds change between calls to split
        dict(factor=0),
    ]
    for kw in cases:
        ours, ref = pair(("sequential", None), LogisticRegression(), {"C": [0.1, 1.0]},
                         **kw)
        with pytest.raises(Exception) as ref_exc:
            ref.fit(X, y)
        with pytest.raises(type(ref_exc.value)) as ours_exc:
            ours.fit(X, y)
        assert str(ours_exc.value).replace(type(ours).__name__, type(ref).__name__) == str(
            ref_exc.value), kw
    with pytest.raises(ValueError, match="cannot be both set to 'exhaust'"):
        DistributedHalvingRandomSearchCV(LogisticRegression(), {"C": [0.1, 1.0]},
                                         min_resources="exhaust").fit(X, y)


def test_distsk_parameters_are_validated():
    from sklearn.utils.estimator_checks import check_param_validation

    with pytest.raises(InvalidParameterError, match="'backend' parameter"):
        DistributedHalvingGridSearchCV(LogisticRegression(), {"C": [1.0]},
                                       backend="spark").fit(X, y)
    for cls in (DistributedHalvingGridSearchCV, DistributedHalvingRandomSearchCV):
        check_param_validation(cls.__name__, cls(LogisticRegression(), {"C": [0.1, 1.0]},
                                                 backend="sequential"))


def test_clone_pickle_and_pipeline_nesting(client):
    # By address: sklearn's clone deep-copies parameters, which a live Client refuses.
    search = DistributedHalvingGridSearchCV(
        LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3, random_state=0,
        backend="dask", client=client.scheduler.address)
    assert clone(search).get_params()["backend"] == "dask"
    assert set(search.get_params(deep=False)) == set(
        HalvingGridSearchCV(LogisticRegression(), {}).get_params(deep=False)) | {
        "backend", "client", "max_gather_bytes", "checkpoint", "time_budget",
        "early_drop"}
    pipe = make_pipeline(StandardScaler(), search).fit(X, y)
    ref = make_pipeline(StandardScaler(), HalvingGridSearchCV(
        LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3, random_state=0)).fit(X, y)
    assert_array_equal(pipe.predict(X), ref.predict(X))
    again = pickle.loads(pickle.dumps(pipe))
    assert_array_equal(again.predict(X), ref.predict(X))
    assert again[-1].n_candidates_ == ref[-1].n_candidates_


# --------------------------------------------------------------------- checkpoint
ROUNDS = [54, 18, 6, 2]  # fits per round of tests/_halving_resume_script.py's search


def _stored(path) -> int:
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # the other process is still creating the file
        return 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_run_killed_in_round_three_resumes_there(tmp_path):
    from ._halving_resume_script import data, search

    ckpt, counter = tmp_path / "halving.sqlite", tmp_path / "fits.txt"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests._halving_resume_script", "--backend", "loky",
         "--checkpoint", str(ckpt), "--counter", str(counter)], cwd=ROOT)
    two_rounds = ROUNDS[0] + ROUNDS[1]
    deadline = time.time() + 200
    while time.time() < deadline and child.poll() is None:
        if ckpt.exists() and _stored(ckpt) > two_rounds:
            break
        time.sleep(0.05)
    assert child.poll() is None, "the search ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    last, still_since = -1, time.time()  # fits running in loky workers finish alone
    while time.time() - still_since < 3:
        if count(counter) != last:
            last, still_since = count(counter), time.time()
        time.sleep(0.1)
    kept = _stored(ckpt)
    assert two_rounds < kept < two_rounds + ROUNDS[2]  # killed during round 3
    before = count(counter)
    Xd, yd = data()
    resumed = search("loky", str(ckpt), str(counter), 0.3).fit(Xd, yd)
    assert resumed.n_candidates_ == [27, 9, 3, 1]
    assert count(counter) - before == sum(ROUNDS) - kept  # rounds 1-2 not recomputed
    assert resumed.n_fits_resumed_ == kept
    assert resumed.n_fits_performed_ == sum(ROUNDS) - kept
    ref = search("sequential", None, None, 0.0)
    ref = HalvingGridSearchCV(ref.estimator, ref.param_grid, cv=2, random_state=0,
                              refit=False).fit(Xd, yd)
    assert_same_search(resumed, ref)


# ------------------------------------------------------------------------- growth
def _sklearn_trees(ref):
    return sum(c * r for c, r in zip(ref.n_candidates_, ref.n_resources_)) * ref.n_splits_


GROWABLE = {
    "forest": (RandomForestClassifier(random_state=0, max_features=2), "n_estimators",
               {"max_depth": [2, 4, None], "min_samples_leaf": [1, 3, 5]}),
    "extra-trees-bootstrap": (
        ExtraTreesClassifier(random_state=0, bootstrap=True, max_samples=0.7),
        "n_estimators", {"max_depth": [2, 4, None], "min_samples_leaf": [1, 3, 5]}),
    "gradient-boosting-subsample": (
        GradientBoostingClassifier(random_state=0, subsample=0.7, max_features=3),
        "n_estimators", {"max_depth": [1, 2, 3], "learning_rate": [0.05, 0.2, 1.0]}),
    "hist-gradient-boosting": (
        HistGradientBoostingClassifier(random_state=0, max_features=0.5), "max_iter",
        {"max_depth": [2, 3, None], "learning_rate": [0.05, 0.2, 1.0]}),
}


@pytest.mark.parametrize("name", list(GROWABLE))
def test_survivors_grow_from_their_previous_model_exactly(engine, name):
    estimator, resource, grid = GROWABLE[name]
    ours, ref = run(engine, estimator, grid, resource=resource, max_resources=18, cv=3,
                    random_state=0)
    assert ours.n_resources_ == [2, 6, 18]
    # Every survivor of every round grew its model: only the added trees were fit.
    assert ours.n_fits_grown_ == sum(ours.n_candidates_[1:]) * ours.n_splits_
    assert ours.n_fits_performed_ == sum(ours.n_candidates_) * ours.n_splits_
    per_fold = [2 * 9, 4 * 3, 12 * 1]  # round sizes minus the previous round's
    assert ours.n_trees_fitted_ == sum(per_fold) * 3 < _sklearn_trees(ref)


@pytest.mark.parametrize("name", list(GROWABLE))
def test_a_grown_model_is_the_fresh_model(name):
    from distsk._search.halving_rounds import _fit_and_keep  # the growth step itself

    estimator, resource, _ = GROWABLE[name]
    small = clone(estimator).set_params(**{resource: 4}).fit(X, y)
    fresh = clone(estimator).set_params(**{resource: 12}).fit(X, y)
    scorer = sklearn.metrics.check_scoring(estimator)
    result = _fit_and_keep(
        clone(estimator), X, y, distsk_previous=(4, small), distsk_keep=True,
        distsk_resource=resource,
        train=np.arange(len(y)), test=np.arange(len(y)), parameters={resource: 12},
        scorer=scorer, fit_params=None, score_params=None, verbose=0, error_score="raise")
    grown_from, trees, grown = result["estimator"]
    assert (grown_from, trees, type(grown)) == (4, 8, type(estimator))
    assert not grown.warm_start
    assert_array_equal(grown.predict_proba(X), fresh.predict_proba(X))
    assert len(small.estimators_ if hasattr(small, "estimators_") else small._predictors) == 4


@pytest.mark.parametrize("change", [
    dict(random_state=None),  # unseeded: two fits differ
    dict(class_weight="balanced_subsample"),  # a warm start warns where a fit does not
    dict(oob_score=True),
])
def test_models_that_would_not_grow_exactly_are_fit_afresh(change):
    estimator = RandomForestClassifier(random_state=0).set_params(**change)
    grid = {"max_depth": [2, 4, None], "min_samples_leaf": [1, 3, 5]}
    kw = dict(resource="n_estimators", max_resources=18, cv=3, random_state=0)
    ours = DistributedHalvingGridSearchCV(estimator, grid, backend="sequential", **kw)
    ours.fit(X, y)
    assert ours.n_fits_grown_ == 0
    assert ours.n_trees_fitted_ == _sklearn_trees(ours)
    if change.get("random_state", 0) is not None:
        assert_same_search(ours, HalvingGridSearchCV(estimator, grid, **kw).fit(X, y))


def test_fit_parameters_are_fit_afresh():
    grid = {"max_depth": [2, 4, None], "min_samples_leaf": [1, 3, 5]}
    ours, _ = run(("sequential", None), RandomForestClassifier(random_state=0), grid,
                  fit_params={"sample_weight": W}, resource="n_estimators",
                  max_resources=18, cv=3, random_state=0)
    assert ours.n_fits_grown_ == 0
    ours, _ = run(("sequential", None), LogisticRegression(), {"C": [0.1, 1.0, 10.0]},
                  cv=3, random_state=0)
    assert ours.n_fits_grown_ == 0 and ours.n_trees_fitted_ is None


# ---------------------------------------------------------------------- callbacks
@needs_sklearn_callbacks
@pytest.mark.parametrize("where", ["loky", "dask"])
def test_callbacks_see_every_round_and_fit(where, request):
    import os

    from .counting import RecordingCallback

    client = request.getfixturevalue("client") if where == "dask" else None
    callback = RecordingCallback()
    search = DistributedHalvingGridSearchCV(
        LogisticRegression(), {"C": list(np.logspace(-3, 2, 9))}, cv=3, random_state=0,
        backend=where, client=client)
    search.set_callbacks(callback)
    search.fit(X, y)
    assert search.n_candidates_ == [9, 3, 1]
    assert len(callback.ends("halving-iteration")) == 3
    ends = callback.ends("candidate-split-evaluation")
    assert len(ends) == (9 + 3 + 1) * 3
    assert {r[2] for r in ends} - {os.getpid()}  # they came from other processes
    assert len(callback.ends("search")) == 1


# ----------------------------------------------- what DistributedSearchCV has, per round
def test_pipeline_prefixes_are_shared_in_every_round(engine):
    pipe = make_pipeline(StandardScaler(), PCA(n_components=3, random_state=0),
                         LogisticRegression())
    grid = {"logisticregression__C": list(np.logspace(-3, 2, 9))}
    ours, _ = run(engine, pipe, grid, cv=3, random_state=0)
    assert ours.n_candidates_ == [9, 3, 1]
    # One prefix fit per (round, fold) where two or more candidates share it; a
    # round's lone candidate is an ordinary fit: 3 + 3 + 3, not (9 + 3 + 1) x 3.
    assert ours.n_fits_performed_ == 9


def test_dask_input_is_gathered(active_client):
    import dask.array as da

    Xd = da.from_array(X, chunks=(100, -1))
    yd = da.from_array(y, chunks=100)
    ours = DistributedHalvingGridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]},
                                          cv=3, random_state=0, backend="dask").fit(Xd, yd)
    ref = HalvingGridSearchCV(LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3,
                              random_state=0).fit(X, y)
    assert_same_search(ours, ref)
    assert ours.n_candidates_ == ref.n_candidates_


def test_bad_input_fails_as_sklearn_fails(engine):
    Xnan = X.copy()
    Xnan[::7, 0] = np.nan  # LogisticRegression refuses NaN: every fit fails
    ours, ref = pair(engine, LogisticRegression(), {"C": [0.1, 1.0, 10.0]}, cv=3)
    with pytest.raises(ValueError) as ref_exc:
        ref.fit(Xnan, y)
    with pytest.raises(ValueError) as ours_exc:
        ours.fit(Xnan, y)
    # The fits' tracebacks are quoted; distsk's engine drops empty callback contexts,
    # so sklearn's _fit_and_score calls fit from another line of its own.
    def text(exc):
        return re.sub(r"_validation.py\", line \d+", "_validation.py", str(exc.value))

    assert text(ours_exc) == text(ref_exc)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fit_that_kills_its_worker_ends_as_error_score_and_never_survives():
    from .counting import CountingClassifier

    grid = {"die": [False, True], "C": [0.01, 0.1, 1.0, 10.0]}
    search = DistributedHalvingGridSearchCV(CountingClassifier(), grid, cv=2, refit=False,
                                            random_state=0, backend="loky")
    with pytest.warns(FitFailedWarning, match="died every time it ran it"):
        search.fit(X, y)
    res = search.cv_results_
    first = slice(0, search.n_candidates_[0])
    killed = [p["die"] for p in res["params"][first]]
    assert all(np.isnan(res["mean_test_score"][first][killed]))
    assert not any(p["die"] for p in res["params"][search.n_candidates_[0]:])
    ref = HalvingGridSearchCV(CountingClassifier(), {"die": [False], "C": grid["C"]}, cv=2,
                              refit=False, random_state=0).fit(X, y)
    alive = [i for i, p in enumerate(res["params"][first]) if not p["die"]]
    assert list(res["mean_test_score"][first][alive]) == list(
        ref.cv_results_["mean_test_score"][: ref.n_candidates_[0]])


def test_checkpointed_rounds_are_reused_and_grown_models_need_no_checkpoint(tmp_path):
    ckpt = str(tmp_path / "halving.sqlite")
    grid = {"max_depth": [2, 4, None], "min_samples_leaf": [1, 3, 5]}
    kw = dict(resource="n_estimators", max_resources=18, cv=3, random_state=0)
    ref = HalvingGridSearchCV(RandomForestClassifier(random_state=0), grid, **kw).fit(X, y)
    first = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid,
                                           backend="loky", checkpoint=ckpt, **kw).fit(X, y)
    again = DistributedHalvingGridSearchCV(RandomForestClassifier(random_state=0), grid,
                                           backend="loky", checkpoint=ckpt, **kw).fit(X, y)
    n_fits = sum(ref.n_candidates_) * ref.n_splits_
    assert first.n_fits_grown_ > 0 and first.n_fits_resumed_ == 0
    assert again.n_fits_resumed_ == n_fits and again.n_fits_performed_ == 0
    assert again.n_trees_fitted_ == 0
    for search in (first, again):
        assert_same_search(search, ref)


@pytest.mark.parametrize("inner, grid", [(Ridge(), {"alpha": [0.1, 1.0]}),
                                         (LogisticRegression(), {"C": [0.1, 1.0]})],
                         ids=["Ridge", "LogisticRegression"])
def test_check_estimator_outcomes_are_sklearns_halving_outcomes(inner, grid):
    from sklearn.utils.estimator_checks import check_estimator

    def outcomes(search):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = check_estimator(search, on_fail=None, on_skip=None)
        return ({r["check_name"]: r["status"] for r in out},
                {r["check_name"]: repr(r["exception"]) for r in out if r["exception"]})

    # random_state: the rounds' subsamples are random otherwise, and so is whether
    # check_decision_proba_consistency passes, for sklearn's class too.
    kw = dict(cv=2, min_resources="smallest", error_score="raise", random_state=0)
    ref, ref_errors = outcomes(HalvingGridSearchCV(inner, grid, **kw))
    ours, errors = outcomes(
        DistributedHalvingGridSearchCV(inner, grid, backend="sequential", **kw))
    differ = {name for name in ref if ours.get(name) != ref[name]}
    assert ours == ref, {name: (errors.get(name), ref_errors.get(name)) for name in differ}
    assert sum(status == "passed" for status in ours.values()) >= 45


@pytest.mark.parametrize("seed", ["instance", "global"])
def test_random_state_instance_or_global_draws_as_sklearn(engine, seed):
    backend, client = engine
    dists = {"C": loguniform(1e-3, 1e2), "fit_intercept": [True, False]}

    def fitted(cls, **kw):
        if seed == "global":
            np.random.seed(7)
        rs = np.random.RandomState(3) if seed == "instance" else None
        return cls(LogisticRegression(), dists, n_candidates=9, cv=3, random_state=rs,
                   **kw).fit(X, y)

    ref = fitted(HalvingRandomSearchCV)
    ours = fitted(DistributedHalvingRandomSearchCV, backend=backend, client=client)
    assert_same_search(ours, ref)
