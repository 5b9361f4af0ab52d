"""Plan: from an estimator, the input and compute profiles and the user's options to a Plan.

The second stage of profile -> plan -> execute. ``plan_fit`` and ``plan_search`` are pure
functions of their arguments: they start nothing and compute nothing, so the decision
table in the docs is unit-tested directly (tests/test_planning.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .cost_model import (
    Costs,
    LargeWork,
    Prediction,
    cheapest,
    predict_fit,
    predict_large,
    predict_search,
)
from .cost_model import _secs as _secs
from .dask_ml_rules import dask_ml_support, plan_solver, sklearn_class
from .profile import ComputeProfile, InputProfile, format_bytes
from .specs import engine_names, spec
from .xgboost_rules import (
    check_external_memory_params,
    external_memory_reason,
    external_memory_refusal,
    external_memory_unsupported,
    is_xgboost_model,
    require_external_memory,
)

__all__ = ["Plan", "BACKENDS", "plan_fit", "plan_search", "place_data", "parallel_kind"]

# Derived from the engine registry (``_engines.ENGINES``), never kept by hand.
#: Engine names accepted by ``backend=`` (besides "auto").
BACKENDS = engine_names()
CLUSTER_BACKENDS = frozenset(engine_names(needs_cluster=True))
#: Engines a search can run its candidates x folds on.
SEARCH_BACKENDS = engine_names(runs_searches=True)
#: Share of one worker's memory limit that dask input assembled on it may take: the
#: worker also holds the fits' copies of their folds' rows and their models.
WORKER_DATA_FRACTION = 0.25


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


def _n_jobs_of(estimator):
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


def _local_plan(estimator, inp: InputProfile, comp: ComputeProfile, prefix: str,
                predictions=()) -> Plan:
    n_jobs = _n_jobs_of(estimator)
    where = f"{prefix}{inp.describe()} and {comp.describe()}"
    executor = "loky" if n_jobs not in (None, 1) else "sequential"
    predicted = ""
    if cheapest(predictions) is not None:
        which = "predicted fastest" if len(predictions) > 1 else "predicted"
        predicted = f"; {which}: {_compared(predictions, executor)}"
    elif any(p.engine == "dask" for p in predictions):
        predicted = (f"; the cluster's {comp.worker_threads} worker threads are not more "
                     f"than this machine's {comp.local_cores} cores, and no fit of "
                     f"{type(estimator).__name__} was timed yet to predict from")
    if n_jobs not in (None, 1):
        return Plan(
            "loky", "in-process",
            f"{where}: fit in this process with the estimator's own n_jobs={n_jobs} "
            f"(joblib: threads or loky processes, as the estimator prefers){predicted}.",
            n_jobs=n_jobs, input=inp, compute=comp, predictions=tuple(predictions),
        )
    return Plan(
        "sequential", "in-process",
        f"{where}: fit in this process (the estimator asks for no parallelism){predicted}.",
        n_jobs=1, input=inp, compute=comp, predictions=tuple(predictions),
    )


def _cluster_strategy(estimator, comp, *, on_workers: bool = False) -> tuple[str, int, str]:
    """How the dask engine fits ``estimator``: ``(strategy, n_jobs, what happens)``.

    ``on_workers``: the data stay on the workers, so joblib-dask (whose loops need the
    data in this process) becomes a single task.
    """
    kind = parallel_kind(estimator)
    if kind == "forest":
        n = max(1, min(int(estimator.get_params()["n_estimators"]), comp.worker_threads))
        if getattr(estimator, "oob_score", False):
            return "single-task", 1, (
                "the forest has oob_score, which needs all trees together, so it is fit "
                "as one task on one worker.")
        return "split-forest", n, (
            f"the forest is split into {n} sub-forests fit on the workers (data sent to "
            "each worker once) and merged into the exact forest a local fit gives.")
    if kind == "n_jobs" and on_workers:
        return "single-task", 1, (
            "the estimator's own parallelism would need the data in this process, so it "
            "is fit as one task on one worker.")
    if kind == "n_jobs":
        return "joblib-dask", comp.worker_threads, (
            "the estimator's own joblib parallelism runs on the cluster (joblib Dask "
            "backend).")
    return "single-task", 1, (
        "the estimator does not parallelise, so it is fit as one task on one worker.")


def _cluster_why(forced: bool, predictions=()) -> str:
    if forced:
        return "as requested"
    chosen = cheapest(predictions)
    if chosen is not None:
        return f"the cluster is predicted fastest ({_compared(predictions, 'dask')})"
    if predictions and not predictions[0].fits_memory:
        return f"only a worker has the memory for the fit ({_compared(predictions, 'dask')})"
    return "its workers offer more cores than this machine"


def _cluster_plan(estimator, inp, comp, prefix: str, forced: bool, predictions=()) -> Plan:
    strategy, n_jobs, what = _cluster_strategy(estimator, comp)
    where = f"{prefix}{inp.describe()} and {comp.describe()}"
    return Plan("dask", strategy, f"{where}; {_cluster_why(forced, predictions)}: {what}",
                n_jobs=n_jobs, input=inp, compute=comp, predictions=tuple(predictions))


def _compared(predictions, chosen: str) -> str:
    """"loky 120 ms (...), against sequential 190 ms (...); dask excluded: ..." """
    first = [p for p in predictions if p.engine == chosen]
    rest = [p for p in predictions if p.engine != chosen]
    text = "; ".join(str(p) for p in first)
    if rest and not first:
        return "; ".join(str(p) for p in rest)
    if rest:
        text += ", against " + "; ".join(str(p) for p in rest)
    return text


def _large_work(estimator, support, comp) -> LargeWork:
    """What the larger-than-memory engines would run for ``estimator`` (pure)."""
    xgb = is_xgboost_model(estimator)
    external = None
    if xgb:
        external = external_memory_unsupported()
        refusal = None if external else external_memory_refusal(estimator, numeric=True)
        if refusal is not None:
            external = f"{refusal.setting} is not supported there"
    n_jobs = _n_jobs_of(estimator)
    return LargeWork(
        name=sklearn_class(estimator) or type(estimator).__name__, dask_ml=support,
        xgboost=xgb, external_memory=external,
        local_engine="loky" if n_jobs not in (None, 1) else "sequential",
    )


def _gain(preds, chosen: Prediction) -> str:
    """How much faster ``chosen`` is predicted than the next engine that fits in memory,
    or that every other engine is excluded."""
    others = [p for p in preds if p is not chosen and p.seconds is not None]
    fitting = [p for p in others if p.fits_memory]
    if fitting:
        best = min(fitting, key=lambda p: p.seconds)
        if chosen.seconds is None:
            return ""
        saved = best.seconds - chosen.seconds
        if saved >= 0:
            return (f"; expected gain: {_secs(saved)} ({saved / best.seconds:.0%}) less "
                    f"than {best.engine}")
        return f"; predicted {_secs(-saved)} slower than {best.engine}"
    excluded = [p.engine for p in others if not p.fits_memory]
    if excluded and chosen.fits_memory:
        return (f"; the only engine whose predicted peak memory fits ("
                f"{', '.join(excluded)} excluded)")
    if excluded and chosen.engine == "dask-ml":
        return (f"; no engine's predicted peak memory fits ({', '.join(excluded)} and "
                "dask-ml, the only one that spills to disk what its workers cannot hold)")
    return ""  # the caller says why it runs what does not fit


def _large_lazy_plan(estimator, inp, comp, limit, forced=None, costs=None) -> Plan:
    """Dask input over the gather limit ``limit``: an engine that fits where the data live.

    With ``backend="auto"`` (``forced`` None) each engine that can take the estimator is
    predicted by :func:`cost_model.predict_large` (gathering, excluded by the limit; dask-ml;
    xgboost.dask; xgboost's external memory) and the predictions are recorded in
    ``Plan.predictions``; between the xgboost engines the faster that fits in the
    workers' memory is chosen, and none whose predicted peak is over it.
    """
    size = "of unknown size" if inp.nbytes is None else f"of {format_bytes(inp.nbytes)}"
    over = f"{inp.describe()} is over the gather limit of {format_bytes(limit)}" if inp.nbytes else (
        f"{inp.kind} {size}"
    )
    refused = None if forced is None else spec(forced).refuses(estimator)
    if refused is not None:
        raise ValueError(refused)
    preds: tuple[Prediction, ...] = ()
    if forced is None:
        support = dask_ml_support(estimator)
        work = _large_work(estimator, support, comp)
        if support == "translated":
            choice = plan_solver(estimator, inp, comp)
            work = replace(work, solver=None if choice is None else choice.solver)
        preds = predict_large(estimator, parallel_kind(estimator), work, inp, comp,
                              costs or Costs(), max_gather_bytes=limit)
    by = {p.engine: p for p in preds}
    if forced in (None, "xgboost", "xgboost-external-memory") and is_xgboost_model(estimator):
        if not comp.has_cluster:
            from ..exceptions import ClusterUnavailableError

            raise ClusterUnavailableError(
                f"{over}: xgboost models train on such data with xgboost.dask, which needs a "
                f"Dask cluster, but {comp.describe()}. Create a distributed.Client, pass "
                "client=..., or raise max_gather_bytes to gather the data."
            )
        model = "estimator_ is the equivalent plain xgboost model."
        if forced is not None:
            external = external_memory_reason(estimator, inp, comp, forced)
            if external is not None:
                return Plan("xgboost-external-memory", "external-memory",
                            f"{over}: {external}; {model}", input=inp, compute=comp)
            return Plan("xgboost", "xgboost-dask",
                        f"{over}: trained where the data lives with xgboost.dask "
                        f"({comp.describe()}); {model}", input=inp, compute=comp)
        return _xgboost_choice(estimator, inp, comp, over, by, preds, model)
    if forced in (None, "dask-ml"):
        support = dask_ml_support(estimator)
        predicted = ""
        if "dask-ml" in by:
            chosen = by["dask-ml"]
            predicted = f" Predicted: {_compared(preds, 'dask-ml')}{_gain(preds, chosen)}."
        if support == "translated":
            # Chosen here, once: the engine runs plan.solver, the solver the reason names.
            choice = plan_solver(estimator, inp, comp)
            note = "" if choice is None else f" {choice.reason[0].upper()}{choice.reason[1:]}."
            return Plan(
                "dask-ml", "translated",
                f"{over}: fit blockwise on the cluster by the dask-ml equivalent of "
                f"{type(estimator).__name__} ({comp.describe()}); estimator_ is a plain "
                f"{type(estimator).__name__} carrying the fitted attributes.{note}{predicted}",
                input=inp, compute=comp, predictions=preds,
                solver=None if choice is None else choice.solver,
            )
        if support == "incremental":
            return Plan(
                "dask-ml", "incremental",
                f"{over}: {type(estimator).__name__} has partial_fit, so it is trained "
                f"block by block (dask-ml Incremental), one pass over the data.{predicted}",
                input=inp, compute=comp, predictions=preds,
            )
    from ..exceptions import DataTooLargeError

    raise DataTooLargeError(
        f"{over}, and {type(estimator).__name__} has no larger-than-memory engine: "
        "distsk runs LogisticRegression, LinearRegression, PoissonRegressor, KMeans, PCA, "
        "TruncatedSVD, StandardScaler, MinMaxScaler through dask-ml, estimators with "
        "partial_fit block by block, and xgboost models through xgboost.dask. Options: raise "
        "max_gather_bytes (e.g. max_gather_bytes='8GB') to gather the data, use one of those "
        "estimators, or subsample the data."
    )


def _xgboost_choice(estimator, inp, comp, over, by, preds, model) -> Plan:
    """``backend="auto"`` for an xgboost model: xgboost.dask or external memory, the faster
    predicted of those that fit in a worker's memory; external memory when xgboost.dask
    does not fit (refused, naming the parameter, when it cannot train the model)."""
    dask, ext = by["xgboost"], by["xgboost-external-memory"]
    lives = f"trained where the data lives with xgboost.dask ({comp.describe()})"
    reads = (f"trained through xgboost's external memory on the {comp.n_workers} workers "
             f"({comp.describe()}), one task per worker reading its blocks one at a time")
    if dask.fits_memory:
        usable = [p for p in (dask, ext) if p.seconds is not None and p.fits_memory]
        best = min(usable, key=lambda p: p.seconds) if usable else dask
        how = lives if best is dask else reads
        why = (f"predicted fastest: {_compared(preds, best.engine)}{_gain(preds, best)}"
               if best.seconds is not None else "the input's size is unknown")
        return Plan(best.engine, "xgboost-dask" if best is dask else "external-memory",
                    f"{over}: {how}; {why}; {model}", input=inp, compute=comp,
                    predictions=preds)
    peak = (f"xgboost.dask needs the data in the workers' memory: its predicted peak "
            f"{format_bytes(dask.peak_bytes)} per worker is over the "
            f"{format_bytes(dask.room_bytes)} there")
    # An xgboost without external memory (ImportError naming the upgrade), and what
    # external memory cannot train, are refused rather than fit out of memory.
    require_external_memory()
    check_external_memory_params(estimator, numeric=True)
    fits = ("" if ext.fits_memory else "; its own predicted peak is over that too, and it "
            "needs the least memory of the engines")
    return Plan("xgboost-external-memory", "external-memory",
                f"{over}: {peak}: {reads}{fits}; predicted: {_compared(preds, ext.engine)}"
                f"{_gain(preds, ext)}; {model}", input=inp, compute=comp, predictions=preds)


def plan_fit(
    estimator,
    inp: InputProfile,
    comp: ComputeProfile,
    *,
    backend: str = "auto",
    max_gather_bytes: int,
    inside_worker: bool = False,
    costs: Costs | None = None,
) -> Plan:
    """Decide how ``estimator.fit`` runs on input ``inp`` with compute ``comp``.

    Pure: raises ``ClusterUnavailableError`` when a cluster engine is requested with no
    cluster in ``comp``; raises ``DataTooLargeError`` for lazy input no engine can take.
    ``costs`` is what this process has learned, as a snapshot
    (``learned.LearnedCosts.costs()``): with a fit of the
    estimator's type timed earlier, ``backend="auto"`` predicts this process against the
    cluster and takes the faster that fits in memory.
    """
    from ..exceptions import ClusterUnavailableError, DataTooLargeError

    if backend in CLUSTER_BACKENDS and not comp.has_cluster:
        raise ClusterUnavailableError(
            f"backend={backend!r} needs a Dask cluster, but {comp.describe()}. Pass "
            "client=Client(...) or a scheduler address, create a distributed.Client first, "
            "or use backend='auto'."
        )
    small = inp.nbytes is not None and inp.nbytes <= max_gather_bytes
    if inside_worker and backend == "auto":
        return Plan(
            "sequential", "in-process",
            "Already running inside a parallel worker task: fit in-process, one thread, so "
            "nested parallelism never oversubscribes the worker.",
            gather=inp.lazy, n_jobs=1, input=inp, compute=comp,
        )
    if backend in ("sequential", "loky"):
        p = _local_plan(estimator, inp, comp, "Gathered " if inp.lazy else "")
        if backend == "sequential":
            p = replace(p, executor="sequential", n_jobs=1, reason=p.reason.replace(
                "fit in this process with the estimator's own", "fit in this process on one "
                "core (backend='sequential' overrides the estimator's"))
        else:
            p = replace(p, executor="loky")
        return replace(p, gather=inp.lazy)
    if backend in ("dask-ml", "xgboost", "xgboost-external-memory"):
        return _large_lazy_plan(estimator, inp, comp, max_gather_bytes, forced=backend)
    if backend == "dask":
        if inp.lazy:
            where, why = _placement(inp, comp, backend, max_gather_bytes)
            if where == "workers":
                return _on_workers(estimator, inp, comp, why, forced=True)
        return replace(
            _cluster_plan(estimator, inp, comp, "Gathered " if inp.lazy else "", forced=True),
            gather=inp.lazy,
        )
    # backend == "auto"
    if inp.lazy:
        where, why = _placement(inp, comp, backend, max_gather_bytes)
        if not small:
            try:
                return _large_lazy_plan(estimator, inp, comp, max_gather_bytes,
                                        costs=costs)
            except DataTooLargeError:
                if where != "workers":
                    raise
                # No larger-than-memory engine, but a worker can hold it: an exact fit
                # there beats refusing.
                return _on_workers(estimator, inp, comp, why, forced=False)
        cluster_wins, preds = _fit_choice(estimator, inp, comp, costs,
                                          on_workers=where == "workers")
        if where == "workers" and cluster_wins:
            return _on_workers(estimator, inp, comp, why, forced=False, predictions=preds)
    prefix = ""
    if inp.lazy:
        prefix = f"Gathered (under the {format_bytes(max_gather_bytes)} gather limit) "
    cluster_wins, preds = _fit_choice(estimator, inp, comp, costs)
    if cluster_wins:
        plan = _cluster_plan(estimator, inp, comp, prefix, forced=False, predictions=preds)
    else:
        plan = _local_plan(estimator, inp, comp, prefix, predictions=preds)
    return replace(plan, gather=inp.lazy)


def _fit_choice(estimator, inp, comp, costs, *,
                on_workers: bool = False) -> tuple[bool, tuple[Prediction, ...]]:
    """Whether a fit goes to the cluster under "auto", and the predictions behind it.

    ``on_workers``: the cluster's fit would be the one made with the data kept on the
    workers (an estimator's own joblib loops then run as one task on one worker, as
    ``_on_workers`` plans it), not one spread over every worker thread.

    Only an estimator that parallelises can gain from the cluster. With a fit of its type
    timed earlier in this process, the faster prediction that fits in memory wins;
    without one, the rule: the cluster when its worker threads outnumber this machine's
    cores.
    """
    kind = parallel_kind(estimator)
    n_jobs = _n_jobs_of(estimator)
    local_jobs = 1 if n_jobs in (None, 1) else _slots(n_jobs, comp.local_cores)
    cluster_jobs = None
    if comp.has_cluster and kind:
        cluster_jobs = _cluster_strategy(estimator, comp, on_workers=on_workers)[1]
    preds = predict_fit(estimator, kind, inp, comp, costs or Costs(),
                        local_jobs=local_jobs, cluster_jobs=cluster_jobs)
    best = cheapest(preds)
    if best is not None:
        return best.engine == "dask", preds
    fits = {p.engine: p.fits_memory for p in preds}
    if fits.get("dask") and not fits[preds[0].engine]:
        return True, preds  # time unknown, but only a worker has the memory for it
    return bool(cluster_jobs and comp.worker_threads > comp.local_cores), preds


def _on_workers(estimator, inp, comp, placement, forced, predictions=()) -> Plan:
    """A cluster fit of dask input assembled on the workers (never in this process);
    ``placement`` says why the data are there."""
    strategy, n_jobs, what = _cluster_strategy(estimator, comp, on_workers=True)
    if strategy == "single-task" and parallel_kind(estimator) == "n_jobs":
        reason = f"{placement}; {what}"
    else:
        reason = f"{placement}; {_cluster_why(forced, predictions)}: {what}"
    return Plan("dask", strategy, reason, n_jobs=n_jobs, on_workers=True, input=inp,
                compute=comp, predictions=tuple(predictions))


def _placement(inp, comp, backend, max_gather_bytes):
    """``place_data`` without raising: ``(None, why)`` when neither memory holds it."""
    from ..exceptions import DataTooLargeError

    if inp.nbytes is None:
        return None, f"{inp.describe()} of unknown size"
    try:
        return place_data(inp, comp, backend=backend, max_gather_bytes=max_gather_bytes)
    except DataTooLargeError as exc:
        return None, str(exc)


def place_data(inp: InputProfile, comp: ComputeProfile, *, backend: str,
               max_gather_bytes: int, what: str = "DistributedSearchCV") -> tuple[str, str]:
    """Where measured dask input goes: ``("workers" | "client", why)``.

    On the workers when a cluster may run the work (``backend`` "auto" or "dask") and the
    data fit in ``WORKER_DATA_FRACTION`` of one worker's memory limit: assembled there,
    the client never holds it. Otherwise into this process under ``max_gather_bytes``.
    Raises ``DataTooLargeError`` naming both memories when neither can hold it.
    """
    from ..exceptions import DataTooLargeError

    per_worker = comp.worker_memory_bytes // comp.n_workers if comp.has_cluster else 0
    worker_room = int(per_worker * WORKER_DATA_FRACTION)
    if comp.has_cluster and backend in ("auto", "dask") and inp.nbytes <= worker_room:
        return "workers", (
            f"{inp.describe()} fits in each worker's memory ({format_bytes(worker_room)} = "
            f"{WORKER_DATA_FRACTION:.0%} of a worker's {format_bytes(per_worker)} limit): "
            "assembled on the workers from its blocks, copied worker to worker, never "
            "through this process"
        )
    if inp.nbytes <= max_gather_bytes:
        why = ("no Dask cluster is in use" if not comp.has_cluster or backend not in (
            "auto", "dask") else f"it is over {format_bytes(worker_room)}, "
            f"{WORKER_DATA_FRACTION:.0%} of a worker's {format_bytes(per_worker)} limit")
        return "client", (
            f"{inp.describe()} gathered into this process (under the client's gather limit "
            f"of {format_bytes(max_gather_bytes)}; {why})"
        )
    room = (f"{format_bytes(worker_room)} of a worker's memory ({WORKER_DATA_FRACTION:.0%} of "
            f"its {format_bytes(per_worker)} limit)" if comp.has_cluster and backend in (
                "auto", "dask") else "a Dask worker (no cluster is in use)")
    raise DataTooLargeError(
        f"{inp.describe()} is over both the gather limit of this process "
        f"({format_bytes(max_gather_bytes)}) and {room}; {what} needs the data in memory on "
        "each worker. Options: use workers with more memory, raise max_gather_bytes, "
        "search on a subsample, or wrap an estimator with partial_fit for dask-ml's "
        "incremental searches."
    )


def plan_search(
    inp: InputProfile,
    comp: ComputeProfile,
    *,
    backend: str,
    n_jobs,
    n_fits: int,
    probe_seconds: float | None,
    data: tuple[str, str] | None = None,
    probe_bytes: int | None = None,
    probe_cpu_seconds: float | None = None,
    probe_rows: float = 1.0,
    costs: Costs | None = None,
    work_fits: float | None = None,
    work_detail: str = "",
) -> Plan:
    """Decide where the candidates x folds of a search run.

    ``work_fits``: the search's work in probe fits when its fits differ in size (a
    halving search's rounds; the probe is then a first-round fit), ``work_detail`` how.

    ``probe_seconds``, ``probe_bytes`` and ``probe_cpu_seconds`` are the measured time,
    peak memory and CPU time of one in-process fit on one thread (None if not measured);
    ``probe_rows`` < 1: they were measured on that share of the rows and scaled up. ``data`` is :func:`place_data`'s answer for
    dask input: on the workers, the search runs where its data is. ``costs`` is what this
    process has learned, as a snapshot (``learned.LearnedCosts.costs()``; None: the defaults). With a probe,
    ``backend="auto"`` predicts each engine's time and peak memory and takes the fastest
    that fits in memory; every prediction is kept in ``Plan.predictions``.
    """
    from ..exceptions import ClusterUnavailableError

    where = f"{n_fits} fits on {inp.describe()}; {comp.describe()}"
    if data is not None and data[0] == "workers":
        return Plan(
            "dask", "candidates",
            f"{n_fits} fits; {comp.describe()}: {data[1]}; candidates x folds run as Dask "
            f"tasks on {comp.worker_threads} worker threads, folds sent as indices, inner "
            "parallelism pinned to one thread per task.",
            n_jobs=_slots(n_jobs, comp.worker_threads), on_workers=True,
            input=inp, compute=comp,
        )
    if data is not None:
        where = f"{n_fits} fits; {comp.describe()}: {data[1]}"
    if backend == "dask" and not comp.has_cluster:
        raise ClusterUnavailableError(
            f"backend='dask' needs a Dask cluster, but {comp.describe()}. Pass "
            "client=Client(...) or a scheduler address, create a distributed.Client first, "
            "or use backend='auto'."
        )
    if backend == "sequential" or (backend == "auto" and n_jobs == 1):
        why = "as requested" if backend == "sequential" else "n_jobs=1"
        return Plan("sequential", "candidates", f"{where}: in this process ({why}).",
                    gather=inp.lazy, n_jobs=1, input=inp, compute=comp)
    preds: tuple[Prediction, ...] = ()
    if backend == "auto" and probe_seconds is not None:
        preds = predict_search(
            inp, comp, costs or Costs(), n_fits=n_fits, probe_seconds=probe_seconds,
            probe_bytes=probe_bytes, probe_cpu_seconds=probe_cpu_seconds,
            loky_slots=_slots(n_jobs, comp.local_cores),
            dask_slots=_slots(n_jobs, comp.worker_threads) if comp.has_cluster else None,
            work_fits=work_fits, work_detail=work_detail,
        )
        best = cheapest(preds)
        peak = f", peak {format_bytes(probe_bytes)}" if probe_bytes else ""
        busy = ""
        if probe_cpu_seconds is not None and probe_seconds > 0:
            busy = f", {min(1.0, probe_cpu_seconds / probe_seconds):.0%} of it on a CPU"
        probe = f"one probe fit took {probe_seconds * 1e3:.1f} ms{busy}{peak}"
        if probe_rows < 1:
            probe = (f"one probe fit on 1/{round(1 / probe_rows)} of the rows, scaled to all "
                     f"of them, took {probe_seconds * 1e3:.1f} ms{busy}{peak}")
        if best is None:  # nothing fits in memory: the least demanding, as sklearn would
            best = preds[0]
            choice = (f"{probe}; no engine's predicted peak memory fits ({_compared(preds, '')}"
                      "): run in this process, which needs the least")
        else:
            choice = f"{probe}; predicted fastest: {_compared(preds, best.engine)}"
        engine = best.engine
    else:
        choice = ""
        use_cluster = backend == "dask" or (
            backend == "auto" and comp.has_cluster and comp.worker_threads >= comp.local_cores
        )
        engine = "dask" if use_cluster else "sequential" if backend == "sequential" else "loky"
        if backend == "auto":
            choice = ("no probe fit to predict from; the cluster when its worker threads "
                      "are at least this machine's cores, else loky")
    choice = f" ({choice})" if choice else ""
    if engine == "sequential":
        return Plan("sequential", "candidates", f"{where}: in this process{choice}.",
                    gather=inp.lazy, n_jobs=1, input=inp, compute=comp, predictions=preds)
    if engine == "dask":
        slots = _slots(n_jobs, comp.worker_threads)
        return Plan(
            "dask", "candidates",
            f"{where}: candidates x folds run as Dask tasks on {comp.worker_threads} worker "
            "threads, data scattered to each worker once, folds sent as indices, inner "
            f"parallelism pinned to one thread per task{choice}.",
            gather=inp.lazy, n_jobs=slots, input=inp, compute=comp, predictions=preds,
        )
    slots = _slots(n_jobs, comp.local_cores)
    return Plan(
        "loky", "candidates",
        f"{where}: candidates x folds run on {slots} local loky processes, inner parallelism "
        f"pinned to one thread per fit{choice}.",
        gather=inp.lazy, n_jobs=slots, input=inp, compute=comp, predictions=preds,
    )


def _slots(n_jobs, available: int) -> int:
    """joblib's meaning of n_jobs: None is all, -1 all, -2 all but one, k is k."""
    if n_jobs is None:
        return max(1, available)
    if n_jobs < 0:
        return max(available + 1 + n_jobs, 1)
    return n_jobs
