"""distsk: drop-in scikit-learn meta-estimators that run the fastest correct way.

``DistributedEstimator`` wraps any estimator; ``DistributedSearchCV`` replaces
``GridSearchCV`` / ``RandomizedSearchCV``. Both run in process, on all local cores
(loky) or on a Dask cluster, with results identical to plain scikit-learn.
"""

import importlib as _importlib

from .exceptions import (
    CheckpointError,
    ClusterUnavailableError,
    DataTooLargeError,
    NoFaithfulTranslationError,
)

__version__ = "0.1.0"

# Imported on first use: a Dask scheduler unpickling distsk's task functions imports
# this package, and should not import scikit-learn for it (see ``_remote``).
_LAZY = {
    "BACKENDS": "._decide.planning",
    "DistributedEstimator": "._face.estimator",
    "DistributedHalvingGridSearchCV": "._face.halving",
    "DistributedHalvingRandomSearchCV": "._face.halving",
    "DistributedSearchCV": "._face.search",
    "Plan": "._decide.planning",
    "explain": "._face.estimator",
    "parallel_backend": "._face.joblib_backend",
}


def _make_joblib_backend(**options):
    # Imported when the backend is first used, not at ``import distsk`` (as _LAZY).
    return _importlib.import_module("._face.joblib_backend", __name__).DistskBackend(**options)


def _register_joblib_backend():
    """``joblib.parallel_config(backend="distsk")`` works once distsk is imported."""
    from joblib import register_parallel_backend

    register_parallel_backend("distsk", _make_joblib_backend)


_register_joblib_backend()


def __getattr__(name):
    if name in _LAZY:
        value = getattr(_importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'distsk' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BACKENDS",
    "CheckpointError",
    "ClusterUnavailableError",
    "DataTooLargeError",
    "DistributedEstimator",
    "DistributedHalvingGridSearchCV",
    "DistributedHalvingRandomSearchCV",
    "DistributedSearchCV",
    "NoFaithfulTranslationError",
    "Plan",
    "__version__",
    "explain",
    "parallel_backend",
]
