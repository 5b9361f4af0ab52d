"""The cost model behind ``backend="auto"``: predicted seconds and peak memory per engine.

Pure functions of facts gathered before planning: the probe fit, the input and compute
profiles, and a :class:`Costs` snapshot (per-task overheads measured once per process,
whether the loky pool is warm, the bandwidth seen, the corrections and fit rates learned
so far: ``distsk/_decide/learned.py`` keeps them and hands out the snapshot). The planner
calls :func:`predict_search`, :func:`predict_fit` and :func:`predict_large`.

The default constants were measured on the project's 2-core benchmark machine
(``docs/how_distsk_decides.rst`` lists them); measurements replace them as they come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .profile import ComputeProfile, InputProfile, format_bytes

__all__ = [
    "Costs", "Prediction", "LargeWork", "predict_search", "predict_fit", "predict_large",
    "fit_work_key", "fit_work_seconds", "cheapest", "cluster_slots",
]

#: Seconds to start a cold loky pool of two processes (measured: 0.9 s on 2 cores).
LOKY_START_SECONDS = 0.9
#: Fixed seconds of one parallel search on a warm loky pool / on a Dask cluster beyond
#: its fits (runner set-up, first dispatch, result gathering), and per unit of work.
#: Measured: 100 fits of 1.9 ms ran in 0.17 s on 2 warm loky slots, 0.24 s on 2 Dask
#: worker threads, 0.19 s in process.
LOKY_FIXED_SECONDS = 0.06
LOKY_TASK_SECONDS = 0.002
DASK_FIXED_SECONDS = 0.1
DASK_TASK_SECONDS = 0.004
#: What a Dask search costs beyond the no-op round trips measured per cluster: its set
#: up and end (scattering, event topics, dropping them), and per fit on the workers
#: (cloning, keeping each finished fit). Measured on 2 loopback workers x 1 thread,
#: LogisticRegression on 1,000 x 4: 1 candidate x 5 folds 0.105 s on Dask against
#: 0.025 s in process (no-op round trip 0.016 s); 20 x 5 fits 0.32 s against 0.21 s in
#: process and 0.19 s on warm loky (tiny-grid: auto chose Dask at a predicted 0.106 s
#: and took 0.23 s).
DASK_SEARCH_SECONDS = 0.08
DASK_FIT_SECONDS = 0.002
#: Bytes per second into local worker processes (pickling or memory-mapping) and to
#: Dask workers (replaced by the bandwidth seen when distsk gathers dask input).
LOCAL_BANDWIDTH = 1e9
NETWORK_BANDWIDTH = 2e8
#: A fit holds its training rows (a copy of up to all of X) besides the probe's peak.
FIT_DATA_COPIES = 1
# Dask input over the gather limit (``predict_large``). Measured on 2026-12-01 on the same
# machine, LocalCluster of 2 worker processes x 1 thread (3 GB each), while other sessions'
# tests ran (single timings varied by up to 1.5x), with data persisted on the workers.
#: Bytes per second one worker thread reads of persisted blocks in a pass (column sums:
#: 80 MB in 10 blocks 35 ms, 160 MB in 20 blocks 54 ms, 80 MB in 50 blocks 72 ms on 2).
MEMORY_PASS_BYTES_PER_SECOND = 4e9
#: The same when the data exceed what the workers keep in memory (each pass reads spilled
#: blocks back): 80 MB on 2 workers x 25 MB, Newton took 1.21 s (benchmarks/results/
#: larger-than-memory), 2.25 s and 3.36 s (load 1 and 3) against 0.62-1.24 s in memory;
#: fitted to the median, about 0.27 s more per pass of 80 MB on 2 threads (model 1.64 s).
SPILLED_PASS_BYTES_PER_SECOND = 2e8
#: Share of a worker's memory limit dask keeps in memory before spilling to disk (dask's
#: ``distributed.worker.memory.target``).
DASK_SPILL_FRACTION = 0.6
#: Block size assumed for dask input (dask's default ``array.chunk-size``): the profile
#: does not count blocks, and each block costs tasks on every pass.
BLOCK_BYTES = 128 * 2**20
#: Seconds per block and pass on one worker thread in dask-ml's iterations (tasks of the
#: block, its partial sums, scheduling): LogisticRegression by Newton on 80 MB took 0.62 s
#: in 10 blocks and 1.78 s in 50 (5 iterations each), 0.93 s on 160 MB in 20 blocks.
DASK_ML_BLOCK_SECONDS = 0.01
#: The rest of those fits (input check, classes, persisting, the fitted attributes).
DASK_ML_FIXED_SECONDS = 0.24
#: Passes over the data of distsk's Newton (5 iterations in each fit above, plus the input
#: check; this model gives 0.79 s, 1.98 s and 1.24 s for the fits above) and of dask-glm's
#: L-BFGS (its fits on the same data took 2.6 s, 6.1 s and 6.0 s: 1.0x, 1.4x, 0.7x this
#: model with 30; benchmarks/results/lr_solvers*.md: 1.3-7.3x Newton's time).
NEWTON_PASSES = 6
LBFGS_PASSES = 30
#: Newton's per-pass Hessian: rows x (features + 1)^2 multiply-adds per second on one worker
#: thread (lr_solvers.md in memory: 20,000 x 1,000 took 11.8 s, 50,000 x 400 3.75 s).
NEWTON_FLOPS_PER_SECOND = 7e9
#: Passes of the other translated classes (from their algorithms, not measured; a fit more
#: than WRONG_BY off corrects them): one for the scalers, two more than the input check
#: for the SVDs (tsqr), k-means|| and Lloyd's iterations to ``tol`` for KMeans.
DASK_ML_PASSES = {"StandardScaler": 2, "MinMaxScaler": 2, "PCA": 4, "TruncatedSVD": 4,
                  "KMeans": 30}
#: dask-ml Incremental trains one block at a time: SGDClassifier took 0.38 s over 10 blocks
#: of 80 MB, 0.78 s over 50, 0.42 s over 20 blocks of 160 MB.
INCREMENTAL_BLOCK_SECONDS = 0.01
#: xgboost on the workers, 20 rounds of depth 6 on n x 20 float64, 2 workers, persisted,
#: on the quiet machine (load 1): xgboost.dask 2.32 s and 3.27 s on 48 and 96 MB per
#: worker, external memory 2.08 s and 4.12 s (under load 2-3, 1.5-2x that: 4.55 s and
#: 5.9 s, 4.8 s and 5.3 s; benchmarks/results/xgboost-larger-than-memory). Fitted: a
#: fixed cost (tracker, collective, quantile sketch; external memory 0.3 s more, the two
#: fits' mean) and seconds per byte of a worker's share per round (1 ms per MB). 500,000 x
#: 20 (38 MB per worker): 1.58 s, this model 2.1 s. Computing lazy data on each pass
#: (generating, reading files) is not seen: lazily generated 192 MB per worker took
#: 15.7 s (xgboost.dask) and 19.2 s under load, 3x this model, until a timed fit
#: corrects the engine.
XGB_DASK_FIXED_SECONDS = 1.4
XGB_EXTMEM_FIXED_SECONDS = 1.7
XGB_ROUND_SECONDS_PER_BYTE = 1e-9
#: Passes over the data: xgboost.dask computes it once into the workers' memory; the
#: external-memory matrix reads it twice (sketch, then pages), the second pass in part.
XGB_DASK_PASSES = 1.0
XGB_EXTMEM_PASSES = 1.5
#: Peak resident memory of a worker: a worker with xgboost loaded (232 MB, and 198 MB more
#: than an idle one at its first fit on 24 MB), plus per byte of its share of the data
#: xgboost.dask's persisted blocks, quantised matrix and gradients (192 MB generated lazily
#: grew 415 MB; 96 MB persisted grew 92 MB beyond its 96 MB), or external memory's pages
#: and blocks in flight (+175 MB at 192 MB, RSS 531 MB in all at 600 MB). On the quiet
#: machine xgboost.dask grew 54-72 MB beyond a persisted 48 MB share, 85-91 MB beyond 96.
XGB_WORKER_BYTES = 230e6
XGB_DASK_SHARE_COPIES = 2.2
XGB_EXTMEM_FIXED_BYTES = 116e6
XGB_EXTMEM_SHARE_COPIES = 0.31


@dataclass(frozen=True)
class Costs:
    """What the cost model knows, as a snapshot (inputs to the pure planner).

    Attributes
    ----------
    loky_workers : int
        Live processes of joblib's reusable loky pool (0: a parallel search starts it).
    loky_fixed_seconds, loky_task_seconds : float
        Fixed cost of one search on a warm loky pool and cost of one unit of work.
    dask_fixed_seconds, dask_task_seconds : float
        The same for the Dask cluster in use.
    bandwidth : float
        Bytes per second to Dask workers (seen, or the default).
    scale : tuple of ((scope, engine), factor)
        Corrections learned from predictions more than ``WRONG_BY`` off, for searches
        (scope "search") and single fits ("fit") apart.
    fit_rates : tuple of (key, seconds per unit)
        Single-core fit seconds per byte of input (per tree and byte for forests), by
        estimator type, from fits timed in this process.
    measured : tuple of str
        Which of the above were measured rather than defaults.
    """

    loky_workers: int = 0
    loky_fixed_seconds: float = LOKY_FIXED_SECONDS
    loky_task_seconds: float = LOKY_TASK_SECONDS
    dask_fixed_seconds: float = DASK_FIXED_SECONDS
    dask_task_seconds: float = DASK_TASK_SECONDS
    bandwidth: float = NETWORK_BANDWIDTH
    scale: tuple = ()
    fit_rates: tuple = ()
    measured: tuple = ()

    def factor(self, engine: str, scope: str = "search") -> float:
        """The learned correction of ``engine``'s predictions for searches ("search")
        or single fits ("fit")."""
        return dict(self.scale).get((scope, engine), 1.0)

    def fit_rate(self, key) -> float | None:
        return dict(self.fit_rates).get(key)


@dataclass(frozen=True)
class Prediction:
    """One engine's predicted time and peak memory for the work of a plan.

    ``seconds`` is None when the work's duration is unknown (no probe, no earlier fit).
    ``fits_memory`` is False when ``peak_bytes`` exceeds ``room_bytes``, the memory there
    is where it would run (this process, a loky process's share, one Dask worker).
    ``actual_seconds`` is filled in after the fit, for the engine that ran it.
    """

    engine: str
    seconds: float | None
    detail: str = ""
    peak_bytes: int | None = None
    room_bytes: int | None = None
    actual_seconds: float | None = None

    @property
    def fits_memory(self) -> bool:
        return self.peak_bytes is None or self.room_bytes is None or (
            self.peak_bytes <= self.room_bytes)

    def __str__(self) -> str:
        text = f"{self.engine} {_secs(self.seconds)}"
        if self.detail:
            text += f" ({self.detail})"
        if not self.fits_memory:
            text += (f", excluded: predicted peak {format_bytes(self.peak_bytes)} over the "
                     f"{format_bytes(self.room_bytes)} there")
        if self.actual_seconds is not None:
            text += f", actual {_secs(self.actual_seconds)}"
        return text


def _secs(s: float | None) -> str:
    if s is None:
        return "unknown"
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.2f} s"


def _units(n_fits: int, slots: int) -> int:
    """Units of work the search engine makes of ``n_fits`` small fits on ``slots``
    (guided self-scheduling: each batch at most 1/(2 x slots) of the fits left)."""
    if n_fits <= 2 * slots:
        return n_fits
    return min(n_fits, math.ceil(2 * slots * (1 + math.log(n_fits / (2 * slots)))))


def cluster_slots(comp: ComputeProfile, cores: float | None = None) -> int:
    """Worker threads that run at once: on this machine, no more than its ``cores``
    (default: ``comp.local_cores``; more for fits that leave their core idle)."""
    if comp.workers_share_cores:
        cores = comp.local_cores if cores is None else cores
        return max(1, int(min(comp.worker_threads, cores)))
    return max(1, comp.worker_threads)


def predict_search(
    inp: InputProfile,
    comp: ComputeProfile,
    costs: Costs,
    *,
    n_fits: int,
    probe_seconds: float,
    probe_bytes: int | None,
    loky_slots: int,
    probe_cpu_seconds: float | None = None,
    dask_slots: int | None,
    data_on_workers: bool = False,
    work_fits: float | None = None,
    work_detail: str = "",
) -> tuple[Prediction, ...]:
    """Predicted time and peak memory of a search's fits on each engine that can run it.

    Work: ``n_fits`` x the probe fit's seconds, or ``work_fits`` x them when the fits
    differ in size (a halving search's rounds, in probe fits: ``work_detail`` says
    how they were counted). In process: the work, one fit at a time.
    loky: the work over its slots (no more than the cores), the pool's start when it is
    cold, a fixed cost, one task cost per unit, and the data copied into each process.
    Dask (when a cluster is in use): the work over the worker threads that run at once,
    a fixed cost, task costs, and the data sent to each worker at the bandwidth seen.
    Slots sharing this machine's cores run at most ``cores / CPU share`` at once, where
    the CPU share is the probe's CPU seconds over its wall seconds (a fit that waits on
    I/O or sleeps leaves its core to others).
    """
    nbytes = inp.nbytes or 0
    cpu_share = 1.0
    if probe_cpu_seconds is not None and probe_seconds > 0:
        cpu_share = min(1.0, max(0.01, probe_cpu_seconds / probe_seconds))
    cores = comp.local_cores / cpu_share
    work = (n_fits if work_fits is None else work_fits) * probe_seconds
    per_fit = (probe_bytes or 0) + FIT_DATA_COPIES * nbytes
    what = f"{n_fits} fits x {_secs(probe_seconds)}"
    if work_fits is not None:
        what = f"{n_fits} fits, {work_fits:.4g} x {_secs(probe_seconds)}{work_detail}"
    out = [Prediction(
        "sequential", work * costs.factor("sequential"), what,
        peak_bytes=nbytes + per_fit, room_bytes=comp.local_available_bytes,
    )]
    s = max(1, min(loky_slots, n_fits))
    running = max(1, int(min(s, cores)))
    units = _units(n_fits, s)
    start = LOKY_START_SECONDS * max(0, s - costs.loky_workers) / s
    move = nbytes * s / LOCAL_BANDWIDTH
    loky = (work / running + start + costs.loky_fixed_seconds
            + units * costs.loky_task_seconds / running + move)
    parts = [f"{n_fits} fits on {running} processes"]
    if start:
        parts.append(f"{_secs(start)} to start the pool")
    parts.append(f"{units} tasks")
    if move >= 1e-3:
        parts.append(f"{_secs(move)} to copy the data")
    out.append(Prediction(
        "loky", loky * costs.factor("loky"), ", ".join(parts),
        # The data are memory-mapped (shared) across the processes; each fit's copies
        # and the probe's peak are per process.
        peak_bytes=nbytes + s * per_fit, room_bytes=comp.local_available_bytes,
    ))
    if comp.has_cluster and dask_slots is not None:
        d = max(1, min(dask_slots, n_fits))
        running = min(d, cluster_slots(comp, cores))
        units = _units(n_fits, d)
        move = 0.0 if data_on_workers else nbytes * comp.n_workers / costs.bandwidth
        dask = (work / running + costs.dask_fixed_seconds + DASK_SEARCH_SECONDS
                + units * costs.dask_task_seconds / running
                + n_fits * DASK_FIT_SECONDS / running + move)
        parts = [f"{n_fits} fits on {running} worker threads"]
        if comp.workers_share_cores:
            parts[0] += " (workers on this machine share its cores)"
        parts.append(f"{units} tasks")
        if move >= 1e-3:
            parts.append(f"{_secs(move)} to send the data to {comp.n_workers} workers")
        per_worker = comp.worker_memory_bytes // max(1, comp.n_workers)
        threads = max(1, comp.worker_threads // max(1, comp.n_workers))
        out.append(Prediction(
            "dask", dask * costs.factor("dask"), ", ".join(parts),
            peak_bytes=nbytes + threads * per_fit, room_bytes=per_worker or None,
        ))
    return tuple(out)


def fit_work_key(estimator, kind: str | None) -> tuple[str, bool]:
    """What fit times are learned by: the estimator's type, and whether it is a forest
    (``kind`` is ``_planning.parallel_kind``'s answer; a forest's work grows with its
    number of trees)."""
    return type(estimator).__qualname__, kind == "forest"


def fit_work_seconds(estimator, kind, inp: InputProfile, costs: Costs) -> float | None:
    """Single-core seconds of ``estimator.fit`` on ``inp``, from fits timed earlier."""
    key = fit_work_key(estimator, kind)
    rate = costs.fit_rate(key)
    if rate is None or not inp.nbytes:
        return None
    return rate * inp.nbytes * (_trees(estimator) if key[1] else 1)


def _trees(estimator) -> int:
    return int(estimator.get_params().get("n_estimators", 100))


def predict_fit(estimator, kind, inp: InputProfile, comp: ComputeProfile, costs: Costs, *,
                local_jobs: int, cluster_jobs: int | None) -> tuple[Prediction, ...]:
    """Predicted time of one fit in this process (with ``local_jobs`` parallel slots,
    threads or processes as the estimator prefers) and on the cluster (split into
    ``cluster_jobs`` tasks), from the single-core time of earlier fits of its type."""
    work = fit_work_seconds(estimator, kind, inp, costs)
    nbytes = inp.nbytes or 0
    running = max(1, min(local_jobs, comp.local_cores))
    local = None if work is None else work / running
    name = "loky" if local_jobs > 1 else "sequential"
    out = [Prediction(
        name, None if local is None else local * costs.factor(name, "fit"),
        "no fit of this estimator type timed in this process yet" if work is None else
        f"{_secs(work)} of work on {running} cores",
        peak_bytes=2 * nbytes, room_bytes=comp.local_available_bytes,
    )]
    if comp.has_cluster and cluster_jobs:
        running = max(1, min(cluster_jobs, cluster_slots(comp)))
        move = nbytes * comp.n_workers / costs.bandwidth
        dask = None if work is None else (
            work / running + costs.dask_fixed_seconds
            + cluster_jobs * costs.dask_task_seconds / running + move)
        per_worker = comp.worker_memory_bytes // max(1, comp.n_workers)
        out.append(Prediction(
            "dask", None if dask is None else dask * costs.factor("dask", "fit"),
            "no fit of this estimator type timed in this process yet" if work is None else
            f"{_secs(work)} of work on {running} worker threads, {_secs(move)} to send "
            f"the data to {comp.n_workers} workers",
            peak_bytes=2 * nbytes, room_bytes=per_worker or None,
        ))
    return tuple(out)


@dataclass(frozen=True)
class LargeWork:
    """What each larger-than-memory engine would run for an estimator, as the planner reads
    it off the estimator and the engines' rules (the input of :func:`predict_large`).

    ``dask_ml``: "translated", "incremental" or None (no dask-ml engine); ``solver``: the
    translated GLM's solver ("newton" or "lbfgs"); ``xgboost``: an xgboost model;
    ``external_memory``: why xgboost's external memory cannot train it (None: it can);
    ``local_engine``: the engine a gathered fit would run ("sequential" or "loky").
    """

    name: str
    dask_ml: str | None = None
    solver: str | None = None
    xgboost: bool = False
    external_memory: str | None = None
    local_engine: str = "sequential"


def predict_large(estimator, kind, work: LargeWork, inp: InputProfile, comp: ComputeProfile,
                  costs: Costs, *, max_gather_bytes: int) -> tuple[Prediction, ...]:
    """Predicted time and peak memory of each engine that can fit ``estimator`` on dask
    input ``inp`` over the gather limit.

    Gathered then fit in this process: the input's bytes at the bandwidth seen, plus the
    fit's time when a fit of its type was timed; its peak (the input and the fit's copy)
    is held against the gather limit, which the input is over, so it is never chosen.
    dask-ml: passes over the data x (bytes / the worker threads' throughput, in memory or
    spilled + a cost per block) + Newton's Hessians; Incremental one block at a time.
    xgboost.dask: a fixed cost + one pass + rounds x a worker's share; its peak, the
    share held ``XGB_DASK_SHARE_COPIES`` times over, against a worker's memory limit.
    External memory: more fixed cost and passes, a fraction of the share in memory.
    ``seconds`` is None when the input's size is unknown.
    """
    nbytes = inp.nbytes
    workers = max(1, comp.n_workers)
    per_worker = comp.worker_memory_bytes // workers if comp.worker_memory_bytes else None
    out = []
    if nbytes is None:
        unknown = "the input's size is unknown"
        names = ([work.local_engine] + (["dask-ml"] if work.dask_ml else [])
                 + (["xgboost", "xgboost-external-memory"] if work.xgboost else []))
        return tuple(Prediction(n, None, unknown) for n in names)
    # Gathered into this process, then fit there.
    move = nbytes / costs.bandwidth
    fit = fit_work_seconds(estimator, kind, inp, costs)
    if fit is not None and work.local_engine == "loky":
        fit /= max(1, comp.local_cores)
    detail = (f"{_secs(move)} to gather {format_bytes(nbytes)} at "
              f"{format_bytes(costs.bandwidth)}/s into this process, ")
    detail += ("no fit of this estimator type timed yet: at least that" if fit is None else
               f"{_secs(fit)} to fit")
    detail += f"; the gather limit is {format_bytes(max_gather_bytes)}"
    out.append(Prediction(
        work.local_engine, (move + (fit or 0.0)) * costs.factor(work.local_engine, "fit"),
        detail, peak_bytes=(1 + FIT_DATA_COPIES) * nbytes,
        room_bytes=min(max_gather_bytes, comp.local_available_bytes),
    ))
    if not comp.has_cluster:
        return tuple(out)
    slots = cluster_slots(comp)
    spills = bool(comp.worker_memory_bytes) and (
        nbytes > DASK_SPILL_FRACTION * comp.worker_memory_bytes)
    rate = SPILLED_PASS_BYTES_PER_SECOND if spills else MEMORY_PASS_BYTES_PER_SECOND
    blocks = max(workers, math.ceil(nbytes / BLOCK_BYTES))
    share = nbytes / workers
    where = "spilled to disk" if spills else "in memory"

    def a_pass(extra: float = 0.0) -> float:
        return (costs.dask_fixed_seconds + blocks * DASK_ML_BLOCK_SECONDS / slots
                + nbytes / (rate * slots) + extra / slots)

    if work.dask_ml == "translated":
        features = inp.shape[1] if inp.shape and len(inp.shape) == 2 else None
        hessian = 0.0
        if work.solver == "newton":
            passes, what = NEWTON_PASSES, "Newton"
            if features and inp.shape[0]:
                hessian = inp.shape[0] * (features + 1) ** 2 / NEWTON_FLOPS_PER_SECOND
        elif work.solver == "lbfgs" or work.name == "LinearRegression":
            passes, what = LBFGS_PASSES, "L-BFGS"
        else:
            passes, what = DASK_ML_PASSES.get(work.name, 10), work.name
        seconds = DASK_ML_FIXED_SECONDS + passes * a_pass(hessian)
        # The blocks dask keeps in memory (it spills the rest), Newton's partial Hessians.
        held = min(share, DASK_SPILL_FRACTION * per_worker) if per_worker else share
        peak = held + (9 * 8 * (features + 1) ** 2 if hessian else 0)
        out.append(Prediction(
            "dask-ml", seconds * costs.factor("dask-ml", "fit"),
            f"{what}: {passes} passes over {format_bytes(nbytes)} {where} in ~{blocks} "
            f"blocks on {slots} worker threads",
            peak_bytes=int(peak), room_bytes=per_worker))
    elif work.dask_ml == "incremental":
        fit = fit_work_seconds(estimator, kind, inp, costs)
        seconds = (DASK_ML_FIXED_SECONDS + blocks * INCREMENTAL_BLOCK_SECONDS
                   + nbytes / rate + (fit or 0.0))
        out.append(Prediction(
            "dask-ml", seconds * costs.factor("dask-ml", "fit"),
            f"partial_fit on ~{blocks} blocks one at a time, {format_bytes(nbytes)} {where}",
            peak_bytes=int(min(share, DASK_SPILL_FRACTION * per_worker) if per_worker
                           else share), room_bytes=per_worker))
    if work.xgboost:
        rounds = estimator.get_params().get("n_estimators") or 100
        train = rounds * share * XGB_ROUND_SECONDS_PER_BYTE * workers / min(workers, slots)
        dask = XGB_DASK_FIXED_SECONDS + XGB_DASK_PASSES * a_pass() + train
        out.append(Prediction(
            "xgboost", dask * costs.factor("xgboost", "fit"),
            f"{rounds} rounds on {format_bytes(share)} per worker, held in its memory",
            peak_bytes=int(XGB_WORKER_BYTES + XGB_DASK_SHARE_COPIES * share),
            room_bytes=per_worker))
        if work.external_memory is None:
            ext = XGB_EXTMEM_FIXED_SECONDS + XGB_EXTMEM_PASSES * a_pass() + train
            out.append(Prediction(
                "xgboost-external-memory", ext * costs.factor("xgboost-external-memory", "fit"),
                f"{rounds} rounds on {format_bytes(share)} per worker, read block by block",
                peak_bytes=int(XGB_WORKER_BYTES + XGB_EXTMEM_FIXED_BYTES
                               + XGB_EXTMEM_SHARE_COPIES * share),
                room_bytes=per_worker))
        else:
            out.append(Prediction("xgboost-external-memory", None,
                                  f"cannot train it: {work.external_memory}"))
    return tuple(out)


def cheapest(predictions) -> Prediction | None:
    """The fastest prediction that fits in memory (None if none is known and fits)."""
    known = [p for p in predictions if p.seconds is not None and p.fits_memory]
    return min(known, key=lambda p: p.seconds) if known else None
