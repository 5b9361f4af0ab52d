"""The cost model for dask input over the gather limit: each larger-than-memory engine's
predicted seconds and peak memory (``EngineSpec.predict_large``), and gathering's.

Pure, like ``cost_model`` (whose ``Costs`` snapshot and ``Prediction`` it shares).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .cost_model import (
    FIT_DATA_COPIES,
    Costs,
    Prediction,
    _secs,
    cluster_slots,
    fit_work_seconds,
)
from .profile import ComputeProfile, InputProfile, format_bytes

__all__ = [
    "LargeWork", "LargeCase", "predict_large", "large_gathered", "large_dask_ml",
    "large_xgboost", "large_external_memory",
]

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


@dataclass(frozen=True)
class LargeCase:
    """Dask input over the gather limit, as the cost model prices it for each engine
    (the input of each engine's predictor, ``EngineSpec.predict_large``).

    It assumes the data are persisted on the workers, in blocks of ``BLOCK_BYTES``; a
    *pass* costs the Dask fixed cost + a cost per block + the bytes at the worker
    threads' throughput, in memory or spilled to disk (:meth:`a_pass`).
    """

    estimator: object
    kind: str | None  # ``planning.parallel_kind(estimator)``
    work: LargeWork
    inp: InputProfile
    comp: ComputeProfile
    costs: Costs
    max_gather_bytes: int

    @property
    def nbytes(self) -> int | None:
        return self.inp.nbytes

    @property
    def workers(self) -> int:
        return max(1, self.comp.n_workers)

    @property
    def per_worker(self) -> int | None:
        memory = self.comp.worker_memory_bytes
        return memory // self.workers if memory else None

    @property
    def slots(self) -> int:
        return cluster_slots(self.comp)

    @property
    def spills(self) -> bool:
        return bool(self.comp.worker_memory_bytes) and (
            self.nbytes > DASK_SPILL_FRACTION * self.comp.worker_memory_bytes)

    @property
    def rate(self) -> float:
        return SPILLED_PASS_BYTES_PER_SECOND if self.spills else MEMORY_PASS_BYTES_PER_SECOND

    @property
    def blocks(self) -> int:
        return max(self.workers, math.ceil(self.nbytes / BLOCK_BYTES))

    @property
    def share(self) -> float:
        """A worker's share of the data."""
        return self.nbytes / self.workers

    @property
    def where(self) -> str:
        return "spilled to disk" if self.spills else "in memory"

    def a_pass(self, extra: float = 0.0) -> float:
        """Seconds of one pass over the data (``extra``: single-thread seconds per pass)."""
        slots = self.slots
        return (self.costs.dask_fixed_seconds + self.blocks * DASK_ML_BLOCK_SECONDS / slots
                + self.nbytes / (self.rate * slots) + extra / slots)

    def on_cluster(self, name: str) -> Prediction | None:
        """What a cluster engine predicts before its own model: unknown when the input's
        size is, nothing without a cluster."""
        if self.nbytes is None:
            return Prediction(name, None, _UNKNOWN_SIZE)
        return None


_UNKNOWN_SIZE = "the input's size is unknown"


def predict_large(case: LargeCase, engines) -> tuple[Prediction, ...]:
    """Predicted time and peak memory of each of ``engines`` (specs) that can fit the
    estimator on dask input over the gather limit (``EngineSpec.predict_large``), in
    their order. ``seconds`` is None when the input's size is unknown."""
    preds = (s.predict_large(s.name, case) for s in engines if s.predict_large is not None)
    return tuple(p for p in preds if p is not None)


def large_gathered(name: str, case: LargeCase) -> Prediction | None:
    """Gathered into this process, then fit there by ``work.local_engine``: the input's
    bytes at the bandwidth seen, plus the fit's time when a fit of its type was timed;
    its peak (the input and the fit's copy) is held against the gather limit, which the
    input is over, so it is never chosen."""
    if name != case.work.local_engine:
        return None
    nbytes, costs, comp = case.nbytes, case.costs, case.comp
    if nbytes is None:
        return Prediction(name, None, _UNKNOWN_SIZE)
    move = nbytes / costs.bandwidth
    fit = fit_work_seconds(case.estimator, case.kind, case.inp, costs)
    if fit is not None and name == "loky":  # its n_jobs over this machine's cores
        fit /= max(1, comp.local_cores)
    detail = (f"{_secs(move)} to gather {format_bytes(nbytes)} at "
              f"{format_bytes(costs.bandwidth)}/s into this process, ")
    detail += ("no fit of this estimator type timed yet: at least that" if fit is None else
               f"{_secs(fit)} to fit")
    detail += f"; the gather limit is {format_bytes(case.max_gather_bytes)}"
    return Prediction(
        name, (move + (fit or 0.0)) * costs.factor(name, "fit"),
        detail, peak_bytes=(1 + FIT_DATA_COPIES) * nbytes,
        room_bytes=min(case.max_gather_bytes, comp.local_available_bytes),
    )


def large_dask_ml(name: str, case: LargeCase) -> Prediction | None:
    """dask-ml: passes over the data x (bytes / the worker threads' throughput + a cost
    per block) + Newton's Hessians; Incremental one block at a time."""
    if not case.work.dask_ml:
        return None
    if case.nbytes is None or not case.comp.has_cluster:
        return case.on_cluster(name)
    if case.work.dask_ml == "translated":
        return _dask_ml_translated(name, case)
    fit = fit_work_seconds(case.estimator, case.kind, case.inp, case.costs)
    seconds = (DASK_ML_FIXED_SECONDS + case.blocks * INCREMENTAL_BLOCK_SECONDS
               + case.nbytes / case.rate + (fit or 0.0))
    share, per_worker = case.share, case.per_worker
    return Prediction(
        name, seconds * case.costs.factor(name, "fit"),
        f"partial_fit on ~{case.blocks} blocks one at a time, {format_bytes(case.nbytes)} "
        f"{case.where}",
        peak_bytes=int(min(share, DASK_SPILL_FRACTION * per_worker) if per_worker
                       else share), room_bytes=per_worker)


def _dask_ml_translated(name: str, case: LargeCase) -> Prediction:
    work, inp = case.work, case.inp
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
    seconds = DASK_ML_FIXED_SECONDS + passes * case.a_pass(hessian)
    # The blocks dask keeps in memory (it spills the rest), Newton's partial Hessians.
    share, per_worker = case.share, case.per_worker
    held = min(share, DASK_SPILL_FRACTION * per_worker) if per_worker else share
    peak = held + (9 * 8 * (features + 1) ** 2 if hessian else 0)
    return Prediction(
        name, seconds * case.costs.factor(name, "fit"),
        f"{what}: {passes} passes over {format_bytes(case.nbytes)} {case.where} in "
        f"~{case.blocks} blocks on {case.slots} worker threads",
        peak_bytes=int(peak), room_bytes=per_worker)


def _boosting(case: LargeCase) -> tuple[int, float]:
    """The rounds, and their seconds on every worker's share."""
    rounds = case.estimator.get_params().get("n_estimators") or 100
    workers = case.workers
    return rounds, (rounds * case.share * XGB_ROUND_SECONDS_PER_BYTE * workers
                    / min(workers, case.slots))


def large_xgboost(name: str, case: LargeCase) -> Prediction | None:
    """xgboost.dask: a fixed cost + one pass + rounds x a worker's share; its peak, the
    share held ``XGB_DASK_SHARE_COPIES`` times over, against a worker's memory limit."""
    if not case.work.xgboost:
        return None
    if case.nbytes is None or not case.comp.has_cluster:
        return case.on_cluster(name)
    rounds, train = _boosting(case)
    dask = XGB_DASK_FIXED_SECONDS + XGB_DASK_PASSES * case.a_pass() + train
    return Prediction(
        name, dask * case.costs.factor(name, "fit"),
        f"{rounds} rounds on {format_bytes(case.share)} per worker, held in its memory",
        peak_bytes=int(XGB_WORKER_BYTES + XGB_DASK_SHARE_COPIES * case.share),
        room_bytes=case.per_worker)


def large_external_memory(name: str, case: LargeCase) -> Prediction | None:
    """xgboost's external memory: more fixed cost and passes than xgboost.dask, a
    fraction of the share in memory; no time when it cannot train the model."""
    if not case.work.xgboost:
        return None
    if case.nbytes is None or not case.comp.has_cluster:
        return case.on_cluster(name)
    if case.work.external_memory is not None:
        return Prediction(name, None, f"cannot train it: {case.work.external_memory}")
    rounds, train = _boosting(case)
    ext = XGB_EXTMEM_FIXED_SECONDS + XGB_EXTMEM_PASSES * case.a_pass() + train
    return Prediction(
        name, ext * case.costs.factor(name, "fit"),
        f"{rounds} rounds on {format_bytes(case.share)} per worker, read block by block",
        peak_bytes=int(XGB_WORKER_BYTES + XGB_EXTMEM_FIXED_BYTES
                       + XGB_EXTMEM_SHARE_COPIES * case.share),
        room_bytes=case.per_worker)
