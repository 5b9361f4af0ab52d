"""Many slots and many fits (#10): no limit from joblib's batching or recursion, and the
same cv_results_ as sklearn.

Fits sleep (GIL released, no CPU), so a 2-core machine hosts a cluster of 128 worker
threads whose fits all run at once: what is tested is the orchestration.
"""

from __future__ import annotations

import numpy as np
import pytest
from joblib import parallel_config
from sklearn.model_selection import GridSearchCV

from benchmarks.sleepy import SleepyClassifier
from distsk import DistributedSearchCV
from tests._search_helpers import assert_same_search

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def wide_client():
    """128 slots: 2 worker processes x 64 threads, on loopback."""
    from distributed import Client, LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=64, processes=True, host="127.0.0.1",
        dashboard_address=None, worker_dashboard_address=None,
    ) as cluster, Client(cluster, set_as_default=False, timeout=30) as client:
        client.wait_for_workers(2, timeout=30)
        yield client


def _data():
    rng = np.random.RandomState(0)
    return rng.rand(300, 4), rng.randint(0, 3, 300)


@pytest.mark.slow
def test_5000_fits_on_128_slots_match_sklearn(wide_client):
    X, y = _data()
    grid = {"C": [float(c) for c in range(1, 1001)]}
    ours = DistributedSearchCV(SleepyClassifier(seconds=0.01), grid, cv=5, backend="dask",
                               client=wide_client).fit(X, y)
    assert ours.plan_.n_jobs == 128
    assert ours.n_fits_performed_ == 5000
    # Fits that sleep: sklearn's reference on 128 threads is quick too.
    with parallel_config(backend="threading", n_jobs=128):
        ref = GridSearchCV(SleepyClassifier(seconds=0.01), grid, cv=5).fit(X, y)
    assert_same_search(ours, ref)


@pytest.mark.parametrize("n_candidates", [50, 400])
def test_grids_larger_than_joblib_batches_dispatch_without_recursion(wide_client, n_candidates):
    # joblib cuts dispatch into batches of about n_tasks / (10 x n_jobs); each batch used
    # to add frames to the stack (RecursionError from 50 x 5 fits on 64 slots).
    import sys

    X, y = _data()
    grid = {"C": [float(c) for c in range(1, n_candidates + 1)]}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)  # far below the frames 1,000+ joblib batches would take
    try:
        ours = DistributedSearchCV(SleepyClassifier(seconds=0.0), grid, cv=5,
                                   backend="dask", client=wide_client, pre_dispatch="all")
        ours.fit(X, y)
    finally:
        sys.setrecursionlimit(limit)
    ref = GridSearchCV(SleepyClassifier(seconds=0.0), grid, cv=5).fit(X, y)
    assert_same_search(ours, ref)
