"""``mlflow.sklearn.autolog()`` logs a distsk search as it logs the sklearn search it
replaces: one run with the same parameters (and distsk's own), metrics and tags (the class
aside), a child run per candidate for GridSearchCV and RandomizedSearchCV, on every engine;
no run for the probe fit or any other fit the search makes, and one run again after a
resume. MLflow's file store in a temporary folder; MLflow is a test dependency only."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from scipy.stats import loguniform
from sklearn.datasets import make_classification
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)

from distsk import (
    DistributedHalvingGridSearchCV,
    DistributedHalvingRandomSearchCV,
    DistributedSearchCV,
)

mlflow = pytest.importorskip("mlflow", reason="needs MLflow, in distsk's dev extra")

PARENT = "mlflow.parentRunId"
X, y = make_classification(n_samples=150, n_features=6, random_state=0)
C6 = {"C": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]}  # 6 candidates: autolog's top 5 get a run
C4 = {"C": [0.01, 0.1, 1.0, 10.0]}
C_DIST = {"C": loguniform(0.01, 10.0)}  # one object: its repr is logged, sklearn's and ours

# sklearn's search and distsk's on the same inputs, by kind.
SEARCHES = {
    "grid": (lambda: GridSearchCV(LogisticRegression(), C6, cv=3),
             lambda **kw: DistributedSearchCV(LogisticRegression(), C6, cv=3, **kw)),
    "random": (
        lambda: RandomizedSearchCV(LogisticRegression(), C6, n_iter=6, cv=3, random_state=0),
        lambda **kw: DistributedSearchCV(LogisticRegression(), param_distributions=C6,
                                         n_iter=6, cv=3, random_state=0, **kw)),
    "halving-grid": (
        lambda: HalvingGridSearchCV(LogisticRegression(), C4, cv=3, random_state=0),
        lambda **kw: DistributedHalvingGridSearchCV(LogisticRegression(), C4, cv=3,
                                                    random_state=0, **kw)),
    # n_candidates, min_resources and max_resources at their (string) defaults: MLflow
    # logs the search's HTML repr, and sklearn 1.9.0's repr on numpy 2.0.0 (the floors)
    # fails comparing an int given for them with the default string ('bool' object has
    # no attribute 'all'), sklearn's own class alike. 12 candidates (150 // 12 rows).
    "halving-random": (
        lambda: HalvingRandomSearchCV(LogisticRegression(), C_DIST, cv=3, random_state=0),
        lambda **kw: DistributedHalvingRandomSearchCV(LogisticRegression(), C_DIST, cv=3,
                                                      random_state=0, **kw)),
}


@pytest.fixture
def autolog(tmp_path, monkeypatch):
    """sklearn autologging into a file store of this test's own, off again afterwards."""
    # MLflow's test mode: an error in its patch code is raised, not only warned about.
    monkeypatch.setenv("MLFLOW_AUTOLOGGING_TESTING", "true")
    # MLflow 3.x refuses its file store unless asked for it (a database is its default).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri((tmp_path / "mlruns").as_uri())
    # The active experiment is process-wide: one of an earlier test's store is not in
    # this one ("Could not find experiment with ID ..." in some orders).
    mlflow.set_experiment("distsk-tests")
    mlflow.sklearn.autolog(log_models=False, silent=True)
    yield mlflow.MlflowClient()
    mlflow.sklearn.autolog(disable=True)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(previous)


def _fit_logged(client, name, search, **fit_params):
    """Fit ``search`` in a new experiment: its top-level runs and child runs."""
    experiment = mlflow.set_experiment(name)
    search.fit(X, y, **fit_params)
    runs = client.search_runs([experiment.experiment_id])
    return ([r for r in runs if PARENT not in r.data.tags],
            [r for r in runs if PARENT in r.data.tags])


def _untimed(metrics):
    return {k: v for k, v in metrics.items() if "time" not in k}


def _own_tags(run):
    return {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}


def _digests(run):
    return sorted(d.dataset.digest for d in run.inputs.dataset_inputs)


def assert_logged_alike(ours, ref, search, ref_search):
    """distsk's runs are sklearn's: the class and distsk's own parameters aside."""
    (parent,), children = ours
    (ref_parent,), ref_children = ref
    own = set(search.get_params(deep=False)) - set(ref_search.get_params(deep=False))
    params, ref_params = parent.data.params, ref_parent.data.params
    assert set(params) - set(ref_params) == own
    assert {k: params[k] for k in ref_params} == ref_params
    assert parent.data.metrics == ref_parent.data.metrics
    cls = type(search)
    assert _own_tags(parent) == {**_own_tags(ref_parent), "estimator_name": cls.__name__,
                                 "estimator_class": f"{cls.__module__}.{cls.__qualname__}"}
    assert parent.data.tags["mlflow.autologging"] == ref_parent.data.tags["mlflow.autologging"]
    assert _digests(parent) == _digests(ref_parent)

    assert len(children) == len(ref_children)
    assert {c.data.tags[PARENT] for c in children} <= {parent.info.run_id}

    def key(run):
        return json.dumps(run.data.params, sort_keys=True)

    for child, ref_child in zip(sorted(children, key=key), sorted(ref_children, key=key)):
        assert child.data.params == ref_child.data.params
        assert _untimed(child.data.metrics) == _untimed(ref_child.data.metrics)
        assert set(child.data.metrics) == set(ref_child.data.metrics)
        assert _own_tags(child) == _own_tags(ref_child)


