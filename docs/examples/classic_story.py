"""The classic "scikit-learn + joblib + Dask" story, step by step, with distsk.

1. A random forest on every local core.
2. The same forest on a Dask cluster: the very same trees.
3. A grid search on the cluster: the same ``cv_results_`` as GridSearchCV.
4. LogisticRegression on a dask array too large to gather (dask-ml).
5. XGBoost on dask data (xgboost.dask).

Each step prints where distsk ran the work and why (``plan_.reason``), and its time next
to plain scikit-learn's. Run it from the top directory of the distsk clone with::

    .venv/bin/python docs/examples/classic_story.py --small

It starts a two-process Dask cluster listening on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import textwrap
import time

import numpy as np
from distributed import Client, LocalCluster
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from distsk import DistributedEstimator, DistributedSearchCV

SIZES = {
    # n_samples for steps 1-3, trees per forest, n_samples of the dask array (steps 4-5)
    "small": dict(n_samples=2_000, n_estimators=100, n_lazy=2_000, cv=3),
    "large": dict(n_samples=20_000, n_estimators=200, n_lazy=200_000, cv=5),
}


def timed(func):
    """``func()`` and the seconds it took."""
    start = time.perf_counter()
    out = func()
    return out, time.perf_counter() - start


def report(title, plan, t_distsk, t_plain, plain="scikit-learn"):
    print(f"\n== {title}")
    print(f"   plan: {plan.executor} ({plan.strategy})")
    print(textwrap.fill(plan.reason, width=88, initial_indent="   why:  ",
                        subsequent_indent="         "))
    print(f"   time: distsk {t_distsk:.2f} s, plain {plain} {t_plain:.2f} s")


def step1_local_forest(X, y, n_estimators):
    """A forest with n_jobs=-1, no cluster: distsk fits it here with joblib, as sklearn."""
    forest = RandomForestClassifier(n_estimators=n_estimators, n_jobs=-1, random_state=0)
    est, t = timed(lambda: DistributedEstimator(forest).fit(X, y))
    ref, t_ref = timed(lambda: RandomForestClassifier(
        n_estimators=n_estimators, n_jobs=-1, random_state=0).fit(X, y))
    report("1. Random forest, n_jobs=-1, on this machine", est.plan_, t, t_ref)
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    print("   predictions identical to scikit-learn's: yes")
    return est


def step2_cluster_forest(X, y, n_estimators, client, local):
    """The same forest on the cluster: sub-forests on the workers, merged."""
    forest = RandomForestClassifier(n_estimators=n_estimators, n_jobs=-1, random_state=0)
    est, t = timed(
        lambda: DistributedEstimator(forest, backend="dask", client=client).fit(X, y)
    )
    ref, t_ref = timed(lambda: RandomForestClassifier(
        n_estimators=n_estimators, n_jobs=-1, random_state=0).fit(X, y))
    report("2. The same forest on the Dask cluster", est.plan_, t, t_ref)
    np.testing.assert_array_equal(est.predict(X), local.predict(X))
    np.testing.assert_array_equal(est.predict_proba(X), ref.predict_proba(X))
    print(f"   trees: {len(est.estimator_.estimators_)}; predictions and probabilities "
          "identical to the local forest's: yes")


def step3_grid_search(X, y, cv, client):
    """GridSearchCV's candidates x folds as Dask tasks, data sent to each worker once."""
    grid = {"max_depth": [3, None], "n_estimators": [20, 50]}
    search, t = timed(lambda: DistributedSearchCV(
        RandomForestClassifier(random_state=0), grid, cv=cv, backend="dask", client=client,
    ).fit(X, y))
    ref, t_ref = timed(lambda: GridSearchCV(
        RandomForestClassifier(random_state=0), grid, cv=cv, n_jobs=-1).fit(X, y))
    report("3. Grid search on the Dask cluster", search.plan_, t, t_ref)
    ours, theirs = search.cv_results_["mean_test_score"], ref.cv_results_["mean_test_score"]
    np.testing.assert_array_equal(ours, theirs)
    print(f"   mean_test_score: {np.round(ours, 4).tolist()} (GridSearchCV: identical)")
    print(f"   best_params_: {search.best_params_}")


