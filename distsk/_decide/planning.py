"""Plan: from an estimator, the input and compute profiles and the user's options to a Plan.

The second stage of profile -> plan -> execute. ``plan_fit`` and ``plan_search`` are pure
functions of their arguments: they start nothing and compute nothing, so the decision
table in the docs is unit-tested directly (tests/test_planning.py). What each engine can
do and costs is asked of its spec (``specs``); dask input over the gather limit is
planned by ``planning_large``.
"""

from __future__ import annotations

from dataclasses import replace

from .cost_model import Costs, Prediction, SearchWork, cheapest, predict_fit, predict_search
from .plan import Plan, compared, n_jobs_of, parallel_kind, slots
from .planning_large import plan_large
from .profile import ComputeProfile, InputProfile, format_bytes
from .specs import SPECS, engine_names, spec

__all__ = ["Plan", "BACKENDS", "plan_fit", "plan_search", "place_data", "parallel_kind"]

# Derived from the engine specs (``specs.SPECS``), never kept by hand.
#: Engine names accepted by ``backend=`` (besides "auto").
BACKENDS = engine_names()
CLUSTER_BACKENDS = frozenset(engine_names(needs_cluster=True))
#: Engines a search can run its candidates x folds on.
SEARCH_BACKENDS = engine_names(runs_searches=True)
#: Share of one worker's memory limit that dask input assembled on it may take: the
#: worker also holds the fits' copies of their folds' rows and their models.
WORKER_DATA_FRACTION = 0.25


def _local_plan(estimator, inp: InputProfile, comp: ComputeProfile, prefix: str,
                predictions=()) -> Plan:
    n_jobs = n_jobs_of(estimator)
    where = f"{prefix}{inp.describe()} and {comp.describe()}"
    executor = "loky" if n_jobs not in (None, 1) else "sequential"
    predicted = ""
    if cheapest(predictions) is not None:
        which = "predicted fastest" if len(predictions) > 1 else "predicted"
        predicted = f"; {which}: {compared(predictions, executor)}"
    elif any(spec(p.engine).needs_cluster for p in predictions):
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
        return f"the cluster is predicted fastest ({compared(predictions, 'dask')})"
    if predictions and not predictions[0].fits_memory:
        return f"only a worker has the memory for the fit ({compared(predictions, 'dask')})"
    return "its workers offer more cores than this machine"


