"""Public exception and warning classes of distsk."""

__all__ = [
    "CheckpointError",
    "ClusterUnavailableError",
    "NoFaithfulTranslationError",
    "DataTooLargeError",
]


class ClusterUnavailableError(RuntimeError):
    """A Dask cluster was required but none could be reached in time.

    Raised when ``backend`` names a cluster engine and no active client is present,
    or when a scheduler address does not answer within the connection timeout.
    """


class NoFaithfulTranslationError(ValueError):
    """An estimator parameter has no exact equivalent in the engine chosen for it.

    distsk never fits a silently different model: when a dask-ml or xgboost.dask
    equivalent cannot reproduce a parameter, this error names it and the options.
    """


class DataTooLargeError(ValueError):
    """Lazy (dask) input is larger than what may be gathered, and no engine handles it."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (corrupt, or written by another format)."""