def lazy_data(n_samples):
    """A dask array in four blocks, standing in for data too large for one machine."""
    import dask.array as da

    X, y = make_classification(n_samples=n_samples, n_features=20, random_state=0)
    chunk = max(1, n_samples // 4)
    return da.from_array(X, chunks=(chunk, -1)), da.from_array(y, chunks=chunk)


def step4_lazy_logistic(dX, dy, client):
    """max_gather_bytes=0 forces the larger-than-memory path: dask-ml, blockwise."""
    try:
        import dask_ml  # noqa: F401
    except ImportError:
        print("\n== 4. skipped: dask-ml is not installed (pip install 'distsk[dask-ml]')")
        return
    est, t = timed(lambda: DistributedEstimator(
        LogisticRegression(), max_gather_bytes=0, client=client).fit(dX, dy))
    X, y = dX.compute(), dy.compute()
    ref, t_ref = timed(lambda: LogisticRegression().fit(X, y))
    report("4. LogisticRegression on a dask array (larger-than-memory path)", est.plan_,
           t, t_ref, plain="scikit-learn on the gathered data")
    # On dask input, predict runs blockwise on the cluster and returns a dask array.
    lazy = est.predict(dX)
    agree = float(np.mean(lazy.compute() == ref.predict(X)))
    print(f"   predict(dask array) -> {type(lazy).__module__}.{type(lazy).__name__}; "
          f"same class as scikit-learn on {agree:.1%} of samples")
    # estimator_ is a plain LogisticRegression carrying the coefficients dask-ml found.
    print(f"   estimator_: {type(est.estimator_).__name__}; max |coef_ difference| vs "
          f"scikit-learn: {np.max(np.abs(est.estimator_.coef_ - ref.coef_)):.2e}")


def step5_xgboost(dX, dy, client):
    """XGBoost trains where the dask data lives; estimator_ is a plain XGBClassifier."""
    try:
        import xgboost
    except ImportError:
        print("\n== 5. skipped: xgboost is not installed (pip install 'distsk[xgboost]')")
        return
    params = dict(n_estimators=10, max_depth=3)
    est, t = timed(lambda: DistributedEstimator(
        xgboost.XGBClassifier(**params), max_gather_bytes=0, client=client).fit(dX, dy))
    X, y = dX.compute(), dy.compute()
    ref, t_ref = timed(lambda: xgboost.XGBClassifier(**params).fit(X, y))
    report("5. XGBoost on dask data", est.plan_, t, t_ref, plain="xgboost on the gathered data")
    # estimator_ is a plain XGBClassifier (the booster trained on the cluster); on dask
    # input, predict runs it blockwise and returns a dask array.
    lazy = est.predict(dX)
    print(f"   estimator_: {type(est.estimator_).__module__}."
          f"{type(est.estimator_).__name__}; predict(dask array) -> "
          f"{type(lazy).__module__}.{type(lazy).__name__}")
    print(f"   training accuracy: distsk {np.mean(lazy.compute() == y):.4f}, "
          f"plain xgboost {np.mean(ref.predict(X) == y):.4f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="small data (about 2,000 samples), runs in well under a minute")
    args = parser.parse_args(argv)
    size = SIZES["small" if args.small else "large"]

    X, y = make_classification(n_samples=size["n_samples"], n_features=20, n_informative=8,
                               random_state=0)
    # Step 1 runs before any cluster exists: distsk never starts one by itself.
    local = step1_local_forest(X, y, size["n_estimators"])

    # Two worker processes on this machine, listening on 127.0.0.1 only, the dashboard
    # on a free local port: distributed's own API, as on any cluster.
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
        print(f"\nStarted an embedded Dask cluster at {client.scheduler.address} "
              "(2 worker processes, 127.0.0.1 only)")
        step2_cluster_forest(X, y, size["n_estimators"], client, local)
        step3_grid_search(X, y, size["cv"], client)
        dX, dy = lazy_data(size["n_lazy"])
        step4_lazy_logistic(dX, dy, client)
        step5_xgboost(dX, dy, client)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
