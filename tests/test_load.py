"""Load: a 2,000-candidate sampled search on a 2-worker CLI cluster keeps the scheduler's
and the client's memory and the scheduler's task count bounded; 20 searches from threads
of one client finish with their own, correct results.

The figures measured are printed (run with ``-s``) and quoted in docs/security.rst's
"Load" section and issue #6's closing note.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
from distributed import Client
from scipy.stats import randint
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.tree import DecisionTreeClassifier

from distsk import DistributedEstimator, DistributedSearchCV

from ._plugins import TaskHighWater
from ._search_helpers import assert_same_search
from .conftest import CLICluster

MB = 2**20


class PeakRSS:
    """Samples a process's resident memory every 50 ms; ``peak - start`` is its growth."""

    def __init__(self, read):
        self.read = read
        self.start = self.peak = read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.read())
            except Exception:  # the sampled scheduler is busy: the next sample counts
                pass

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        self.peak = max(self.peak, self.read())
        return (self.peak - self.start) / MB


@pytest.fixture
def load_cluster(tmp_path):
    """A CLI cluster of its own: the scheduler's memory is this test's alone."""
    cluster = CLICluster(tmp_path).wait_for_workers(2)
    yield cluster
    cluster.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_2000_candidates_memory_and_tasks_stay_bounded(load_cluster):
    X, y = make_classification(n_samples=200, n_features=5, random_state=0)
    distributions = {"max_depth": randint(1, 30), "min_samples_leaf": randint(1, 30),
                     "criterion": ["gini", "entropy", "log_loss"]}
    kw = dict(param_distributions=distributions, n_iter=2000, cv=2, random_state=0,
              refit=False)
    tree = DecisionTreeClassifier(random_state=0)
    with Client(load_cluster.address, set_as_default=False, timeout=30) as client:
        client.register_plugin(TaskHighWater())
        scheduler_pid = client.run_on_scheduler(os.getpid)
        scheduler = psutil.Process(scheduler_pid)
        me = psutil.Process()
        # Warm both sides (imports, connections) so growth is the search's, not start-up's.
        DistributedSearchCV(tree, **{**kw, "n_iter": 10}, backend="dask", client=client).fit(X, y)
        sched_mem = PeakRSS(lambda: scheduler.memory_info().rss)
        client_mem = PeakRSS(lambda: me.memory_info().rss)
        started = time.perf_counter()
        search = DistributedSearchCV(tree, **kw, backend="dask", client=client).fit(X, y)
        seconds = time.perf_counter() - started
        scheduler_growth, client_growth = sched_mem.stop(), client_mem.stop()
        high = TaskHighWater.read(client)
        # DistributedEstimator's own tasks too: one fit, and a forest split over workers.
        single = DistributedEstimator(LogisticRegression(), backend="dask", client=client)
        forest = DistributedEstimator(RandomForestClassifier(n_estimators=4, random_state=0),
                                      backend="dask", client=client)
        single.fit(X, y), forest.fit(X, y)
        scheduler_imported_sklearn = client.run_on_scheduler(
            lambda: __import__("sys").modules.get("sklearn") is not None)
        slots = sum(client.nthreads().values())
    ref = RandomizedSearchCV(tree, **kw).fit(X, y)
    assert_same_search(search, ref)
    print(f"\n[load] 2000 candidates x 2 folds on 2 workers: {seconds:.1f} s; scheduler "
          f"memory +{scheduler_growth:.1f} MB, client +{client_growth:.1f} MB; at most "
          f"{high['max_tasks']} tasks in the scheduler, {high['max_batches']} of them "
          f"distsk batches; fits performed {search.n_fits_performed_}")
    assert scheduler_growth < 200, scheduler_growth
    assert client_growth < 200, client_growth
    # Batches in flight are bounded by the engine (2 per worker thread); the rest of the
    # scheduler's tasks are the scattered data (X, y, each fold's train and test indices).
    # (A finished batch's key lingers until this client releases its future: + slots.)
    assert high["max_batches"] <= 3 * slots
    assert high["max_tasks"] <= 3 * slots + 2 + 2 * 2
    # Work travels as bytes: the scheduler passed it on without importing sklearn.
    assert not scheduler_imported_sklearn
    assert forest.plan_.strategy == "split-forest", forest.plan_
    assert (forest.predict_proba(X) == RandomForestClassifier(
        n_estimators=4, random_state=0).fit(X, y).predict_proba(X)).all()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_20_concurrent_searches_from_threads_of_one_client(cli_client):
    def job(i):
        X, y = make_classification(n_samples=120 + 10 * i, n_features=4, random_state=i)
        grid = {"C": [0.01 * (i + 1), 0.1 * (i + 1), 1.0 + i]}
        search = DistributedSearchCV(LogisticRegression(), grid, cv=3, backend="dask",
                                     client=cli_client)
        return search.fit(X, y), GridSearchCV(LogisticRegression(), grid, cv=3).fit(X, y)

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        pairs = list(pool.map(job, range(20), timeout=300))
    seconds = time.perf_counter() - started
    for ours, ref in pairs:
        assert ours.plan_.executor == "dask"
        assert_same_search(ours, ref)
    # Independent: each search has its own candidates and data, so its own best model.
    assert len({tuple(np.round(o.best_estimator_.coef_.ravel(), 12)) for o, _ in pairs}) == 20
    print(f"\n[load] 20 concurrent searches from threads: {seconds:.1f} s")
