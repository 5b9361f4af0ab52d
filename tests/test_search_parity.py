"""DistributedSearchCV's cv_results_ equal GridSearchCV's / RandomizedSearchCV's (timing keys
aside) on every engine: in-process, loky, a LocalCluster, and a CLI-started cluster."""

import io
from contextlib import redirect_stdout

import numpy as np
import pandas as pd
import pytest
import sklearn
from numpy.testing import assert_array_equal
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.decomposition import PCA
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import make_scorer, recall_score
from sklearn.model_selection import GridSearchCV, GroupKFold, KFold, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from distsk import DistributedEstimator, DistributedSearchCV

from ._search_helpers import assert_same_search

X, y = make_classification(n_samples=120, n_features=5, n_informative=3, random_state=0)
Xr, yr = make_regression(n_samples=120, n_features=5, random_state=0)
W = np.random.RandomState(0).uniform(0.5, 2.0, size=len(y))
GROUPS = np.arange(len(y)) % 6


@pytest.fixture(params=["sequential", "loky", "dask"])
def engine(request):
    """(backend, client) for each engine; "dask" runs on the session's LocalCluster."""
    if request.param == "dask":
        return "dask", request.getfixturevalue("client")
    return request.param, None




def run(engine, estimator, grid, Xd=X, yd=y, fit_params=None, **kw):
    backend, client = engine
    fit_params = fit_params or {}
    if grid is not None:
        ref = GridSearchCV(clone(estimator), grid, **kw)
        ours = DistributedSearchCV(clone(estimator), grid, backend=backend, client=client, **kw)
    else:
        ref = RandomizedSearchCV(clone(estimator), **kw)
        ours = DistributedSearchCV(clone(estimator), backend=backend, client=client, **kw)
    ref.fit(Xd, yd, **fit_params)
    ours.fit(Xd, yd, **fit_params)
    assert ours.plan_.executor == backend
    assert_same_search(ours, ref)
    return ours, ref


def test_classifier(engine):
    ours, ref = run(engine, LogisticRegression(), {"C": [0.01, 0.1, 1.0, 10.0]}, cv=3)
    assert_array_equal(ours.predict(X), ref.predict(X))


def test_regressor(engine):
    run(engine, Ridge(), {"alpha": [0.1, 1.0, 10.0]}, Xd=Xr, yd=yr, cv=4)


def test_string_labels(engine):
    labels = np.array(["cat", "dog"])[y]
    ours, ref = run(engine, DecisionTreeClassifier(random_state=0), {"max_depth": [1, 3]},
                    yd=labels, cv=3)
    assert_array_equal(ours.classes_, ["cat", "dog"])


def test_pandas_input_keeps_feature_names(engine):
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(5)])
    ours, _ = run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, Xd=df, cv=3)
    assert list(ours.best_estimator_.feature_names_in_) == list(df.columns)
    assert list(ours.feature_names_in_) == list(df.columns)


@pytest.mark.parametrize("refit", ["accuracy", lambda r: int(np.argmin(r["rank_test_recall"]))])
def test_multimetric_with_refit_string_and_callable(engine, refit):
    scoring = {"accuracy": "accuracy", "recall": make_scorer(recall_score)}
    run(engine, LogisticRegression(), {"C": [0.01, 1.0]}, scoring=scoring, refit=refit, cv=3)


def test_refit_false(engine):
    ours, _ = run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, refit=False, cv=3)
    assert not hasattr(ours, "best_estimator_")


def test_error_score_numeric_and_warning(engine):
    grid = {"C": [1.0, -1.0]}  # C=-1 fails validation in every fold
    with pytest.warns(FitFailedWarning, match="fits failed"):
        ours, _ = run(engine, LogisticRegression(), grid, error_score=-7.0, cv=3)
    assert list(ours.cv_results_["split0_test_score"]).count(-7.0) == 1


def test_error_score_raise_keeps_exception_type(engine):
    backend, client = engine
    search = DistributedSearchCV(LogisticRegression(), {"C": [1.0, -1.0]}, error_score="raise",
                                 backend=backend, client=client, cv=3)
    with pytest.raises(ValueError) as ours:
        search.fit(X, y)
    with pytest.raises(ValueError) as ref:
        GridSearchCV(LogisticRegression(), {"C": [1.0, -1.0]}, error_score="raise", cv=3).fit(X, y)
    assert type(ours.value) is type(ref.value) and str(ours.value) == str(ref.value)


def test_return_train_score(engine):
    run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, return_train_score=True, cv=3)


def test_groups_with_group_kfold(engine):
    run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, cv=GroupKFold(n_splits=3),
        fit_params={"groups": GROUPS})


def test_cv_iterable(engine):
    splits = list(KFold(4, shuffle=True, random_state=0).split(X))
    run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, cv=splits)


def test_sample_weight_without_routing(engine):
    run(engine, LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, fit_params={"sample_weight": W})


def test_sample_weight_with_routing(engine):
    with sklearn.config_context(enable_metadata_routing=True):
        est = LogisticRegression().set_fit_request(sample_weight=True).set_score_request(
            sample_weight=True)
        run(engine, est, {"C": [0.1, 1.0]}, cv=3, fit_params={"sample_weight": W})


def test_pipeline_estimator(engine):
    pipe = make_pipeline(StandardScaler(), PCA(random_state=0), LogisticRegression())
    run(engine, pipe, {"pca__n_components": [2, 4], "logisticregression__C": [0.1, 1.0]}, cv=3)