def _cluster_plan(estimator, inp, comp, prefix: str, forced: bool, predictions=()) -> Plan:
    strategy, n_jobs, what = _cluster_strategy(estimator, comp)
    where = f"{prefix}{inp.describe()} and {comp.describe()}"
    return Plan("dask", strategy, f"{where}; {_cluster_why(forced, predictions)}: {what}",
                n_jobs=n_jobs, input=inp, compute=comp, predictions=tuple(predictions))


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
    (``learned.LearnedCosts.costs()``): with a fit of the estimator's type timed earlier,
    ``backend="auto"`` predicts this process against the cluster and takes the faster
    that fits in memory.
    """
    _require_cluster(backend, comp)
    if inside_worker and backend == "auto":
        return Plan(
            "sequential", "in-process",
            "Already running inside a parallel worker task: fit in-process, one thread, so "
            "nested parallelism never oversubscribes the worker.",
            gather=inp.lazy, n_jobs=1, input=inp, compute=comp,
        )
    if backend == "auto":
        return _auto_fit(estimator, inp, comp, max_gather_bytes, costs)
    return _forced_fit(estimator, inp, comp, backend, max_gather_bytes)


def _require_cluster(backend: str, comp: ComputeProfile) -> None:
    from ..exceptions import ClusterUnavailableError

    if backend in CLUSTER_BACKENDS and not comp.has_cluster:
        raise ClusterUnavailableError(
            f"backend={backend!r} needs a Dask cluster, but {comp.describe()}. Pass "
            "client=Client(...) or a scheduler address, create a distributed.Client first, "
            "or use backend='auto'."
        )


def _forced_fit(estimator, inp, comp, backend: str, max_gather_bytes: int) -> Plan:
    """The plan of the engine the user named (``backend``)."""
    engine = spec(backend)
    gathered = "Gathered " if inp.lazy else ""
    if engine.in_process:
        p = _local_plan(estimator, inp, comp, gathered)
        if backend == "sequential":
            p = replace(p, executor="sequential", n_jobs=1, reason=p.reason.replace(
                "fit in this process with the estimator's own", "fit in this process on one "
                "core (backend='sequential' overrides the estimator's"))
        else:
            p = replace(p, executor=backend)
        return replace(p, gather=inp.lazy)
    if engine.larger_than_memory:
        return plan_large(estimator, inp, comp, max_gather_bytes, forced=backend)
    if inp.lazy:  # the dask engine
        where, why = _placement(inp, comp, backend, max_gather_bytes)
        if where == "workers":
            return _on_workers(estimator, inp, comp, why, forced=True)
    return replace(_cluster_plan(estimator, inp, comp, gathered, forced=True),
                   gather=inp.lazy)


def _auto_fit(estimator, inp, comp, max_gather_bytes: int, costs) -> Plan:
    """``backend="auto"``: dask input over the gather limit where it lives, dask input a
    worker can hold on the workers when the cluster wins, else the faster of this
    process and the cluster."""
    from ..exceptions import DataTooLargeError

    if inp.lazy:
        where, why = _placement(inp, comp, "auto", max_gather_bytes)
        if inp.nbytes is None or inp.nbytes > max_gather_bytes:
            try:
                return plan_large(estimator, inp, comp, max_gather_bytes, costs=costs)
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
    n_jobs = n_jobs_of(estimator)
    local_jobs = 1 if n_jobs in (None, 1) else slots(n_jobs, comp.local_cores)
    cluster_jobs = None
    if comp.has_cluster and kind:
        cluster_jobs = _cluster_strategy(estimator, comp, on_workers=on_workers)[1]
    preds = predict_fit(estimator, kind, inp, comp, costs or Costs(),
                        local_jobs=local_jobs, cluster_jobs=cluster_jobs)
    best = cheapest(preds)
    if best is not None:
        return spec(best.engine).needs_cluster, preds
    local, cluster = preds[0], preds[1:]  # predict_fit: this process, then the cluster
    if any(p.fits_memory for p in cluster) and not local.fits_memory:
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
    on_cluster = comp.has_cluster and _cluster_may_search(backend)
    if on_cluster and inp.nbytes <= worker_room:
        return "workers", (
            f"{inp.describe()} fits in each worker's memory ({format_bytes(worker_room)} = "
            f"{WORKER_DATA_FRACTION:.0%} of a worker's {format_bytes(per_worker)} limit): "
            "assembled on the workers from its blocks, copied worker to worker, never "
            "through this process"
        )
    if inp.nbytes <= max_gather_bytes:
        why = ("no Dask cluster is in use" if not on_cluster
               else f"it is over {format_bytes(worker_room)}, "
            f"{WORKER_DATA_FRACTION:.0%} of a worker's {format_bytes(per_worker)} limit")
        return "client", (
            f"{inp.describe()} gathered into this process (under the client's gather limit "
            f"of {format_bytes(max_gather_bytes)}; {why})"
        )
    room = (f"{format_bytes(worker_room)} of a worker's memory ({WORKER_DATA_FRACTION:.0%} of "
            f"its {format_bytes(per_worker)} limit)" if on_cluster
            else "a Dask worker (no cluster is in use)")
    raise DataTooLargeError(
        f"{inp.describe()} is over both the gather limit of this process "
        f"({format_bytes(max_gather_bytes)}) and {room}; {what} needs the data in memory on "
        "each worker. Options: use workers with more memory, raise max_gather_bytes, "
        "search on a subsample, or wrap an estimator with partial_fit for dask-ml's "
        "incremental searches."
    )


def _cluster_may_search(backend: str) -> bool:
    """Whether ``backend`` lets a cluster run a search's fits: "auto", or an engine that
    runs searches on a cluster."""
    return backend == "auto" or (spec(backend).needs_cluster and spec(backend).runs_searches)


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
    ``probe_rows`` < 1: they were measured on that share of the rows and scaled up.
    ``data`` is :func:`place_data`'s answer for dask input: on the workers, the search
    runs where its data is. ``costs`` is what this process has learned, as a snapshot
    (``learned.LearnedCosts.costs()``; None: the defaults). With a probe,
    ``backend="auto"`` predicts each engine's time and peak memory (its spec's
    ``predict_search``) and takes the fastest that fits in memory; every prediction is
    kept in ``Plan.predictions``.
    """
    if data is not None and data[0] == "workers":
        return _search_on_workers(inp, comp, n_jobs, n_fits, data[1])
    where = f"{n_fits} fits on {inp.describe()}; {comp.describe()}"
    if data is not None:
        where = f"{n_fits} fits; {comp.describe()}: {data[1]}"
    _require_cluster(backend, comp)
    if backend == "sequential" or (backend == "auto" and n_jobs == 1):
        why = "as requested" if backend == "sequential" else "n_jobs=1"
        return Plan("sequential", "candidates", f"{where}: in this process ({why}).",
                    gather=inp.lazy, n_jobs=1, input=inp, compute=comp)
    if backend == "auto" and probe_seconds is not None:
        work = SearchWork(
            inp, comp, costs or Costs(), n_fits=n_fits, probe_seconds=probe_seconds,
            probe_bytes=probe_bytes, probe_cpu_seconds=probe_cpu_seconds,
            loky_slots=slots(n_jobs, comp.local_cores),
            dask_slots=slots(n_jobs, comp.worker_threads) if comp.has_cluster else None,
            work_fits=work_fits, work_detail=work_detail,
        )
        engine, choice, preds = _search_predicted(work, probe_rows)
    else:
        (engine, choice), preds = _search_rule(backend, comp), ()
    return _search_plan(engine, f"{where}: ", f" ({choice})" if choice else "", inp, comp,
                        n_jobs, preds)


