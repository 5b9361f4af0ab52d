"""The cost model for dask input over the gather limit (distsk/_decide/cost_model.py ``predict_large``):
every engine that can take the estimator is predicted (gathering, dask-ml, xgboost.dask,
xgboost's external memory), a plan whose predicted peak is over the memory there is not
chosen and the reason says so, and a real fit records its actual time beside the
prediction. Fits run on the session's LocalCluster (tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, SGDClassifier

from distsk import DistributedEstimator, explain
from distsk._decide.cost_model import Costs
from distsk._decide.planning import plan_fit
from distsk._decide.profile import ComputeProfile, InputProfile, profile_compute

da = pytest.importorskip("dask.array", reason="needs the distsk[dask] extra")
pytest.importorskip("dask_ml", reason="needs the distsk[dask-ml] extra")

pytestmark = pytest.mark.timeout(120)

GB = 2**30
CLUSTER = ComputeProfile(2, 16 * GB, "tcp://10.0.0.5:8786", n_workers=2, worker_threads=2,
                         worker_memory_bytes=8 * GB)


def _lazy(nbytes, features=20):
    return InputProfile("dask-array", (nbytes // (8 * features), features), nbytes)


def _per_worker(client) -> int:
    comp = profile_compute(client)
    return comp.worker_memory_bytes // comp.n_workers


def _data(rows=4000, features=4, chunks=1000):
    rng = da.random.RandomState(0)
    X = rng.normal(0.5, 1.0, size=(rows, features), chunks=(chunks, features))
    y = (X[:, 0] - X[:, 1] + 0.2 * rng.normal(size=rows, chunks=chunks) > 0).astype(int)
    return X, y


# --------------------------------------------------------------- the decision, pure
def test_gathering_is_predicted_but_never_chosen_over_the_gather_limit():
    p = plan_fit(LogisticRegression(), _lazy(16 * GB), CLUSTER, max_gather_bytes=4 * GB)
    by = {q.engine: q for q in p.predictions}
    assert p.executor == "dask-ml" and set(by) == {"sequential", "dask-ml"}
    gather = by["sequential"]
    assert not gather.fits_memory and gather.room_bytes == 4 * GB
    assert "to gather 16.00 GiB" in gather.detail and "gather limit is 4.00 GiB" in gather.detail
    assert "excluded: predicted peak 32.00 GiB over the 4.00 GiB there" in p.reason
    assert "the only engine whose predicted peak memory fits" in p.reason
    # The solver rule's choice is what is predicted: Newton's few passes.
    assert "Newton: 6 passes" in by["dask-ml"].detail and by["dask-ml"].fits_memory


def test_newton_is_predicted_faster_than_lbfgs_on_the_same_data():
    newton = plan_fit(LogisticRegression(), _lazy(GB), CLUSTER, max_gather_bytes=0)
    wide = plan_fit(LogisticRegression(), _lazy(GB, features=2_000), CLUSTER,
                    max_gather_bytes=0)  # > 1,000 features: L-BFGS
    assert "Newton" in newton.predictions[-1].detail
    assert "L-BFGS: 30 passes" in wide.predictions[-1].detail
    assert newton.predicted_seconds < wide.predicted_seconds


def test_incremental_is_predicted_as_one_pass_block_by_block():
    p = plan_fit(SGDClassifier(), _lazy(GB), CLUSTER, max_gather_bytes=0)
    assert (p.executor, p.strategy) == ("dask-ml", "incremental")
    assert "one at a time" in p.predictions[-1].detail and p.predicted_seconds > 0


def test_xgboost_dask_is_excluded_when_its_peak_is_over_a_workers_memory():
    xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
    # 2 x 2 GB = 4 GB per worker: xgboost.dask's share held 2.2 times over does not fit;
    # external memory keeps 0.31 of it.
    p = plan_fit(xgboost.XGBRegressor(), _lazy(4 * GB), CLUSTER, max_gather_bytes=0)
    by = {q.engine: q for q in p.predictions}
    assert (p.executor, p.strategy) == ("xgboost-external-memory", "external-memory")
    assert not by["xgboost"].fits_memory and by["xgboost-external-memory"].fits_memory
    assert "xgboost.dask needs the data in the workers' memory: its predicted peak" in p.reason
    assert "over the 4.00 GiB there" in p.reason
    # Under it, both fit and xgboost.dask (no second pass, less fixed cost) is faster.
    under = plan_fit(xgboost.XGBRegressor(), _lazy(GB), CLUSTER, max_gather_bytes=0)
    assert under.executor == "xgboost" and "expected gain:" in under.reason
    assert all(q.seconds is not None for q in under.predictions)


def test_a_learned_correction_can_move_the_xgboost_choice():
    xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
    slow = Costs(scale=((("fit", "xgboost"), 3.0),))  # xgboost.dask took 3x its prediction
    p = plan_fit(xgboost.XGBRegressor(), _lazy(GB), CLUSTER, max_gather_bytes=0, costs=slow)
    assert p.executor == "xgboost-external-memory"
    assert "predicted fastest: xgboost-external-memory" in p.reason


def test_forced_engines_stay_as_they_are():
    p = plan_fit(LogisticRegression(), _lazy(GB), CLUSTER, max_gather_bytes=0,
                 backend="dask-ml")
    assert p.executor == "dask-ml" and p.predictions == () and "Predicted" not in p.reason


def test_unknown_size_predicts_nothing_and_keeps_the_rule():
    unknown = InputProfile("dask-dataframe", (None, 20), None)
    p = plan_fit(LogisticRegression(), unknown, CLUSTER, max_gather_bytes=0)
    assert p.executor == "dask-ml" and all(q.seconds is None for q in p.predictions)


# ---------------------------------------------------------- real LocalCluster runs
def test_explain_on_a_cluster_excludes_xgboost_dask_over_its_workers_memory(client):
    xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
    per_worker = _per_worker(client)
    # Declared, never computed: each worker's share is twice its memory limit.
    rows = 2 * 2 * per_worker // (8 * 20)
    X = da.zeros((rows, 20), chunks=(rows // 64, 20))
    plan = explain(DistributedEstimator(xgboost.XGBRegressor(), max_gather_bytes=0), X,
                   client=client)
    by = {q.engine: q for q in plan.predictions}
    assert plan.executor == "xgboost-external-memory"
    assert by["xgboost"].room_bytes == per_worker and not by["xgboost"].fits_memory
    assert "excluded: predicted peak" in plan.reason
    table = plan.predictions_table()
    assert "* xgboost-external-memory" in table and "  xgboost " in table
    assert "excluded" in table


def test_dask_ml_fit_records_prediction_and_actual_time_and_matches_sklearn(client):
    X, y = _data()
    est = DistributedEstimator(LogisticRegression(), client=client, max_gather_bytes=0)
    est.fit(X, y)
    plan = est.plan_
    by = {q.engine: q for q in plan.predictions}
    assert (plan.executor, plan.strategy) == ("dask-ml", "translated")
    assert by["dask-ml"].seconds > 0 and by["dask-ml"].actual_seconds > 0
    assert plan.actual_seconds == by["dask-ml"].actual_seconds
    assert by["sequential"].actual_seconds is None and not by["sequential"].fits_memory
    assert "actual" in plan.predictions_table()
    # dask-ml stops closer to the optimum than sklearn at the same tol: compare with it.
    ref = LogisticRegression(tol=1e-10, max_iter=10_000).fit(X.compute(), y.compute())
    np.testing.assert_allclose(est.estimator_.coef_, ref.coef_, rtol=1e-3, atol=1e-3)


def test_xgboost_fit_on_a_cluster_chooses_by_prediction_and_records_the_actual_time(client):
    xgboost = pytest.importorskip("xgboost", reason="needs the distsk[xgboost] extra")
    X, y = _data(rows=2000, chunks=500)
    y = y.astype(float)
    est = DistributedEstimator(xgboost.XGBRegressor(n_estimators=5, max_depth=2),
                               client=client, max_gather_bytes=0).fit(X, y)
    plan = est.plan_
    by = {q.engine: q for q in plan.predictions}
    # The workers hold 16 kB easily: xgboost.dask, predicted faster than external memory.
    assert plan.executor == "xgboost"
    assert by["xgboost"].seconds < by["xgboost-external-memory"].seconds
    assert "expected gain:" in plan.reason
    assert by["xgboost"].actual_seconds > 0 and plan.actual_seconds > 0
    assert isinstance(est.estimator_, xgboost.XGBRegressor)
