"""xgboost beyond the workers' memory: external-memory training on every worker (#12 part 3).

One pinned task per worker builds an ``ExtMemQuantileDMatrix`` over its row blocks,
computed one at a time from the dask graph, and trains in xgboost's collective. The
benchmark ``xgboost-larger-than-memory`` measures the case xgboost.dask cannot hold.
"""

from __future__ import annotations

import numpy as np
import pytest

xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
da = pytest.importorskip("dask.array", reason="needs the distsk[dask] extra")

from distsk import DistributedEstimator, NoFaithfulTranslationError  # noqa: E402
from distsk._decide.planning import plan_fit  # noqa: E402
from distsk._decide.profile import ComputeProfile, InputProfile  # noqa: E402
from distsk.exceptions import ClusterUnavailableError  # noqa: E402

GB = 1 << 30


def _cluster(memory):
    return ComputeProfile(local_cores=2, local_available_bytes=GB, client_address="tcp://x:1",
                          n_workers=2, worker_threads=2, worker_memory_bytes=memory)


def _lazy(nbytes):
    prof = InputProfile("dask-array", (nbytes // 160, 20), nbytes)
    assert prof.lazy
    return prof


# ------------------------------------------------------------------------ planning
@pytest.mark.timeout(30)
def test_plan_trains_through_external_memory_when_workers_cannot_hold_the_data():
    over = plan_fit(xgboost.XGBRegressor(), _lazy(2 * GB), _cluster(GB), max_gather_bytes=0)
    assert (over.executor, over.strategy) == ("xgboost-external-memory", "external-memory")
    assert "external memory" in over.reason and "xgboost.dask needs" in over.reason
    under = plan_fit(xgboost.XGBRegressor(), _lazy(GB // 4), _cluster(GB), max_gather_bytes=0)
    assert under.executor == "xgboost"


@pytest.mark.timeout(30)
def test_backend_names_the_engine_and_refuses_other_models():
    from sklearn.linear_model import Ridge

    forced = plan_fit(xgboost.XGBClassifier(), _lazy(GB // 100), _cluster(GB),
                      backend="xgboost-external-memory", max_gather_bytes=0)
    assert forced.executor == "xgboost-external-memory" and "as requested" in forced.reason
    with pytest.raises(ValueError, match="trains xgboost models only; got Ridge"):
        plan_fit(Ridge(), _lazy(GB), _cluster(GB), backend="xgboost-external-memory",
                 max_gather_bytes=0)
    no_cluster = ComputeProfile(local_cores=2, local_available_bytes=GB)
    with pytest.raises(ClusterUnavailableError):
        plan_fit(xgboost.XGBRegressor(), _lazy(GB), no_cluster,
                 backend="xgboost-external-memory", max_gather_bytes=0)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("param, value", [
    ("tree_method", "exact"), ("booster", "gblinear"), ("device", "cuda"),
    ("objective", lambda y, p: (p, p)), ("callbacks", []), ("early_stopping_rounds", 3),
])
def test_what_external_memory_cannot_do_is_refused_at_plan_time(param, value):
    model = xgboost.XGBRegressor(**{param: value})
    with pytest.raises(NoFaithfulTranslationError, match=rf"XGBRegressor\({param}="):
        plan_fit(model, _lazy(2 * GB), _cluster(GB), max_gather_bytes=0)


# ------------------------------------------------------------------------ training
def _data(n=6000, classes=None, chunks=500):
    rng = da.random.RandomState(0)
    X = rng.normal(size=(n, 8), chunks=(chunks, 8))
    signal = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3]
    if classes is None:
        return X, signal
    return X, da.digitize(signal, np.linspace(-1.5, 1.5, classes - 1))


def _loss(model, X, y, classifier):
    from sklearn.metrics import log_loss, mean_squared_error

    if classifier:
        return log_loss(y, model.predict_proba(X), labels=np.arange(model.n_classes_))
    return mean_squared_error(y, model.predict(X))


@pytest.fixture(scope="module")
def one_worker():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=30)
        yield client


PARAMS = dict(n_estimators=20, max_depth=4, learning_rate=0.3, random_state=0)
CLASSES = pytest.mark.parametrize("classes", [None, 2, 3], ids=["regressor", "binary", "3-class"])


@pytest.mark.timeout(120)
def test_categorical_columns_are_refused_before_any_cluster_work(one_worker):
    # enable_categorical (xgboost >= 3.1's default) is refused only for data that have
    # categorical columns: categories would have to be encoded alike in every block.
    dd = pytest.importorskip("dask.dataframe", reason="needs the distsk[dask] extra")
    pd = pytest.importorskip("pandas", reason="needs pandas (distsk[dask] extra)")

    frame = pd.DataFrame({"a": np.arange(40.0), "c": pd.Categorical(["x", "y"] * 20)})
    Xd = dd.from_pandas(frame, npartitions=2)
    yd = dd.from_pandas(pd.Series(np.arange(40) % 2), npartitions=2)
    est = DistributedEstimator(xgboost.XGBClassifier(enable_categorical=True, n_estimators=2),
                               client=one_worker, backend="xgboost-external-memory")
    with pytest.raises(NoFaithfulTranslationError, match="enable_categorical=True"):
        est.fit(Xd, yd)


@pytest.mark.timeout(180)
@CLASSES
def test_one_worker_trains_the_plain_models_exact_model(one_worker, classes):
    """On one worker the blocks read one at a time give exactly the model plain xgboost
    fits on the gathered data: same predictions, bit for bit."""
    classifier = classes is not None
    cls = xgboost.XGBClassifier if classifier else xgboost.XGBRegressor
    X, y = _data(classes=classes)
    est = DistributedEstimator(cls(**PARAMS), backend="xgboost-external-memory",
                               client=one_worker).fit(X, y)
    assert type(est.estimator_) is cls
    Xn, yn = X.compute(scheduler="threads"), y.compute(scheduler="threads")
    ref = cls(**PARAMS).fit(Xn, yn)
    if classifier:
        assert est.estimator_.n_classes_ == classes
        np.testing.assert_array_equal(est.estimator_.classes_, ref.classes_)
        np.testing.assert_array_equal(est.estimator_.predict_proba(Xn), ref.predict_proba(Xn))
    np.testing.assert_array_equal(est.estimator_.predict(Xn), ref.predict(Xn))


@pytest.mark.timeout(180)
def test_dask_dataframe_gives_the_plain_models_exact_model(one_worker):
    """A dask DataFrame and Series: the plain model's column names and predictions."""
    dd = pytest.importorskip("dask.dataframe", reason="needs the distsk[dask] extra")
    pd = pytest.importorskip("pandas", reason="needs pandas (distsk[dask] extra)")

    X, y = _data(n=3000, classes=3)
    frame = pd.DataFrame(X.compute(scheduler="threads"), columns=[f"f{i}" for i in range(8)])
    labels = pd.Series(y.compute(scheduler="threads"), name="label")
    Xd, yd = dd.from_pandas(frame, npartitions=5), dd.from_pandas(labels, npartitions=5)
    est = DistributedEstimator(xgboost.XGBClassifier(**PARAMS), client=one_worker,
                               backend="xgboost-external-memory").fit(Xd, yd)
    ref = xgboost.XGBClassifier(**PARAMS).fit(frame, labels)
    assert list(est.estimator_.feature_names_in_) == list(ref.feature_names_in_)
    np.testing.assert_array_equal(est.estimator_.predict_proba(frame), ref.predict_proba(frame))


@pytest.mark.timeout(180)
@CLASSES
def test_two_workers_train_one_model_in_xgboosts_collective(client, classes):
    """Two workers, half the blocks each: one model (xgboost's collective), a plain one,
    that learned the signal. Its loss differs from one process's and from xgboost.dask's
    (both depend on which rows each worker sketches: measured in the benchmark)."""
    classifier = classes is not None
    cls = xgboost.XGBClassifier if classifier else xgboost.XGBRegressor
    X, y = _data(classes=classes)
    est = DistributedEstimator(cls(**PARAMS), backend="xgboost-external-memory",
                               client=client).fit(X, y)
    assert est.plan_.executor == "xgboost-external-memory"
    assert type(est.estimator_) is cls
    Xn, yn = X.compute(scheduler="threads"), y.compute(scheduler="threads")
    baseline = cls(n_estimators=1, max_depth=1, learning_rate=1e-9).fit(Xn, yn)
    assert _loss(est.estimator_, Xn, yn, classifier) < 0.7 * _loss(baseline, Xn, yn, classifier)
    if classifier:
        assert est.estimator_.n_classes_ == classes


@pytest.mark.timeout(60)
def test_persisted_blocks_train_on_the_worker_holding_them(active_client):
    """Blocks in a worker's memory go to that worker's share (as xgboost.dask trains
    them); blocks still to compute are left to contiguous shares."""
    from distributed import wait

    from distsk._engines.xgboost_extmem import _row_blocks, _where_held

    X, y = _data(n=4000)
    client = active_client
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    assert _where_held(client, _row_blocks(X, y, None), workers) is None  # lazy
    Xp, yp = client.persist([X, y])
    wait([Xp, yp])
    placed = _where_held(client, _row_blocks(Xp, yp, None), workers)
    held = client.who_has()
    assert placed is not None and sum(len(s) for s in placed.values()) == X.numblocks[0]
    for worker, share in placed.items():
        for x, _, _ in share:
            assert worker in held[x.key]


@pytest.mark.timeout(180)
def test_sample_weight_and_xgboosts_own_errors(client):
    X, y = _data(n=3000)
    w = da.ones(3000, chunks=1000) * 2.0
    unweighted = DistributedEstimator(xgboost.XGBRegressor(n_estimators=5), client=client,
                                      backend="xgboost-external-memory").fit(X, y)
    weighted = DistributedEstimator(xgboost.XGBRegressor(n_estimators=5), client=client,
                                    backend="xgboost-external-memory").fit(X, y, sample_weight=w)
    assert weighted.estimator_.get_booster().num_boosted_rounds() == 5
    # Equal weights: the same trees as no weights (with default min_child_weight scaled).
    assert unweighted.estimator_.get_booster().num_boosted_rounds() == 5
    with pytest.raises(NoFaithfulTranslationError, match="eval_set"):
        DistributedEstimator(xgboost.XGBRegressor(n_estimators=5), client=client,
                             backend="xgboost-external-memory").fit(X, y, eval_set=[(X, y)])
    bad = y.copy()
    bad[0] = np.nan
    plain = xgboost.XGBRegressor(n_estimators=2)
    with pytest.raises(Exception) as want:
        plain.fit(np.zeros((2, 8)), np.array([np.nan, 1.0]))
    with pytest.raises(type(want.value)):
        DistributedEstimator(xgboost.XGBRegressor(n_estimators=2), client=client,
                             backend="xgboost-external-memory").fit(X, bad)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_worker_lost_mid_training_is_a_clear_error_not_a_hang(monkeypatch):
    """A worker killed while the workers read their blocks, with no recovery allowed
    (MAX_RECOVERIES = 0; by default the training resumes on the workers left:
    tests/test_boosting_survives.py): ClusterUnavailableError naming it, well before the
    tests' timeout."""
    import os
    import signal
    import threading
    import time

    from distributed import Client, LocalCluster

    from distsk._engines import xgboost_extmem

    monkeypatch.setattr(xgboost_extmem, "MAX_RECOVERIES", 0)

    def slow(block):
        time.sleep(0.5)
        return block

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=30)
        X, y = _data(n=8000, chunks=250)
        X = X.map_blocks(slow, dtype=X.dtype)  # 32 blocks: ~8 s of reading per pass

        def kill_once_training():
            while not client.run_on_scheduler(_training_started):
                time.sleep(0.2)
            time.sleep(2.0)  # the workers are reading their blocks
            os.kill(pid, signal.SIGKILL)

        pid = sorted(client.run(os.getpid).items())[1][1]
        threading.Thread(target=kill_once_training, daemon=True).start()
        started = time.monotonic()
        with pytest.raises(ClusterUnavailableError, match="left the Dask cluster"):
            DistributedEstimator(xgboost.XGBRegressor(n_estimators=5), client=client,
                                 backend="xgboost-external-memory").fit(X, y)
        assert time.monotonic() - started < 60


def _training_started(dask_scheduler):
    return any(str(k).startswith("distsk-xgboost-extmem-") for k in dask_scheduler.tasks)
