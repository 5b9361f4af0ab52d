"""The Runner contract (``distsk/_engines/base.py``): a search runs on any runner that
implements ``submit``; the engine calls the other hooks in the documented order; every
runner's units come back as a ``UnitResult``."""

from __future__ import annotations

import pytest
from joblib import parallel_config
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from distsk._decide.planning import plan_search
from distsk._decide.profile import profile_compute, profile_input
from distsk._engines import ENGINES, ExecutionContext, get_executor
from distsk._engines.base import InProcessRunner, Runner, UnitResult
from distsk._search.loop import CollectorBackend, SearchEngine
from tests._search_helpers import assert_same_cv_results

from .counting import logistic_without_joblib

X, y = make_classification(n_samples=60, n_features=4, random_state=0)
GRID = {"C": [0.1, 1.0]}


class OnlySubmit(Runner):
    """The least a runner can be: every other hook is the base class's no-op."""

    def __init__(self):
        self.calls: list = []
        self._here = InProcessRunner()

    def submit(self, kind, items, avoid=None):
        self.calls.append(("submit", len(items)))
        return self._here.submit(kind, items)


class EveryHook(OnlySubmit):
    def prepare(self, items):
        self.calls.append(("prepare", len(items)))

    def flush(self):
        self.calls.append(("flush",))

    def close(self):
        self.calls.append(("close",))


def search_on(runner):
    engine = SearchEngine(runner, share=False)
    with parallel_config(backend=CollectorBackend(engine)):
        search = GridSearchCV(logistic_without_joblib(), GRID, cv=3).fit(X, y)
    engine.close()
    return search


def test_a_runner_must_implement_submit():
    class NoSubmit(Runner):
        pass

    with pytest.raises(TypeError, match="submit"):
        NoSubmit()


@pytest.mark.parametrize("runner_class", [OnlySubmit, EveryHook])
def test_a_search_runs_on_a_runner_with_sklearns_results(runner_class):
    runner = runner_class()
    ours = search_on(runner)
    ref = GridSearchCV(logistic_without_joblib(), GRID, cv=3).fit(X, y)
    assert_same_cv_results(ours.cv_results_, ref.cv_results_)
    assert sum(call[1] for call in runner.calls if call[0] == "submit") == 6


def test_the_engine_calls_the_hooks_in_the_documented_order():
    runner = EveryHook()
    search_on(runner)
    names = [call[0] for call in runner.calls]
    assert names[0] == "prepare" and runner.calls[0] == ("prepare", 6)
    assert names[-2:] == ["flush", "close"]
    assert set(names[1:-2]) == {"submit"}


@pytest.mark.parametrize("executor", ["sequential", "loky", "dask"])
def test_every_search_runner_is_a_runner_and_returns_a_unit_result(executor, request):
    client = request.getfixturevalue("client") if executor == "dask" else None
    plan = plan_search(profile_input(X), profile_compute(client), backend=executor,
                       n_jobs=2, n_fits=6, probe_seconds=0.01)
    runner = get_executor(executor).search_runner(ExecutionContext(plan, client))
    try:
        assert isinstance(runner, Runner)
        engine = SearchEngine(runner, share=False)
        with parallel_config(backend=CollectorBackend(engine)):
            ours = GridSearchCV(logistic_without_joblib(), GRID, cv=3).fit(X, y)
        ref = GridSearchCV(logistic_without_joblib(), GRID, cv=3).fit(X, y)
        assert_same_cv_results(ours.cv_results_, ref.cv_results_)
        # One more unit, through the runner's own route, to see what comes back.
        from sklearn.metrics import check_scoring

        from distsk._compat import _fit_and_score

        item = (_fit_and_score, (LogisticRegression(), X, y),
                {"scorer": check_scoring(LogisticRegression()), "train": list(range(40)),
                 "test": list(range(40, 60)), "verbose": 0, "parameters": {"C": 1.0},
                 "fit_params": None, "score_params": None})
        runner.prepare([item])
        outcome = runner.submit("single", [item]).result(timeout=120)
        assert type(outcome) is UnitResult and outcome.n_fits == 1
        assert isinstance(outcome.results[0]["test_scores"], float)
    finally:
        runner.close()


# ---------------------------------------------------------------- the engine registry
@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e.name)
def test_each_engine_is_what_the_registry_declares(engine):
    import importlib

    from distsk import exceptions
    from distsk._decide.planning import plan_fit
    from distsk._decide.profile import ComputeProfile
    from distsk._engines import Executor

    cls = getattr(importlib.import_module(f"distsk._engines{engine.module}"), engine.cls)
    assert cls.name == engine.name
    # runs_searches: exactly the executors with a search runner of their own.
    assert (cls.search_runner is not Executor.search_runner) == engine.runs_searches
    # needs_cluster: planning a fit on it without a cluster is refused.
    no_cluster = profile_compute(None)
    assert isinstance(no_cluster, ComputeProfile) and not no_cluster.has_cluster
    if engine.needs_cluster:
        with pytest.raises(exceptions.ClusterUnavailableError):
            plan_fit(LogisticRegression(), profile_input(X), no_cluster,
                     backend=engine.name, max_gather_bytes=10**9)
    else:
        assert plan_fit(LogisticRegression(), profile_input(X), no_cluster,
                        backend=engine.name, max_gather_bytes=10**9).executor == engine.name


def test_the_planners_lists_come_from_the_registry():
    import distsk
    from distsk._decide.planning import CLUSTER_BACKENDS, SEARCH_BACKENDS

    assert distsk.BACKENDS == tuple(e.name for e in ENGINES)
    assert SEARCH_BACKENDS == tuple(e.name for e in ENGINES if e.runs_searches)
    assert CLUSTER_BACKENDS == {e.name for e in ENGINES if e.needs_cluster}
