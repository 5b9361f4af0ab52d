"""The executor contract: the third stage of profile -> plan -> execute.

An executor is a small object with a ``name`` and two methods:

``fit(estimator, X, y, fit_params, ctx) -> estimator``
    Fit an unfitted clone and return the fitted, plain, picklable estimator. Exceptions
    raised by the estimator pass through with their type and message; warnings raised in
    other processes are re-emitted here (``run_recording`` / ``reemit``).
``search_backend(ctx) -> joblib backend``
    The joblib backend (name or instance) that runs a search's candidates x folds, or
    raise ``ValueError`` if the engine cannot run searches.

The estimator and the search never branch on engine details; they call these.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

from joblib import parallel_config

__all__ = ["ExecutionContext", "Executor", "pinned", "run_recording", "reemit", "fit_estimator"]


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

    def search_backend(self, ctx: ExecutionContext):
        raise ValueError(f"The {self.name!r} engine does not run searches.")


@contextlib.contextmanager
def pinned():
    """Inner joblib parallelism runs sequentially inside a task (no nested oversubscription)."""
    with parallel_config(backend="sequential"):
        yield


def fit_estimator(estimator, X, y, fit_params):
    # y is always passed, as Pipeline does: sklearn's fit(X, y=None) convention, and the
    # estimator's own error when it requires y.
    return estimator.fit(X, y, **fit_params)


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
