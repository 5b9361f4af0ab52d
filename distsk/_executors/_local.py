"""In-process and loky engines: the estimator runs here, as plain sklearn would."""

from __future__ import annotations

import uuid

from joblib import Parallel
from joblib._parallel_backends import LokyBackend
from joblib.executor import get_memmapping_executor

from ._base import (
    ExecutionContext,
    Executor,
    InProcessRunner,
    fit_estimator,
    pinned,
    run_unit_remote,
    wants_stdout,
)

__all__ = ["SequentialExecutor", "LokyExecutor", "LokyRunner"]


class SequentialExecutor(Executor):
    """Fit in this process on one core: the estimator's own n_jobs is overridden."""

    name = "sequential"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        with pinned():
            return fit_estimator(estimator, X, y, fit_params)

    def search_runner(self, ctx):
        return InProcessRunner()


class LokyRunner:
    """Units of search work on joblib's reusable loky processes.

    The same executor sklearn's own ``n_jobs`` uses (same size, same environment), so a
    warm pool is shared; large arrays are memory-mapped once, not pickled per task. Each
    unit runs its fits' joblib loops sequentially: the units already fill every core.
    """

    def __init__(self, n_workers: int):
        self.slots = n_workers
        self._context = f"distsk-{uuid.uuid4().hex}"
        # The executor arguments a default Parallel(n_jobs) passes (max_nbytes, mmap_mode,
        # verbose, context): joblib restarts the shared loky pool whenever they differ.
        kwargs = {k: v for k, v in Parallel(n_jobs=n_workers)._backend_kwargs.items()
                  if k not in ("prefer", "require")}
        self._executor = get_memmapping_executor(
            n_workers, timeout=300, env=LokyBackend()._prepare_worker_env(n_jobs=n_workers),
            context_id=self._context, **kwargs,
        )
        self._futures = set()

    def submit(self, kind, items):
        future = self._executor.submit(run_unit_remote, kind, items, wants_stdout(items))
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return future

    def cancel(self):
        for future in list(self._futures):
            future.cancel()

    def check(self):
        pass

    def close(self):
        self._executor._temp_folder_manager._clean_temporary_resources(
            context_id=self._context, force=False
        )


class LokyExecutor(Executor):
    """Fit in this process with the estimator's own ``n_jobs`` honoured (joblib default)."""

    name = "loky"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        # No backend is forced: the estimator's prefer= hint picks threads or loky
        # processes, exactly as plain sklearn would.
        return fit_estimator(estimator, X, y, fit_params)

    def search_runner(self, ctx):
        return LokyRunner(max(1, int(ctx.plan.n_jobs or 1)))
