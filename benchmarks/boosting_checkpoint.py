"""What the checkpoints of a distributed boosting cost (#23 section 2).

``python benchmarks/boosting_checkpoint.py [--reps 3] [--rounds 300] [--backends ...]``

On a LocalCluster of 3 worker processes x 1 thread, an ``XGBClassifier(n_estimators=300,
max_depth=6)`` on 60,000 x 10 float64 rows (dask array, 12 blocks) is fitted through both
distributed engines, with checkpoints (distsk's rule for k) and without
(``CHECKPOINT_EVERY = 0``), alternately, ``--reps`` times each; prints the medians, the
overhead (median with / median without - 1) and the k the rule chose. The fit is timed
from the client (``DistributedEstimator.fit``), data generated lazily by ``da.random``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--backends", default="xgboost-external-memory,xgboost")
    args = parser.parse_args()

    import dask.array as da
    import xgboost
    from distributed import Client, LocalCluster

    from distsk import DistributedEstimator
    from distsk._engines import xgboost as dask_engine
    from distsk._engines import xgboost_extmem

    rng = da.random.RandomState(0)
    X = rng.normal(size=(60_000, 10), chunks=(5_000, 10))
    y = ((X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3]) > 0).astype("int64")
    params = dict(n_estimators=args.rounds, max_depth=6, learning_rate=0.1, random_state=0)
    modules = {"xgboost-external-memory": xgboost_extmem, "xgboost": dask_engine}
    modules = {b: modules[b] for b in args.backends.split(",")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalCluster(n_workers=3, threads_per_worker=1, processes=True,
                          host="127.0.0.1", dashboard_address=None,
                          worker_dashboard_address=None) as cluster, \
                Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(3, timeout=60)
            for backend, module in modules.items():
                times: dict = {"with": [], "without": []}
                ks = []
                DistributedEstimator(xgboost.XGBClassifier(**dict(params, n_estimators=5)),
                                     backend=backend, client=client).fit(X, y)  # warm
                for _ in range(args.reps):
                    for label, every in (("without", 0), ("with", None)):
                        module.CHECKPOINT_EVERY = every
                        t0 = time.perf_counter()
                        est = DistributedEstimator(xgboost.XGBClassifier(**params),
                                                   backend=backend, client=client).fit(X, y)
                        times[label].append(time.perf_counter() - t0)
                        assert est.estimator_.get_booster().num_boosted_rounds() == args.rounds
                        if every is None:
                            ks.append(est.estimator_.checkpoint_every_)
                module.CHECKPOINT_EVERY = None
                with_, without = (statistics.median(times[k]) for k in ("with", "without"))
                print(f"{backend}: {args.rounds} rounds, median of {args.reps}: "
                      f"with checkpoints {with_:.2f} s {sorted(round(t, 2) for t in times['with'])}"
                      f", without {without:.2f} s "
                      f"{sorted(round(t, 2) for t in times['without'])}; overhead "
                      f"{100 * (with_ / without - 1):+.1f}%; k chosen {ks}", flush=True)


if __name__ == "__main__":
    main()
