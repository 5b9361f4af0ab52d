"""The executor contract: the third stage of profile -> plan -> execute.

An executor is a small object with a ``name`` and two methods:

``fit(estimator, X, y, fit_params, ctx) -> estimator``
    Fit an unfitted clone and return the fitted, plain, picklable estimator. Exceptions
    raised by the estimator pass through with their type and message; warnings raised in
    other processes are re-emitted here (``run_recording`` / ``reemit``).
``search_runner(ctx) -> runner``
    The runner that evaluates a search's units of work (see ``_search_engine``), or
    raise ``ValueError`` if the engine cannot run searches.

The estimator and the search never branch on engine details; they call these.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from joblib import parallel_config

__all__ = [
    "ExecutionContext", "Executor", "pinned", "run_recording", "reemit", "fit_estimator",
    "run_unit_remote", "InProcessRunner", "check_picklable",
]


@dataclass(frozen=True)
class ExecutionContext:
    """What an executor needs beyond the data: the plan and the client (or None)."""

    plan: Any
    client: Any = None


class Executor:
    """Base class; see the module docstring for the contract."""

    name: str = ""

    def fit(self, estimator, X, y, fit_params: dict, ctx: ExecutionContext):
        raise NotImplementedError

    def search_runner(self, ctx: ExecutionContext):
        raise ValueError(f"The {self.name!r} engine does not run searches.")


@contextlib.contextmanager
def pinned():
    """One core: joblib loops run sequentially and native thread pools (OpenMP, BLAS)
    use one thread, inside a task (no nested oversubscription) and for "sequential"."""
    with parallel_config(backend="sequential"):
        openmp = _one_thread.enter()
        try:
            yield
        finally:
            _one_thread.leave(openmp)


class _OneThread:
    """Native thread pools limited to one thread while a pinned() block runs.

    OpenMP's thread count belongs to the calling thread: each block limits its own.
    BLAS limits (OpenBLAS, MKL, BLIS) are process-wide, so concurrent blocks (Dask
    worker threads) share one: the first in sets it, the last out restores the
    original. threadpoolctl's scan of the loaded libraries (~20 ms) is kept until a
    module is imported (which may load a new library); a limit costs under a millisecond.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._blas = None
        self._controller = None
        self._n_modules = -1

    def enter(self):
        with self._lock:
            if self._controller is None or self._n_modules != len(sys.modules):
                from threadpoolctl import ThreadpoolController

                self._controller = ThreadpoolController()
                self._n_modules = len(sys.modules)
            controller = self._controller
            if self._depth == 0:
                self._blas = controller.select(user_api="blas").limit(limits=1)
            self._depth += 1
        return controller.select(user_api="openmp").limit(limits=1)

    def leave(self, openmp):
        openmp.restore_original_limits()
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._blas.restore_original_limits()
                self._blas = None


_one_thread = _OneThread()


def check_picklable(estimator, parameters=(), *, where: str) -> None:
    """Raise before any work starts if ``estimator`` cannot travel to ``where``.

    Names the offending parameter: models travel to workers as pickles.
    """
    import cloudpickle

    try:
        cloudpickle.dumps(estimator)
        for params in parameters:
            cloudpickle.dumps(params)
        return
    except Exception as exc:
        cause = exc
    named = dict(estimator.get_params(deep=True)) if hasattr(estimator, "get_params") else {}
    for params in parameters:
        named.update(params)
    for name, value in named.items():
        try:
            cloudpickle.dumps(value)
        except Exception as exc:
            raise TypeError(
                f"Parameter {name!r} of {type(estimator).__name__} holds a "
                f"{type(value).__name__} ({value!r:.80}), which cannot be sent to {where}: "
                f"{type(exc).__name__}: {exc}. Estimators travel to workers as pickles; pass "
                "something picklable (a path rather than an open file, a seed rather than "
                "a generator), or use backend='sequential'."
            ) from exc
    raise TypeError(
        f"{type(estimator).__name__} cannot be sent to {where}: "
        f"{type(cause).__name__}: {cause}. Use backend='sequential'."
    ) from cause


def fit_estimator(estimator, X, y, fit_params):
    # y is always passed, as Pipeline does: sklearn's fit(X, y=None) convention, and the
    # estimator's own error when it requires y.
    return estimator.fit(X, y, **fit_params)


def fit_received(estimator, X, y, fit_params):
    """``fit_estimator`` on data as a Dask worker received it, laid out afresh first.

    Arrays that arrived over the network can be views at odd addresses of a receive
    buffer, which sends BLAS down other code paths and changes last bits of a model
    (fold fits are not affected: a fold's rows are a fresh copy).
    """
    import numpy as np

    def own(value):
        if isinstance(value, np.ndarray) and not value.flags.owndata:
            return np.array(value, order="K", copy=True)
        return value

    return fit_estimator(estimator, own(X), own(y), fit_params)


def run_recording(func, *args, **kwargs):
    """Run ``func`` pinned, returning ``(result, warnings)`` to re-emit in the caller.

    Used in worker processes, whose warnings are otherwise lost.
    """
    with warnings.catch_warnings(record=True) as caught, pinned():
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    return result, [(w.message, w.category) for w in caught]


def reemit(recorded) -> None:
    for message, category in recorded:
        if isinstance(message, Warning):
            warnings.warn(message, stacklevel=3)
        else:
            warnings.warn(str(message), category, stacklevel=3)


def run_unit_remote(kind, items, capture_stdout):
    """Evaluate one unit of search work in a worker: pinned, warnings and prints kept."""
    from .._sharing import run_unit

    out = io.StringIO()
    redirect = contextlib.redirect_stdout(out) if capture_stdout else contextlib.nullcontext()
    with redirect:
        (results, n_fits), recorded = run_recording(run_unit, kind, items)
    return results, n_fits, recorded, out.getvalue()


def wants_stdout(items) -> bool:
    return any((kwargs.get("verbose") or 0) > 1 for _, _, kwargs in items)


class InProcessRunner:
    """Runs units here, one at a time; the fits' own parallelism is left as it is."""

    slots = 1

    def submit(self, kind, items):
        from .._sharing import run_unit

        future = cf.Future()
        try:
            results, n_fits = run_unit(kind, items)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result((results, n_fits, [], ""))
        return future

    def cancel(self):
        pass

    def check(self):
        pass

    def close(self):
        pass
