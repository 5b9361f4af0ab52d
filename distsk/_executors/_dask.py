"""Cluster engine: in-memory data, fits on Dask workers through futures.

Strategies (chosen by the planner): ``split-forest`` (sub-forests on the workers, merged
into the exact forest a local fit gives), ``joblib-dask`` (the estimator's own joblib
loops on the cluster), ``single-task`` (the whole fit as one task). Searches use
:class:`ClusterBackend`, a joblib backend that sends each large argument to every worker
once and runs candidates x folds as batched Dask tasks with inner parallelism pinned.
"""

from __future__ import annotations

import contextlib
import io
import threading
import uuid
import warnings

import numpy as np
from joblib import parallel_config
from joblib._parallel_backends import (
    AutoBatchingMixin,
    ParallelBackendBase,
    SequentialBackend,
)
from sklearn.base import clone

from ..exceptions import ClusterUnavailableError
from ._base import ExecutionContext, Executor, fit_estimator, reemit, run_recording

__all__ = ["DaskExecutor", "ClusterBackend"]

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

    def search_backend(self, ctx: ExecutionContext):
        return ClusterBackend(ctx.client)


def _gather(client, futures):
    """Results of ``futures``; the remote exception is re-raised unchanged."""
    try:
        return client.gather(futures)
    finally:
        for f in futures:
            f.release()


# ---------------------------------------------------------------------------- searches
def _run_batch(tasks, capture_stdout):
    """Run one batch of joblib calls on a worker: pinned, warnings and prints recorded."""
    out = io.StringIO()
    redirect = contextlib.redirect_stdout(out) if capture_stdout else contextlib.nullcontext()
    with redirect:
        results, recorded = run_recording(lambda: [f(*a, **kw) for f, a, kw in tasks])
    return results, recorded, out.getvalue()


class ClusterBackend(AutoBatchingMixin, ParallelBackendBase):
    """A joblib backend that runs each batch of calls as one Dask task.

    Unlike joblib's own Dask backend, tasks run their inner joblib loops sequentially
    (a forest inside a fit does not become hundreds of extra Dask tasks), and every
    argument over ``SCATTER_MIN_BYTES`` (X, y, fit params, each fold's indices) is
    scattered to all workers once per search, keyed by identity.
    """

    supports_retrieve_callback = True
    supports_timeout = True
    default_n_jobs = -1
    # A Dask task costs ~1 ms of overhead; batches of ~0.2-2 s keep it negligible.
    MIN_IDEAL_BATCH_DURATION = 0.2
    MAX_IDEAL_BATCH_DURATION = 2.0

    def __init__(self, client, **kwargs):
        super().__init__(**kwargs)
        self.client = client
        self._scattered: dict[int, tuple[object, object]] = {}
        self._pending: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self.resubmitted = 0

    def __reduce__(self):  # never shipped: inner loops run SequentialBackend
        return (SequentialBackend, ())

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        total = sum(self.client.nthreads().values())
        if total == 0:
            raise ClusterUnavailableError(
                f"The Dask cluster at {self.client.scheduler.address} has no workers. "
                "Start workers (`dask worker <address>`) or use backend='loky'."
            )
        if n_jobs is None or n_jobs < 0:
            return max(total + 1 + (n_jobs or -1), 1)
        return n_jobs

    def configure(self, n_jobs=1, parallel=None, **kwargs):
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def get_nested_backend(self):
        return SequentialBackend(nesting_level=1), None

    def _share(self, obj):
        # Small values travel inside the task; large ones once, by identity.
        if obj is None or isinstance(obj, (int, float, str, bool)):
            return obj
        key = id(obj)
        with self._lock:
            hit = self._scattered.get(key)
            if hit is not None and hit[0] is obj and hit[1].status == "finished":
                return hit[1]
        from dask.sizeof import sizeof

        if sizeof(obj) < SCATTER_MIN_BYTES:
            return obj
        future = _scatter(self.client, obj)
        with self._lock:
            self._scattered[key] = (obj, future)  # the strong ref keeps id(obj) unique
        return future

    def _submit_items(self, items):
        tasks = [
            (f, [self._share(a) for a in args], {k: self._share(v) for k, v in kwargs.items()})
            for f, args, kwargs in items
        ]
        capture = any((kw.get("verbose") or 0) > 1 for _, _, kw in tasks)
        key = f"distsk-batch-{len(tasks)}-{uuid.uuid4().hex}"
        future = self.client.submit(_run_batch, tasks, capture, key=key, pure=False)
        with self._lock:
            self._pending[key] = (future, items)
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

    def submit(self, func, callback=None):
        future = self._submit_items(func.items)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future):
        with self._lock:
            _, items = self._pending.pop(future.key, (None, None))
        for _ in range(MAX_RESUBMITS):
            if future.status != "cancelled" or items is None:
                break
            # The scheduler re-runs tasks of a dead worker by itself, but when a worker
            # held the last copy of scattered data (killed while it was being sent), the
            # batch is cancelled for "lost dependencies": send the data again, re-run.
            self.resubmitted += 1
            self._forget_lost_data()
            future = self._submit_items(items)
            with contextlib.suppress(Exception):  # wait; its outcome is read below
                future.result()
            with self._lock:
                self._pending.pop(future.key, None)
        results, recorded, printed = future.result(timeout=RESULT_TIMEOUT)
        if printed:
            print(printed, end="", flush=True)
        reemit(recorded)
        return results

    def retrieve_result(self, out, timeout=None):
        return self.retrieve_result_callback(out)

    def abort_everything(self, ensure_ready=True):
        with self._lock:
            pending, self._pending = [f for f, _ in self._pending.values()], {}
        if pending:
            self.client.cancel(pending)

    def terminate(self):
        self.abort_everything()
        with self._lock:
            scattered, self._scattered = [f for _, f in self._scattered.values()], {}
        for f in scattered:
            f.release()
        self.reset_batch_stats()