def _search_on_workers(inp, comp, n_jobs, n_fits: int, why: str) -> Plan:
    """Dask input kept on the workers (``why``): the search runs where its data is."""
    return Plan(
        "dask", "candidates",
        f"{n_fits} fits; {comp.describe()}: {why}; candidates x folds run as Dask "
        f"tasks on {comp.worker_threads} worker threads, folds sent as indices, inner "
        "parallelism pinned to one thread per task.",
        n_jobs=slots(n_jobs, comp.worker_threads), on_workers=True,
        input=inp, compute=comp,
    )


def _search_predicted(work: SearchWork, probe_rows: float):
    """``(engine, why, predictions)``: the fastest predicted whose peak memory fits, or
    this process, which needs the least, when none fits."""
    preds = predict_search(work, SPECS)
    best = cheapest(preds)
    probe = _probe_said(work, probe_rows)
    if best is None:  # nothing fits in memory: the least demanding, as sklearn would
        return preds[0].engine, (
            f"{probe}; no engine's predicted peak memory fits ({compared(preds, '')}): "
            "run in this process, which needs the least"), preds
    return best.engine, f"{probe}; predicted fastest: {compared(preds, best.engine)}", preds


def _probe_said(work: SearchWork, probe_rows: float) -> str:
    """What the probe measured, as the reason says it."""
    seconds, cpu = work.probe_seconds, work.probe_cpu_seconds
    peak = f", peak {format_bytes(work.probe_bytes)}" if work.probe_bytes else ""
    busy = ""
    if cpu is not None and seconds > 0:
        busy = f", {min(1.0, cpu / seconds):.0%} of it on a CPU"
    if probe_rows < 1:
        return (f"one probe fit on 1/{round(1 / probe_rows)} of the rows, scaled to all "
                f"of them, took {seconds * 1e3:.1f} ms{busy}{peak}")
    return f"one probe fit took {seconds * 1e3:.1f} ms{busy}{peak}"


def _search_rule(backend: str, comp: ComputeProfile) -> tuple[str, str]:
    """``(engine, why)`` without a probe: the engine named, or under "auto" the cluster
    when its worker threads are at least this machine's cores, else loky."""
    if backend != "auto":
        return backend, ""
    if comp.has_cluster and comp.worker_threads >= comp.local_cores:
        return "dask", _NO_PROBE
    return "loky", _NO_PROBE


_NO_PROBE = ("no probe fit to predict from; the cluster when its worker threads are at "
             "least this machine's cores, else loky")


def _search_plan(engine: str, where: str, choice: str, inp, comp, n_jobs, preds) -> Plan:
    """The plan of a search on ``engine``; its reason: ``where``, how the engine's spec
    says it runs a search, ``choice``."""
    n, how = spec(engine).search_plan(comp, n_jobs)
    return Plan(engine, "candidates", f"{where}{how}{choice}.", gather=inp.lazy, n_jobs=n,
                input=inp, compute=comp, predictions=preds)
