"""Engine registry: each engine's name and where its executor class is.

What each engine can do is its spec (``distsk/_decide/specs.py``), which the planner
reads without importing any engine; ``ENGINES`` adds where each executor class lives,
imported on first use only (joblib's lazy ``EXTERNAL_BACKENDS`` is the model: importing
distsk never imports dask-ml or xgboost). ``tests/test_runners.py`` checks that the
classes are what the specs declare, and ``tests/test_engine_specs.py`` that the
registry and the specs name the same engines.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from .._decide.specs import EngineSpec, engine_names, spec
from .base import ExecutionContext, Executor

__all__ = [
    "ENGINES", "Engine", "engine_names", "get_executor", "ExecutionContext", "Executor",
]


@dataclass(frozen=True)
class Engine:
    """One registry entry: an engine's name and where its executor class is."""

    name: str
    module: str
    cls: str

    @property
    def spec(self) -> EngineSpec:
        return spec(self.name)

    @property
    def runs_searches(self) -> bool:
        return self.spec.runs_searches

    @property
    def needs_cluster(self) -> bool:
        return self.spec.needs_cluster


ENGINES = (
    Engine("sequential", ".local", "SequentialExecutor"),
    Engine("loky", ".local", "LokyExecutor"),
    Engine("dask", ".dask", "DaskExecutor"),
    Engine("dask-ml", ".dask_ml", "DaskMLExecutor"),
    Engine("xgboost", ".xgboost", "XGBoostExecutor"),
    Engine("xgboost-external-memory", ".xgboost_extmem", "XGBoostExternalMemoryExecutor"),
)

_BY_NAME = {engine.name: engine for engine in ENGINES}


def get_executor(name: str) -> Executor:
    engine = _BY_NAME[name]
    return getattr(importlib.import_module(engine.module, __name__), engine.cls)()
