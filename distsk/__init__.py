"""distsk: drop-in scikit-learn meta-estimators that run the fastest correct way.

``DistributedEstimator`` wraps any estimator; ``DistributedSearchCV`` replaces
``GridSearchCV`` / ``RandomizedSearchCV``. Both run in process, on all local cores
(loky) or on a Dask cluster, with results identical to plain scikit-learn.
"""

from ._estimator import DistributedEstimator, explain
from ._planning import BACKENDS, Plan
from ._search import DistributedSearchCV
from .exceptions import (
    CheckpointError,
    ClusterUnavailableError,
    DataTooLargeError,
    NoFaithfulTranslationError,
)

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "CheckpointError",
    "ClusterUnavailableError",
    "DataTooLargeError",
    "DistributedEstimator",
    "DistributedSearchCV",
    "NoFaithfulTranslationError",
    "Plan",
    "__version__",
    "explain",
]
