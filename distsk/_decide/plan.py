"""The plan: how a fit or a search runs and why (``Plan``), and the small rules every
part of planning shares (how an estimator parallelises, joblib's meaning of n_jobs, the
predictions compared in a reason)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

from .cost_model import Prediction, _secs
from .profile import ComputeProfile, InputProfile, format_bytes

__all__ = ["Plan", "parallel_kind", "n_jobs_of", "compared", "slots"]

#: The longest headline (``Plan.headline``), whatever the terminal's width.
HEADLINE_WIDTH = 100


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
    time_budget : float or None
        A search's ``time_budget`` (seconds), shown in the headline.
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
    time_budget: float | None = None

    def __str__(self) -> str:
        """The headline, then the contenders' table, at most the terminal's width."""
        width = _terminal_width()
        table = self.table(width)
        return self.headline(min(width, HEADLINE_WIDTH)) + ("\n" + table if table else "")

    def headline(self, width: int = 100) -> str:
        """At most ``width`` characters: the engine, the work, its predicted time (and,
        once fitted, the actual), and the runner-up's predicted time."""
        chosen = self._chosen()
        times = []
        if chosen is not None and chosen.seconds is not None:
            times.append(f"predicted {_secs(chosen.seconds)}")
        if self.actual_seconds is not None:
            times.append(f"took {_secs(self.actual_seconds)}")
        if self.time_budget is not None:
            times.append(f"budget {_secs(self.time_budget)}")
        second = self._runner_up()
        after = "" if second is None else f"; next best {second.engine} {_secs(second.seconds)}"
        # The richest that fits: the work's input described less and less.
        for work in (*_work(chosen, self.input), ""):
            engine = f"{self.executor} ({self.strategy})" + (f": {work}" if work else "")
            text = ", ".join([engine, *times]) + after
            if len(text) <= width:
                return text
        return _cut(text, width)

    def table(self, width: int | None = None) -> str:
        """The contenders, one row each: engine (``*`` the chosen), predicted time, peak
        memory of the memory there, actual time once fitted, why excluded. Rows are cut
        at ``width``; empty when nothing was predicted (a forced backend)."""
        if not self.predictions:
            return ""
        head = ("", "engine", "predicted", "peak memory", "actual", "")
        rows = [head]
        for q in self.predictions:
            peak = "" if q.peak_bytes is None else format_bytes(q.peak_bytes)
            if peak and q.room_bytes is not None:
                peak += f" of {format_bytes(q.room_bytes)}"
            note = "" if q.fits_memory else "excluded: over the memory there"
            rows.append(("*" if q.engine == self.executor else "", q.engine,
                         _secs(q.seconds), peak,
                         "" if q.actual_seconds is None else _secs(q.actual_seconds), note))
        # A column empty in every row (no actual time yet, no exclusion) is left out.
        widths = [max(len(r[i]) for r in rows) if any(r[i] for r in rows[1:]) else 0
                  for i in range(len(head))]
        lines = []
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]),
                     r[3].ljust(widths[3]), r[4].rjust(widths[4]), r[5]]
            line = "  ".join(c for c, w in zip(cells, widths) if w).rstrip()
            lines.append(_cut("  " + line, width) if width else "  " + line)
        return "\n".join(lines)

    def _chosen(self):
        return next((q for q in self.predictions if q.engine == self.executor), None)

    def _runner_up(self):
        others = [q for q in self.predictions if q.engine != self.executor
                  and q.seconds is not None and q.fits_memory]
        return min(others, key=lambda q: q.seconds, default=None)

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


def _terminal_width() -> int:
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def _work(chosen, inp) -> tuple[str, ...]:
    """The work, fuller to shorter: "45 fits on a numpy array (898.50 kiB)", "45 fits
    on a numpy array", "45 fits" (the fits counted by the cost model, the input)."""
    fits = ""
    if chosen is not None:
        found = re.match(r"(\d[\d,]*) fits?\b", chosen.detail)
        if found:
            fits = found.group(0)
    if inp is None:
        return (fits,) if fits else ()
    kind = {"numpy": "numpy array", "pandas": "DataFrame", "sparse": "sparse matrix",
            "dask-array": "dask array", "dask-dataframe": "dask DataFrame"}.get(
                inp.kind, "array-like")
    sized = kind if inp.nbytes is None else f"{kind} ({format_bytes(inp.nbytes)})"
    if not fits:
        return sized, kind
    return f"{fits} on a {sized}", f"{fits} on a {kind}", fits


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
