"""In-process and loky engines: the estimator runs here, as plain sklearn would."""

from __future__ import annotations

from joblib._parallel_backends import LokyBackend, SequentialBackend

from ._base import ExecutionContext, Executor, fit_estimator, pinned

__all__ = ["SequentialExecutor", "LokyExecutor", "PinnedLokyBackend"]


class SequentialExecutor(Executor):
    """Fit in this process on one core: the estimator's own n_jobs is overridden."""

    name = "sequential"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        with pinned():
            return fit_estimator(estimator, X, y, fit_params)

    def search_backend(self, ctx):
        return "sequential"


class PinnedLokyBackend(LokyBackend):
    """joblib's loky backend whose tasks run their own joblib loops sequentially.

    A search's fits already fill every core; a forest with n_jobs=-1 inside a fit would
    start more threads than there are cores.
    """

    def get_nested_backend(self):
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None


class LokyExecutor(Executor):
    """Fit in this process with the estimator's own ``n_jobs`` honoured (joblib default)."""

    name = "loky"

    def fit(self, estimator, X, y, fit_params, ctx: ExecutionContext):
        # No backend is forced: the estimator's prefer= hint picks threads or loky
        # processes, exactly as plain sklearn would.
        return fit_estimator(estimator, X, y, fit_params)

    def search_backend(self, ctx):
        return PinnedLokyBackend()
