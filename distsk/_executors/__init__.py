"""Engine registry. Optional engines (dask-ml, xgboost) are imported on first use only."""

from __future__ import annotations

import importlib

from ._base import ExecutionContext, Executor
from ._dask_ml import dask_ml_support
from ._xgboost import is_xgboost_model

__all__ = ["get_executor", "ExecutionContext", "Executor", "dask_ml_support", "is_xgboost_model"]

_REGISTRY = {
    "sequential": ("._local", "SequentialExecutor"),
    "loky": ("._local", "LokyExecutor"),
    "dask": ("._dask", "DaskExecutor"),
    "dask-ml": ("._dask_ml", "DaskMLExecutor"),
    "xgboost": ("._xgboost", "XGBoostExecutor"),
}


def get_executor(name: str) -> Executor:
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module, __name__), cls)()
