"""The cost model behind ``backend="auto"``: predicted seconds and peak memory per engine.

Pure functions of facts gathered before planning: the probe fit, the input and compute
profiles, and a :class:`Costs` snapshot (per-task overheads measured once per process,
whether the loky pool is warm, the bandwidth seen, the corrections and fit rates learned
so far: ``distsk/_decide/learned.py`` keeps them and hands out the snapshot). The planner
calls :func:`predict_search` and :func:`predict_fit`; dask input over the gather limit
is priced by ``cost_large``.

The default constants were measured on the project's 2-core benchmark machine
(``docs/how_distsk_decides.rst`` lists them); measurements replace them as they come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .profile import ComputeProfile, InputProfile, format_bytes

__all__ = [
    "Costs", "Prediction", "SearchWork", "predict_search", "predict_fit", "fit_work_key",
    "fit_work_seconds", "cheapest", "cluster_slots", "search_sequential", "search_loky",
    "search_dask",
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


@dataclass(frozen=True)
class SearchWork:
    """A search's fits as the cost model prices them (the input of each engine's search
    predictor, ``EngineSpec.predict_search``).

    ``n_fits`` fits of ``probe_seconds`` each (measured on one thread, with
    ``probe_bytes`` peak memory and ``probe_cpu_seconds`` of CPU), or ``work_fits`` x
    ``probe_seconds`` when the fits differ in size (a halving search's rounds, in probe
    fits: ``work_detail`` says how they were counted); ``loky_slots`` and ``dask_slots``
    (None: no cluster) as joblib reads ``n_jobs``.
    """

    inp: InputProfile
    comp: ComputeProfile
    costs: Costs
    n_fits: int
    probe_seconds: float
    probe_bytes: int | None
    loky_slots: int
    dask_slots: int | None
    probe_cpu_seconds: float | None = None
    data_on_workers: bool = False
    work_fits: float | None = None
    work_detail: str = ""

    @property
    def nbytes(self) -> int:
        return self.inp.nbytes or 0

    @property
    def cores(self) -> float:
        """This machine's cores over the probe's CPU share: a fit that waits on I/O or
        sleeps leaves its core to others, so more of them run at once."""
        cpu_share = 1.0
        if self.probe_cpu_seconds is not None and self.probe_seconds > 0:
            cpu_share = min(1.0, max(0.01, self.probe_cpu_seconds / self.probe_seconds))
        return self.comp.local_cores / cpu_share

    @property
    def seconds(self) -> float:
        """The work, one fit at a time."""
        return (self.n_fits if self.work_fits is None else self.work_fits) * self.probe_seconds

    @property
    def per_fit(self) -> int:
        """Peak bytes of one fit: the probe's and its copy of the rows."""
        return (self.probe_bytes or 0) + FIT_DATA_COPIES * self.nbytes


def predict_search(work: SearchWork, engines) -> tuple[Prediction, ...]:
    """Predicted time and peak memory of a search's fits on each of ``engines`` (specs)
    that can run it (``EngineSpec.predict_search``), in their order."""
    preds = (s.predict_search(s.name, work) for s in engines if s.predict_search is not None)
    return tuple(p for p in preds if p is not None)


def search_sequential(name: str, w: SearchWork) -> Prediction:
    """In process: the work, one fit at a time."""
    what = f"{w.n_fits} fits x {_secs(w.probe_seconds)}"
    if w.work_fits is not None:
        what = f"{w.n_fits} fits, {w.work_fits:.4g} x {_secs(w.probe_seconds)}{w.work_detail}"
    return Prediction(name, w.seconds * w.costs.factor(name), what,
                      peak_bytes=w.nbytes + w.per_fit, room_bytes=w.comp.local_available_bytes)


def search_loky(name: str, w: SearchWork) -> Prediction:
    """The work over the slots that run at once (no more than the cores), the pool's
    start when it is cold, a fixed cost, one task cost per unit, the data copied into
    each process."""
    costs = w.costs
    s = max(1, min(w.loky_slots, w.n_fits))
    running = max(1, int(min(s, w.cores)))
    units = _units(w.n_fits, s)
    start = LOKY_START_SECONDS * max(0, s - costs.loky_workers) / s
    move = w.nbytes * s / LOCAL_BANDWIDTH
    loky = (w.seconds / running + start + costs.loky_fixed_seconds
            + units * costs.loky_task_seconds / running + move)
    parts = [f"{w.n_fits} fits on {running} processes"]
    if start:
        parts.append(f"{_secs(start)} to start the pool")
    parts.append(f"{units} tasks")
    if move >= 1e-3:
        parts.append(f"{_secs(move)} to copy the data")
    return Prediction(
        name, loky * costs.factor(name), ", ".join(parts),
        # The data are memory-mapped (shared) across the processes; each fit's copies
        # and the probe's peak are per process.
        peak_bytes=w.nbytes + s * w.per_fit, room_bytes=w.comp.local_available_bytes,
    )


def search_dask(name: str, w: SearchWork) -> Prediction | None:
    """When a cluster is in use: the work over the worker threads that run at once, a
    fixed cost, task costs, the data sent to each worker at the bandwidth seen."""
    comp, costs = w.comp, w.costs
    if not comp.has_cluster or w.dask_slots is None:
        return None
    d = max(1, min(w.dask_slots, w.n_fits))
    running = min(d, cluster_slots(comp, w.cores))
    units = _units(w.n_fits, d)
    move = 0.0 if w.data_on_workers else w.nbytes * comp.n_workers / costs.bandwidth
    dask = (w.seconds / running + costs.dask_fixed_seconds + DASK_SEARCH_SECONDS
            + units * costs.dask_task_seconds / running
            + w.n_fits * DASK_FIT_SECONDS / running + move)
    parts = [f"{w.n_fits} fits on {running} worker threads"]
    if comp.workers_share_cores:
        parts[0] += " (workers on this machine share its cores)"
    parts.append(f"{units} tasks")
    if move >= 1e-3:
        parts.append(f"{_secs(move)} to send the data to {comp.n_workers} workers")
    per_worker = comp.worker_memory_bytes // max(1, comp.n_workers)
    threads = max(1, comp.worker_threads // max(1, comp.n_workers))
    return Prediction(
        name, dask * costs.factor(name), ", ".join(parts),
        peak_bytes=w.nbytes + threads * w.per_fit, room_bytes=per_worker or None,
    )


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


def cheapest(predictions) -> Prediction | None:
    """The fastest prediction that fits in memory (None if none is known and fits)."""
    known = [p for p in predictions if p.seconds is not None and p.fits_memory]
    return min(known, key=lambda p: p.seconds) if known else None