def test_distributed_estimator_as_estimator(engine):
    run(engine, DistributedEstimator(LogisticRegression()), {"estimator__C": [0.1, 1.0]}, cv=3)


@pytest.mark.parametrize("seed", [0, "instance"])
def test_randomized_search_same_candidates(engine, seed):
    rs = np.random.RandomState(3) if seed == "instance" else seed
    rs_ref = np.random.RandomState(3) if seed == "instance" else seed
    backend, client = engine
    dists = {"C": loguniform(1e-3, 1e2), "fit_intercept": [True, False]}
    ours = DistributedSearchCV(LogisticRegression(), param_distributions=dists, n_iter=5,
                               random_state=rs, cv=3, backend=backend, client=client).fit(X, y)
    ref = RandomizedSearchCV(LogisticRegression(), dists, n_iter=5, random_state=rs_ref,
                             cv=3).fit(X, y)
    assert_same_search(ours, ref)


def test_verbose_prints_sklearns_lines(engine):
    backend, client = engine
    out = io.StringIO()
    with redirect_stdout(out):
        DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, verbose=1,
                            backend=backend, client=client).fit(X, y)
    assert "Fitting 3 folds for each of 2 candidates, totalling 6 fits" in out.getvalue()
    assert f"[distsk] {backend}" in out.getvalue()


def test_verbose_relays_per_fit_lines_from_workers(client):
    out = io.StringIO()
    with redirect_stdout(out):
        DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3, verbose=3,
                            backend="dask", client=client).fit(X, y)
    assert out.getvalue().count("[CV ") == 6
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[CV ")]
    assert sum("C=0.1;" in line and "END" in line for line in lines) == 3


def test_cli_cluster_by_address(cli_client):
    address = cli_client.scheduler.address
    run(("dask", address), LogisticRegression(), {"C": [0.01, 0.1, 1.0]}, cv=3)


def test_malformed_grid_gets_sklearns_error():
    with pytest.raises(TypeError) as ref:
        GridSearchCV(LogisticRegression(), {"C": 1.0}).fit(X, y)
    with pytest.raises(TypeError) as ours:
        DistributedSearchCV(LogisticRegression(), {"C": 1.0}).fit(X, y)
    assert str(ours.value) == str(ref.value)


def test_auto_runs_tiny_search_in_process():
    # With no loky pool running (its start would cost more than the 6 fits): in process.
    # A warm pool may win (tests/test_cost_model.py), so earlier tests' pool is stopped.
    from joblib.externals.loky import reusable_executor

    from distsk._compat import loky_workers

    if reusable_executor._executor is not None:
        reusable_executor._executor.shutdown(wait=True)
    assert loky_workers() == 0
    ours = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    assert ours.plan_.executor == "sequential" and "probe fit" in ours.plan_.reason


def test_nests_in_sklearn_search_and_cross_validate_clones_and_pickles(client):
    import pickle

    from sklearn.base import clone
    from sklearn.model_selection import cross_validate

    inner = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)
    ref_inner = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3)
    outer = GridSearchCV(inner, {"estimator__fit_intercept": [True, False]}, cv=3).fit(X, y)
    ref = GridSearchCV(ref_inner, {"estimator__fit_intercept": [True, False]}, cv=3).fit(X, y)
    assert_array_equal(outer.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"])
    ours_cv = cross_validate(inner, X, y, cv=3)["test_score"]
    assert_array_equal(ours_cv, cross_validate(ref_inner, X, y, cv=3)["test_score"])
    on_cluster = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3,
                                     backend="dask", client=client).fit(X, y)
    again = pickle.loads(pickle.dumps(on_cluster))
    assert again.client == client.scheduler.address  # a Client travels as its address
    assert_array_equal(again.predict(X), on_cluster.predict(X))
    assert clone(on_cluster).get_params()["client"] in (client, client.scheduler.address)


def test_dask_input_stays_on_the_workers_is_gathered_or_refused_clearly(active_client):
    import dask.array as da

    from distsk import DataTooLargeError
    from distsk._decide import planning as _planning

    dX, dy = da.from_array(X, chunks=(40, 5)), da.from_array(y, chunks=40)
    ref = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(X, y)
    # A worker holds it: assembled there (#10).
    ours = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3).fit(dX, dy)
    assert ours.plan_.on_workers and not ours.plan_.gather
    assert_same_search(ours, ref)
    # Not on the cluster (backend='loky'): gathered into this process.
    ours = DistributedSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=3,
                               backend="loky").fit(dX, dy)
    assert ours.plan_.gather and not ours.plan_.on_workers
    assert_same_search(ours, ref)
    with pytest.raises(DataTooLargeError, match="over both the gather limit.*max_gather_bytes"):
        DistributedSearchCV(LogisticRegression(), {"C": [1.0]}, max_gather_bytes=100,
                            backend="loky").fit(dX, dy)
    room = _planning.WORKER_DATA_FRACTION
    try:  # over both memories on the cluster too
        _planning.WORKER_DATA_FRACTION = 1e-12
        with pytest.raises(DataTooLargeError, match="of a worker's memory"):
            DistributedSearchCV(LogisticRegression(), {"C": [1.0]},
                                max_gather_bytes=100).fit(dX, dy)
    finally:
        _planning.WORKER_DATA_FRACTION = room
