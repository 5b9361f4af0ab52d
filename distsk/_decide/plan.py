"""The plan: how a fit or a search runs and why (``Plan``), and the small rules every
part of planning shares (how an estimator parallelises, joblib's meaning of n_jobs, the
predictions compared in a reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cost_model import Prediction
from .profile import ComputeProfile, InputProfile, format_bytes

__all__ = ["Plan", "parallel_kind", "n_jobs_of", "compared", "slots"]


@dataclass(frozen=True)
class Plan:
    """How a fit will run, and why.

    Attributes
    ----------
    executor : str
        Engine name: "sequential", "loky", "dask", "dask-ml", "xgboost" or
        "xgboost-external-memory".
    strategy : str
        How that engine runs it: "in-process", "split-forest", "joblib-dask",
        "single-task", "translated", "incremental", "xgboost-dask", "external-memory",
        "candidates".
    reason : str
        One human sentence naming the facts that decided it.
    gather : bool
        Whether lazy (dask) input is computed into local memory first.
    on_workers : bool
        Whether lazy (dask) input is assembled in the workers' memory instead (blocks
        concatenated on a worker, copied worker to worker): the client never holds it.
    n_jobs : int or None
        Parallel slots used (sub-forests on a cluster, loky processes, task slots).
    input, compute : InputProfile, ComputeProfile
        The facts the decision was made from.
    predictions : tuple of Prediction
        ``backend="auto"``: every engine considered, with its predicted seconds (None when
        unknown), predicted peak memory and the memory where it would run; after the
        fit, the engine that ran it carries ``actual_seconds``.
    actual_seconds : float or None
        After the fit: the seconds the planned work took (a search's candidates x folds,
        without the refit).
    solver : str or None
        For the dask-ml engine's generalised linear models: the solver it runs ("newton",
        distsk's, or "lbfgs", dask-glm's), chosen when planning and named in ``reason``.
    """

    executor: str
    strategy: str
    reason: str
    gather: bool = False
    n_jobs: int | None = None
    on_workers: bool = False
    input: InputProfile | None = field(default=None, repr=False)
    compute: ComputeProfile | None = field(default=None, repr=False)
    predictions: tuple[Prediction, ...] = field(default=(), repr=False)
    actual_seconds: float | None = None
    solver: str | None = None

    def __str__(self) -> str:
        return f"{self.executor} ({self.strategy}): {self.reason}"

    @property
    def predicted_seconds(self) -> float | None:
        """The chosen engine's predicted seconds (None if not predicted)."""
        return next((p.seconds for p in self.predictions if p.engine == self.executor), None)

    def predictions_table(self) -> str:
        """One line per engine considered: predicted time and memory, actual time."""
        rows = []
        for p in self.predictions:
            mark = "*" if p.engine == self.executor else " "
            peak = "" if p.peak_bytes is None else f"  peak {format_bytes(p.peak_bytes)}"
            room = "" if p.room_bytes is None else f" of {format_bytes(p.room_bytes)}"
            rows.append(f"{mark} {p}{peak}{room}")
        return "\n".join(rows) or "(no predictions: the backend was forced, or nothing "\
            "was measured to predict from)"


def parallel_kind(estimator) -> str | None:
    """How ``estimator`` parallelises: "forest", "n_jobs" or None."""
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    forests = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
    if isinstance(estimator, forests):
        return "forest"
    try:
        params = estimator.get_params(deep=True)
    except Exception:  # not an sklearn estimator; nothing to parallelise
        return None
    if any(k == "n_jobs" or k.endswith("__n_jobs") for k in params):
        return "n_jobs"
    return None


def n_jobs_of(estimator):
    """The estimator's n_jobs, or the first nested one asking for parallelism."""
    try:
        params = estimator.get_params(deep=True)
    except Exception:
        return None
    if params.get("n_jobs") not in (None, 1):
        return params["n_jobs"]
    return next(
        (v for k, v in params.items() if k.endswith("__n_jobs") and v not in (None, 1)), None
    )


def compared(predictions, chosen: str) -> str:
    """"loky 120 ms (...), against sequential 190 ms (...); dask excluded: ..." """
    first = [p for p in predictions if p.engine == chosen]
    rest = [p for p in predictions if p.engine != chosen]
    text = "; ".join(str(p) for p in first)
    if rest and not first:
        return "; ".join(str(p) for p in rest)
    if rest:
        text += ", against " + "; ".join(str(p) for p in rest)
    return text


def slots(n_jobs, available: int) -> int:
    """joblib's meaning of n_jobs: None is all, -1 all, -2 all but one, k is k."""
    if n_jobs is None:
        return max(1, available)
    if n_jobs < 0:
        return max(available + 1 + n_jobs, 1)
    return n_jobs
