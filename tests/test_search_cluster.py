"""How DistributedSearchCV uses a real cluster: data sent once, inner parallelism pinned,
and a worker process killed mid-search (SIGKILL) does not change the result."""

import os
import signal
import threading
import time

import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from distsk import DistributedSearchCV

from ._search_helpers import assert_same_search

X, y = make_classification(n_samples=600, n_features=5, random_state=0)


def _scheduler_keys(client):
    """Distinct task keys the scheduler has seen recently, from its transition log."""

    def keys(dask_scheduler):
        return sorted({str(t[0]) for t in dask_scheduler.transition_log})

    return client.run_on_scheduler(keys)


def _new_keys(client, before):
    return [k for k in _scheduler_keys(client) if k not in before]


def _received_since(client, t0):
    """(worker, key) pairs of data each worker received by scatter/replication since t0."""

    def received(dask_worker, t0=t0):
        return [str(e[0]) for e in dask_worker.state.log
                if len(e) > 2 and e[1] == "receive-from-scatter" and e[-1] >= t0]

    return [(w, k) for w, keys in client.run(received).items() for k in keys]


def test_data_is_scattered_once_per_search_not_per_task(client):
    t0 = time.time()
    grid = {"C": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]}
    DistributedSearchCV(LogisticRegression(), grid, cv=3, backend="dask", client=client).fit(X, y)
    received = _received_since(client, t0)
    # X, y and each fold's train and test indices: 2 + 3 * 2 arrays for 6 x 3 = 18 fits,
    # each received once by each of the 2 workers.
    assert len(set(k for _, k in received)) == 8, received
    assert len(received) == len(set(received)) == 16


def test_a_grown_forest_travels_in_its_task_not_array_by_array(client):
    # Halving over n_estimators grows each survivor's forest: the forest of the round
    # before travels inside the task. Its tree arrays (a few kB each) were scattered one
    # by one, a round trip each: halving-trees on a cluster took 1.37x sklearn's time.
    from distsk import DistributedHalvingGridSearchCV

    t0 = time.time()
    search = DistributedHalvingGridSearchCV(
        RandomForestClassifier(random_state=0), {"max_depth": [2, 4, 8]}, cv=3,
        resource="n_estimators", max_resources=27, min_resources=9, factor=3,
        random_state=0, backend="dask", client=client).fit(X, y)
    assert search.n_fits_grown_ > 0
    keys = {k for _, k in _received_since(client, t0)}
    # X, y and each round's fold indices (train, test), nothing inside an estimator.
    assert len(keys) <= 2 + 2 * 3 * search.n_iterations_, keys


def test_inner_parallelism_makes_no_extra_tasks(client):
    before = set(_scheduler_keys(client))
    forest = RandomForestClassifier(n_estimators=10, n_jobs=-1, random_state=0)
    search = DistributedSearchCV(forest, {"max_depth": [2, 4]}, cv=3, backend="dask",
                                 client=client).fit(X, y)
    tasks = [k for k in _new_keys(client, before) if not k.startswith("ndarray-")]
    # Only distsk's batches ran: the forests' per-tree joblib jobs stayed inside them
    # (6 fits, and the refit when it ran ahead on a slot left idle at the end). A unit out
    # too long on a busy machine is run a second time on an idle slot: that copy
    # (COPY_SUFFIX) is one of the same batches, not a task of the forest's.
    from distsk._units.worker import COPY_SUFFIX

    copies = {k for k in tasks if k.endswith(COPY_SUFFIX)}
    tasks = [k for k in tasks if k not in copies]
    assert tasks and all(k.startswith("distsk-batch") for k in tasks), tasks
    assert {k.removesuffix(COPY_SUFFIX) for k in copies} <= set(tasks), (copies, tasks)
    assert len(tasks) <= 6 + search._refit_ran_ahead
    assert_same_search(search, GridSearchCV(forest, {"max_depth": [2, 4]}, cv=3).fit(X, y))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_search_survives_a_killed_worker(cli_client):
    forest = RandomForestClassifier(n_estimators=40, random_state=0)
    grid = {"max_depth": [2, 3, 4, 5, None], "min_samples_leaf": [1, 2, 3, 4]}
    ref = GridSearchCV(forest, grid, cv=3).fit(X, y)

    pids = cli_client.run(os.getpid)
    victim = sorted(pids.items())[0][1]
    search = DistributedSearchCV(forest, grid, cv=3, backend="dask",
                                 client=cli_client.scheduler.address)
    errors = []

    def run():
        try:
            search.fit(X, y)
        except BaseException as exc:  # reported below in the test thread
            import traceback

            traceback.print_exc()
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once fits are under way on the workers
        processing = cli_client.processing()
        if any(processing.values()):
            break
        time.sleep(0.02)
    time.sleep(0.3)
    assert thread.is_alive(), "the search finished before the worker could be killed"
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=240)
    assert not thread.is_alive()
    assert not errors, errors
    assert_same_search(search, ref)
    # The nanny restarts the killed worker; the cluster is whole again for later tests.
    cli_client.wait_for_workers(2, timeout=60)
    assert victim not in cli_client.run(os.getpid).values()

