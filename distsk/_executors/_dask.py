"""Cluster engine: in-memory data, fits on Dask workers through futures.

Strategies (chosen by the planner): ``split-forest`` (sub-forests on the workers, merged
into the exact forest a local fit gives), ``joblib-dask`` (the estimator's own joblib
loops on the cluster), ``single-task`` (the whole fit as one task). Searches use
:class:`DaskRunner`, which sends each large argument to every worker once and runs units
of search work as Dask tasks with inner parallelism pinned.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import uuid
import warnings

import numpy as np
from joblib import parallel_config
from sklearn.base import clone

from ..exceptions import ClusterUnavailableError
from ._base import (
    ExecutionContext,
    Executor,
    fit_estimator,
    reemit,
    run_recording,
    run_unit_remote,
    wants_stdout,
)

__all__ = ["DaskExecutor", "DaskRunner"]

#: Arguments larger than this (bytes) are scattered once instead of sent with each task.
SCATTER_MIN_BYTES = 1_000
#: Seconds a single result may take to arrive once its task has finished.
RESULT_TIMEOUT = 60.0
#: Times a batch whose scattered inputs were lost is sent again.
MAX_RESUBMITS = 3
_MAX_INT = np.iinfo(np.int32).max


def _scatter(client, obj):
    """Send ``obj`` to every worker once; the future stands in for it in tasks."""
    if obj is None:
        return None
    # Wrapped in a list: scatter would otherwise split lists and dicts element-wise.
    return client.scatter([obj], broadcast=True, hash=False, timeout=RESULT_TIMEOUT)[0]


# ---------------------------------------------------------------------------- forests
def _fit_subforest(forest, start, stop, X, y, fit_params):
    """Fit trees ``start:stop`` of ``forest`` exactly as a full local fit would make them.

    sklearn's warm start draws and discards one seed per existing tree before seeding the
    new ones, so a forest with ``start`` placeholder trees grown to ``stop`` builds the very
    trees ``start:stop`` of a fresh fit with the same random_state.
    """

    def run():
        sub = forest.set_params(n_estimators=stop, n_jobs=1)
        if start:
            sub.set_params(warm_start=True)
            sub.estimators_ = [None] * start
            with warnings.catch_warnings():
                # This warm-start warning is about refitting on other data, not our case.
                warnings.filterwarnings("ignore", message="class_weight presets")
                fit_estimator(sub, X, y, fit_params)
            sub.estimators_ = sub.estimators_[start:]
        else:
            fit_estimator(sub, X, y, fit_params)
        return sub

    return run_recording(run)


def _merge_forests(original, parts):
    merged = parts[0]
    merged.estimators_ = [tree for part in parts for tree in part.estimators_]
    params = original.get_params(deep=False)
    merged.set_params(
        n_estimators=params["n_estimators"], n_jobs=params["n_jobs"],
        warm_start=params["warm_start"],
    )
    return merged


# ---------------------------------------------------------------------------- executor
class DaskExecutor(Executor):
    """Fit in-memory data on a Dask cluster."""

    name = "dask"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        client, plan = ctx.client, ctx.plan
        if plan.strategy == "joblib-dask":
            with parallel_config(backend="dask", client=client, wait_for_workers_timeout=30):
                return fit_estimator(estimator, X, y, fit_params)
        data = [_scatter(client, obj) for obj in (X, y, fit_params)]
        if plan.strategy == "split-forest":
            n_trees = estimator.get_params()["n_estimators"]
            bounds = np.linspace(0, n_trees, plan.n_jobs + 1).astype(int)
            futures = [
                client.submit(
                    _fit_subforest, clone(estimator), int(a), int(b), *data,
                    pure=False, key=f"distsk-subforest-{a}-{b}-{uuid.uuid4().hex}",
                )
                for a, b in zip(bounds[:-1], bounds[1:]) if b > a
            ]
            results = _gather(client, futures)
            for _, recorded in results:
                reemit(recorded)
            return _merge_forests(estimator, [r for r, _ in results])
        future = client.submit(
            run_recording, fit_estimator, estimator, *data,
            pure=False, key=f"distsk-fit-{type(estimator).__name__}-{uuid.uuid4().hex}",
        )
        (fitted, recorded), = _gather(client, [future])
        reemit(recorded)
        return fitted

    def search_runner(self, ctx: ExecutionContext):
        return DaskRunner(ctx.client)


def _gather(client, futures):
    """Results of ``futures``; the remote exception is re-raised unchanged."""
    try:
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()


# ---------------------------------------------------------------------------- searches
class DaskRunner:
    """Units of search work as Dask tasks.

    Every argument over ``SCATTER_MIN_BYTES`` (X, y, fit parameters, each fold's train
    and test indices) is scattered to all workers once per search, keyed by identity;
    tasks carry futures in its place. The scheduler re-runs the tasks of a worker that
    dies; when the dead worker held the last copy of scattered data, the unit is
    cancelled for "lost dependencies", and is sent again with its data.
    """

    def __init__(self, client):
        self.client = client
        self.slots = sum(client.nthreads().values())
        if self.slots == 0:
            raise ClusterUnavailableError(
                f"The Dask cluster at {client.scheduler.address} has no workers. "
                "Start workers (`dask worker <address>`) or use backend='loky'."
            )
        self._scattered: dict[int, tuple[object, object]] = {}
        self._pending: dict[str, object] = {}
        self._lock = threading.Lock()
        self.resubmitted = 0

    def _share(self, obj):
        # Small values travel inside the task; large ones once, by identity.
        if obj is None or isinstance(obj, (int, float, str, bool)):
            return obj
        key = id(obj)
        with self._lock:
            hit = self._scattered.get(key)
            if hit is not None and hit[0] is obj:
                return hit[1]
        from dask.sizeof import sizeof

        if sizeof(obj) < SCATTER_MIN_BYTES:
            return obj
        future = _scatter(self.client, obj)
        with self._lock:
            self._scattered[key] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    def _forget_lost_data(self):
        # The client may still call a lost future "finished"; ask the scheduler.
        with self._lock:
            entries = list(self._scattered.items())
        try:
            holders = self.client.who_has([f for _, f in (e for _, e in entries)])
        except Exception:  # cancelled futures cannot even be asked about: resend all
            holders = {}
        with self._lock:
            for key, (_, future) in entries:
                if not holders.get(future.key):
                    self._scattered.pop(key, None)

    def submit(self, kind, items):
        result: cf.Future = cf.Future()
        self._send(kind, items, result, attempts=MAX_RESUBMITS)
        return result

    def _send(self, kind, items, result, attempts):
        tasks = [
            (f, [self._share(a) for a in args], {k: self._share(v) for k, v in kwargs.items()})
            for f, args, kwargs in items
        ]
        key = f"distsk-batch-{kind}-{len(tasks)}-{uuid.uuid4().hex}"
        future = self.client.submit(
            run_unit_remote, kind, tasks, wants_stdout(items), key=key, pure=False
        )
        with self._lock:
            self._pending[key] = future

        def done(fut):
            with self._lock:
                self._pending.pop(fut.key, None)
            if result.cancelled():
                return
            if fut.status == "cancelled" and attempts > 0 and not self._closing:
                self.resubmitted += 1
                self._forget_lost_data()
                try:
                    self._send(kind, items, result, attempts - 1)
                except Exception as exc:
                    result.set_exception(exc)
                return
            try:
                result.set_result(fut.result(timeout=RESULT_TIMEOUT))
            except BaseException as exc:
                result.set_exception(exc)

        future.add_done_callback(done)

    _closing = False

    def cancel(self):
        self._closing = True
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        if pending:
            self.client.cancel(pending)

    def close(self):
        self.cancel()
        with self._lock:
            scattered, self._scattered = [f for _, f in self._scattered.values()], {}
        for f in scattered:
            f.release()
