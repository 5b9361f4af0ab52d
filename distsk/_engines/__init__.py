"""Engine registry: one list of the executors and what each can do.

``ENGINES`` is the truth (threadpoolctl's ``_ALL_CONTROLLERS`` is the model): the
planner's lists (``BACKENDS``, search engines, cluster engines) are derived from it.
Capabilities are declared here, beside where each executor class lives, so they can be
read without importing the engine (optional engines -- dask-ml, xgboost -- are imported
on first use only); ``tests/test_runners.py`` checks they agree with the classes.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .base import ExecutionContext, Executor
from .dask_ml import dask_ml_support
from .xgboost import is_xgboost_model

__all__ = [
    "ENGINES", "Engine", "engine_names", "get_executor", "ExecutionContext", "Executor",
    "dask_ml_support", "is_xgboost_model",
]


@dataclass(frozen=True)
class Engine:
    """One registry entry: an executor's name, where its class is, what it supports."""

    name: str
    module: str
    cls: str
    #: Has a search runner (``Executor.search_runner``): runs a search's candidates x
    #: folds, so ``DistributedSearchCV(backend=name)`` accepts it.
    runs_searches: bool = False
    #: Runs on a Dask cluster: planning refuses it when there is none.
    needs_cluster: bool = False


ENGINES = (
    Engine("sequential", ".local", "SequentialExecutor", runs_searches=True),
    Engine("loky", ".local", "LokyExecutor", runs_searches=True),
    Engine("dask", ".dask", "DaskExecutor", runs_searches=True, needs_cluster=True),
    Engine("dask-ml", ".dask_ml", "DaskMLExecutor", needs_cluster=True),
    Engine("xgboost", ".xgboost", "XGBoostExecutor", needs_cluster=True),
    Engine("xgboost-external-memory", ".xgboost_extmem", "XGBoostExternalMemoryExecutor",
           needs_cluster=True),
)

_BY_NAME = {engine.name: engine for engine in ENGINES}


def engine_names(*, runs_searches: bool | None = None,
                 needs_cluster: bool | None = None) -> tuple[str, ...]:
    """Names of the engines with these capabilities (None: either), in registry order."""
    return tuple(
        e.name for e in ENGINES
        if (runs_searches is None or e.runs_searches == runs_searches)
        and (needs_cluster is None or e.needs_cluster == needs_cluster)
    )


def get_executor(name: str) -> Executor:
    engine = _BY_NAME[name]
    return getattr(importlib.import_module(engine.module, __name__), engine.cls)()