@pytest.mark.parametrize("kind", sorted(SEARCHES))
@pytest.mark.parametrize("backend", ["sequential", "loky", "dask", "auto"])
def test_search_is_logged_as_sklearns_search(autolog, kind, backend, request):
    """One run (and its children), as sklearn's: "auto" probes a fit first, in-process
    engines fit every candidate here and the refit is made here; none of them logs."""
    client = request.getfixturevalue("client") if backend == "dask" else None
    make_ref, make = SEARCHES[kind]
    ref_search = make_ref()
    ref = _fit_logged(autolog, "sklearn", ref_search)
    search = make(backend=backend, client=client)
    ours = _fit_logged(autolog, "distsk", search)
    assert_logged_alike(ours, ref, search, ref_search)
    assert len(ref[1]) == (5 if kind in ("grid", "random") else 0)
    assert type(search) is make().__class__  # its own class again


def test_resumed_search_logs_one_run_with_its_children(autolog, tmp_path):
    """A fit resuming from a checkpoint logs one run and a child per candidate, as an
    uninterrupted fit does: results read back are not logged a second time."""
    ckpt = str(tmp_path / "search.sqlite")
    grid = {"C": C6["C"][:3]}
    first = _fit_logged(autolog, "first", DistributedSearchCV(
        LogisticRegression(), grid, cv=3, backend="sequential", checkpoint=ckpt))
    search = DistributedSearchCV(LogisticRegression(), C6, cv=3, backend="sequential",
                                 checkpoint=ckpt)
    resumed = _fit_logged(autolog, "resumed", search)
    assert search.n_fits_resumed_ == 9 and search.n_fits_performed_ == 9
    assert (len(first[0]), len(first[1])) == (1, 3)
    ref_search = SEARCHES["grid"][0]()
    assert_logged_alike(resumed, _fit_logged(autolog, "sklearn", ref_search), search,
                        ref_search)


def test_fit_inside_users_run_logs_there(autolog):
    """With the user's run active, the search logs into it, as sklearn's does."""
    experiment = mlflow.set_experiment("user")
    with mlflow.start_run() as run:
        DistributedSearchCV(LogisticRegression(), C4, cv=3, backend="sequential").fit(X, y)
    runs = autolog.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs if PARENT not in r.data.tags] == [run.info.run_id]
    assert autolog.get_run(run.info.run_id).data.params["backend"] == "sequential"
    assert sum(PARENT in r.data.tags for r in runs) == 4


def test_metrics_after_fit_are_logged_as_sklearns(autolog):
    """Post-training metrics (a metric of the search's predictions, its score) go to the
    search's run under the names sklearn's search gets (the score's names its class)."""
    from sklearn import metrics

    logged = {}
    for name, search in [("GridSearchCV", GridSearchCV(LogisticRegression(), C4, cv=3)),
                         ("DistributedSearchCV", DistributedSearchCV(
                             LogisticRegression(), C4, cv=3, backend="sequential"))]:
        experiment = mlflow.set_experiment(name)
        search.fit(X, y)
        X_test, y_test = X[:40], y[:40]
        metrics.accuracy_score(y_test, search.predict(X_test))
        search.score(X_test, y_test)
        (run,) = [r for r in autolog.search_runs([experiment.experiment_id])
                  if PARENT not in r.data.tags]
        logged[name] = {k.replace(name, "<class>"): v for k, v in run.data.metrics.items()
                        if "X_test" in k}
    assert logged["DistributedSearchCV"] == logged["GridSearchCV"]
    assert sorted(logged["GridSearchCV"]) == ["<class>_score_X_test", "accuracy_score_X_test"]


def test_logged_model_is_the_search(autolog):
    """With models logged, the run's model is the fitted search of its own class."""
    mlflow.sklearn.autolog(silent=True)  # log_models=True
    experiment = mlflow.set_experiment("models")
    search = DistributedSearchCV(LogisticRegression(), C4, cv=3, backend="sequential")
    search.fit(X, y)
    models = mlflow.search_logged_models(experiment_ids=[experiment.experiment_id],
                                         output_format="list")
    assert sorted(m.name for m in models) == ["best_estimator", "model"]
    (model,) = [m for m in models if m.name == "model"]
    loaded = mlflow.sklearn.load_model(model.model_uri)
    assert type(loaded) is DistributedSearchCV and loaded.best_params_ == search.best_params_
    np.testing.assert_array_equal(loaded.predict(X), search.predict(X))
    assert type(pickle.loads(pickle.dumps(search))) is DistributedSearchCV


def test_nothing_is_logged_with_autolog_off(autolog):
    """Disabled again, MLflow's patches are gone (distsk's too) and a search logs no run."""
    from distsk._compat import mlflow_sklearn_patch

    DistributedSearchCV(LogisticRegression(), C4, cv=3, backend="sequential").fit(X, y)
    assert callable(mlflow_sklearn_patch("fit")) and "score" in DistributedSearchCV.__dict__
    mlflow.sklearn.autolog(disable=True)
    assert mlflow_sklearn_patch("fit") is None and "score" not in DistributedSearchCV.__dict__
    parents, children = _fit_logged(autolog, "off", DistributedSearchCV(
        LogisticRegression(), C4, cv=3, backend="sequential"))
    assert parents == children == []
