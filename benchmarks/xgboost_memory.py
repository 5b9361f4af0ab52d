"""Scenario ``xgboost-larger-than-memory`` (#12 part 3): XGBoost on dask data.

Registered in ``scenarios.SCENARIOS`` on import (``run.py`` imports this module).

- **over the workers' memory**: a lazily generated dask array larger than the workers'
  total memory limit (two workers of ``WORKER_LIMIT``), trained by xgboost.dask
  (``DaskXGBRegressor``) and by ``distsk auto`` (no backend forced: its cost model
  chooses the ``xgboost-external-memory`` engine), each on a fresh cluster so that the
  workers' peak RSS (``ru_maxrss``) is its own. Time is the fit only (cluster start-up
  left out); xgboost.dask is stopped after ``GIVE_UP`` s.
- **both can hold it**: a smaller array on the run's shared cluster; the training loss
  (MSE on the training rows) of distsk's engine (forced) and of ``distsk auto`` beside
  xgboost.dask's (a fit on gathered data is compared with plain xgboost's).
"""

from __future__ import annotations

import threading
import time

import numpy as np
from harness import Contender, Context, Timed, measure
from scenarios import scenario

WORKER_LIMIT = "700MB"
GIVE_UP = 240.0
PARAMS = dict(n_estimators=20, max_depth=6, learning_rate=0.3, random_state=0)


def _data(rows, cols=20, chunk_rows=100_000):
    import dask.array as da

    X = da.random.RandomState(0).normal(size=(rows, cols), chunks=(chunk_rows, cols))
    y = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] * X[:, 3] + 0.1 * X[:, 4] ** 2
    return X, y


def _peak_rss(client) -> int:
    def peak():
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    return max(client.run(peak).values())


def _bounded(func, seconds):
    """``func()`` in a thread; TimeoutError if it has not returned after ``seconds``."""
    box: dict = {}

    def run():
        try:
            box["out"] = func()
        except BaseException as exc:  # handed to the caller
            box["exc"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no result after {seconds:.0f} s (stopped)")
    if "exc" in box:
        raise box["exc"]
    return box["out"]


class _Fitted:
    """A contender's result: the plain model, its plan if any, the workers' peak RSS."""

    def __init__(self, model, plan=None, peak=None):
        self.model, self.plan_, self.peak = model, plan, peak


def _on_fresh_cluster(fit, peaks, name):
    from distributed import Client, LocalCluster

    def run():
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          host="127.0.0.1", memory_limit=WORKER_LIMIT,
                          dashboard_address=None, worker_dashboard_address=None) as cluster, \
                Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
            started = time.perf_counter()
            try:
                out = _bounded(lambda: fit(client), GIVE_UP)
            finally:
                seconds = time.perf_counter() - started
                try:
                    peaks[name] = _peak_rss(client)
                except Exception:  # workers gone
                    peaks[name] = None
            out.peak = peaks[name]
            return Timed(out, seconds)

    return run


def _distsk(client):
    import xgboost

    from distsk import DistributedEstimator

    X, y = _data(*_SIZE["over"])
    est = DistributedEstimator(xgboost.XGBRegressor(**PARAMS), client=client,
                               max_gather_bytes=0).fit(X, y)
    return _Fitted(est.estimator_, est.plan_)


def _xgboost_dask(client):
    from xgboost import dask as dxgb

    X, y = _data(*_SIZE["over"])
    model = dxgb.DaskXGBRegressor(**PARAMS)
    with client.as_current():
        model.fit(X, y)
    return _Fitted(model.get_booster())


_SIZE: dict = {}


def _loss(model, X, y) -> float:
    import xgboost

    booster = model if isinstance(model, xgboost.Booster) else model.get_booster()
    pred = booster.predict(xgboost.DMatrix(X))
    return float(np.mean((pred - y) ** 2))


@scenario("xgboost-larger-than-memory")
def xgboost_larger_than_memory(ctx: Context) -> list[dict]:
    import xgboost
    from xgboost import dask as dxgb

    from distsk import DistributedEstimator

    rows = 600_000 if ctx.smoke else 7_500_000  # 20 float64 columns: 96 MB / 1.2 GB
    _SIZE["over"] = (rows,)
    peaks: dict = {}
    nbytes = rows * 20 * 8
    over = [
        Contender("distsk auto", _on_fresh_cluster(_distsk, peaks, "distsk"),
                  n_fits=1, notes=f"{nbytes / 1e9:.2f} GB generated lazily; 2 workers x "
                  f"{WORKER_LIMIT}; backend='auto', max_gather_bytes=0"),
        Contender("xgboost.dask", _on_fresh_cluster(_xgboost_dask, peaks, "xgboost.dask"),
                  n_fits=1, notes=f"the same data and workers; stopped after {GIVE_UP:.0f} s"),
    ]
    records = measure(ctx, "xgboost-larger-than-memory (over the workers' memory)", over,
                      baseline="distsk auto")
    for r in records:
        key = "distsk" if r["contender"].startswith("distsk") else "xgboost.dask"
        peak = peaks.get(key)
        r["peak_worker_rss_bytes"] = peak
        if peak is not None:
            r["notes"] += f"; peak worker RSS {peak / 1e6:.0f} MB"

    # Both can hold it: the shared cluster, training loss side by side.
    small = 60_000 if ctx.smoke else 600_000
    X, y = _data(small, chunk_rows=50_000)
    X, y = X.persist(), y.persist()
    Xn, yn = X.compute(), y.compute()

    def ours():
        est = DistributedEstimator(xgboost.XGBRegressor(**PARAMS), client=ctx.client,
                                   backend="xgboost-external-memory").fit(X, y)
        return _Fitted(est.estimator_, est.plan_)

    def theirs():
        model = dxgb.DaskXGBRegressor(**PARAMS)
        with ctx.client.as_current():
            model.fit(X, y)
        return _Fitted(model.get_booster())

    def auto():
        est = DistributedEstimator(xgboost.XGBRegressor(**PARAMS), client=ctx.client).fit(X, y)
        return _Fitted(est.estimator_, est.plan_)

    def check(name, result, results):
        if "xgboost.dask" not in results:
            return None, "not compared: xgboost.dask failed"
        mine, ref = _loss(result.model, Xn, yn), _loss(results["xgboost.dask"].model, Xn, yn)
        single = _loss(xgboost.XGBRegressor(**PARAMS).fit(Xn, yn), Xn, yn)
        note = (f"training MSE {mine:.5f} vs xgboost.dask {ref:.5f} (diff {mine - ref:+.2e}); "
                f"one process on the gathered data {single:.5f}")
        # A fit on the gathered data is plain xgboost's: compared with that.
        executor = getattr(getattr(result, "plan_", None), "executor", "")
        if executor in ("sequential", "loky"):
            return abs(mine - single) <= 1e-3, note + " (auto gathered: compared with it)"
        return abs(mine - ref) <= 1e-3, note

    both = [
        Contender("distsk external memory", ours, n_fits=1,
                  notes=f"{small * 160 / 1e6:.0f} MB persisted on the shared cluster"),
        Contender("xgboost.dask", theirs, n_fits=1),
        Contender("distsk auto", auto, n_fits=1, notes="no backend forced"),
    ]
    records += measure(ctx, "xgboost-larger-than-memory (both can hold it)", both,
                       baseline="xgboost.dask", check=check)
    return records
