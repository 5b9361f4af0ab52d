"""Distributed boosting that survives a worker (#23 section 2).

Three worker processes train one xgboost model; one worker's process is SIGKILLed in the
middle of the boosting rounds. The fit resumes on the workers left from the last model
checkpoint (kept on the scheduler, sent by rank 0 every k rounds): it completes, the
model has the rounds asked, at most k rounds were redone, the survivors' training
threads have ended, and its predictions are close to those of an uninterrupted fit on the
same data (xgboost's distributed training depends on which rows each worker holds, so a
resumed model is not bit-identical: the tolerance is measured, docs/larger_than_memory.rst).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
da = pytest.importorskip("dask.array", reason="needs the distsk[dask] extra")
pytest.importorskip("distributed", reason="needs the distsk[dask] extra")

from distsk import DistributedEstimator  # noqa: E402

N_ROUNDS = 300
PARAMS = dict(n_estimators=N_ROUNDS, max_depth=6, learning_rate=0.1, random_state=0)
#: Seconds a fit with one worker killed may take beyond the uninterrupted one's.
RECOVERY_BOUND = 60.0
#: Accuracy of the resumed model vs the uninterrupted one, on the training data.
ACCURACY_TOLERANCE = 0.02
#: Share of the rows both models must predict the same class for.
AGREEMENT = 0.95
#: Seconds until no survivor's training thread runs (see _survives).
STOP_BOUND = 45.0


def _data(n=60_000, chunks=5_000):
    rng = da.random.RandomState(0)
    X = rng.normal(size=(n, 10), chunks=(chunks, 10))
    signal_ = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + 0.3 * rng.normal(size=n,
                                                                           chunks=chunks)
    return X, (signal_ > 0).astype("int64")


@pytest.fixture
def three_workers():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(3, timeout=60)
        yield client


def _rounds(client) -> int:
    """The most rounds a distsk training on the workers has reached."""
    from distsk._engines.xgboost import _rounds_on_worker

    found = client.run(_rounds_on_worker, on_error="ignore")
    return max((r for r in found.values() if isinstance(r, int)), default=0)


def _kill_at(client, pid, rounds, log, timeout=120):
    """A thread: SIGKILL ``pid`` once rank 0 reports ``rounds`` rounds."""
    def run():
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reached = _rounds(client)
            if reached >= rounds:
                log["killed_at_round"] = reached
                log["killed_at"] = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _running(client) -> dict:
    from distsk._engines.xgboost import _running_on_worker

    return {w: r for w, r in client.run(_running_on_worker, on_error="ignore").items()
            if isinstance(r, list) and r}


def _survives(client, backend):
    X, y = _data()
    Xn, yn = X.compute(scheduler="threads"), y.compute(scheduler="threads")
    cls = xgboost.XGBClassifier
    t0 = time.monotonic()
    ref = DistributedEstimator(cls(**PARAMS), backend=backend, client=client).fit(X, y)
    clean_s = time.monotonic() - t0
    assert ref.estimator_.worker_losses_ == [] and ref.estimator_.n_rounds_redone_ == 0
    k_clean = ref.estimator_.checkpoint_every_

    # Kill rank 0 (the worker sending the checkpoints: the first by name) at ~40%.
    info = client.scheduler_info(n_workers=-1)["workers"]
    first = sorted(info, key=lambda a: (str(info[a].get("name", a)), a))[0]
    pid = client.run(os.getpid, workers=[first])[first]
    log: dict = {}
    killer = _kill_at(client, pid, int(0.4 * N_ROUNDS), log)
    t0 = time.monotonic()
    with pytest.warns(RuntimeWarning, match="resumed on the workers left"):
        est = DistributedEstimator(cls(**PARAMS), backend=backend, client=client).fit(X, y)
    took = time.monotonic() - t0
    killer.join(5)
    assert "killed_at" in log, "the worker was not killed during the training"
    model = est.estimator_
    [loss] = model.worker_losses_
    assert first in loss["lost"]
    assert model.get_booster().num_boosted_rounds() == N_ROUNDS
    assert 0 < loss["resumed_from"] <= log["killed_at_round"]
    assert loss["redone"] == model.n_rounds_redone_ <= loss["k"]
    assert took < clean_s + RECOVERY_BOUND, (took, clean_s)
    # The survivors' training threads ended: within a second in most runs here, but
    # 30.2 s in the fresh-clone CI run of 2026-12-07 (the external-memory survivors
    # noticed the loss only at xgboost's collective timeout); the bound is that.
    assert loss["stop_seconds"] < STOP_BOUND
    assert _running(client) == {}
    # Tolerance to the uninterrupted fit, on the same data.
    pred, pred_ref = model.predict(Xn), ref.estimator_.predict(Xn)
    acc, acc_ref = (pred == yn).mean(), (pred_ref == yn).mean()
    agree = (pred == pred_ref).mean()
    print(f"\n{backend}: clean {clean_s:.1f} s (k={k_clean}), with a kill {took:.1f} s; "
          f"loss {loss}; accuracy {acc:.4f} vs {acc_ref:.4f}, agreement {agree:.4f}")
    assert abs(acc - acc_ref) <= ACCURACY_TOLERANCE
    assert agree >= AGREEMENT


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_external_memory_training_survives_a_killed_worker(three_workers):
    _survives(three_workers, "xgboost-external-memory")


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.xfail(run=False, reason=(
    "defect (#23 s2, open): on the xgboost.dask path the survivors' collective ring "
    "can block after a kill (about 1 kill in 4 here) and the resumed training then "
    "hangs: the fresh-clone CI run of 2026-12-07 hit the 400 s timeout. The 5 s restart "
    "of a blocked survivor (85b094c) recovered the one blocked run seen since; not run "
    "in CI until that is shown reliable: run it with --runxfail."))
def test_xgboost_dask_training_survives_a_killed_worker(three_workers):
    _survives(three_workers, "xgboost")
