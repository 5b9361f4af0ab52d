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
    equivalent cannot reproduce a parameter, this error names it and the options (the
    parameter's default, gathering the data with ``max_gather_bytes`` or
    ``backend="loky"``, a subsample). It is raised while planning, before any work on
    the cluster. A subclass of ``ValueError``.

    Examples
    --------
    >>> import dask.array as da
    >>> from sklearn.cluster import KMeans
    >>> from distsk import DistributedEstimator, NoFaithfulTranslationError, explain
    >>> est = DistributedEstimator(KMeans(n_init=10), max_gather_bytes=0)
    >>> try:
    ...     explain(est, da.zeros((100, 4), chunks=50))
    ... except NoFaithfulTranslationError as exc:
    ...     print(str(exc)[:60])
    KMeans(n_init=10) has no faithful dask-ml translation (dask-
    """


class DataTooLargeError(ValueError):
    """Lazy (dask) input is larger than what may be gathered, and no engine handles it."""


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be used (corrupt, or written by another format)."""
