"""What this process has learned about costs: :class:`LearnedCosts`.

Measured once (the per-task overheads of the warm loky pool and of each Dask scheduler:
:class:`Overheads`) and learned from finished work (the bandwidth of gathers, the
corrections of predictions more than :data:`WRONG_BY` off, single-core fit rates by
estimator type). :meth:`LearnedCosts.costs` hands the planner a frozen snapshot
(``cost_model.Costs``): the planner stays a pure function of its arguments.

The public face uses the process default (:func:`learned_costs`); tests make their own
(``LearnedCosts()``) or replace the default (:func:`use_learned_costs`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

from .cost_model import Costs, _secs, _trees, cluster_slots, fit_work_key
from .specs import spec

__all__ = [
    "LearnedCosts", "Overheads", "learned_costs", "use_learned_costs", "WRONG_BY",
    "WRONG_BY_SECONDS", "MEASURE_TIMEOUT",
]

#: A prediction off by more than this factor (either way) corrects its engine ...
WRONG_BY = 2.0
#: ... when it is also off by this many seconds: a search of 0.2 s predicted at 0.06 s
#: (tiny-grid on a warm pool) is timer and scheduling noise, and scaling the engine by
#: it made every later search in the benchmark process choose another engine (auto
#: took 1.9x the fastest in forest-size-grid, 2x in resume).
WRONG_BY_SECONDS = 0.5
#: Seconds the no-op round trip measuring a cluster may take (busy workers: defaults).
MEASURE_TIMEOUT = 10.0


class Overheads:
    """Per-task overheads measured once per process (thread-safe): the warm loky pool's
    and each Dask scheduler's, as ``(fixed, per task)`` seconds. Facts about the machine
    and the cluster, not learned from work: a fresh :class:`LearnedCosts` may share them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loky: tuple[float, float] | None = None
        self._dask: dict[str, tuple[float, float]] = {}

    def loky(self, warm_workers: int, *, measure: bool) -> tuple[float, float] | None:
        """The warm pool's overheads; measured now when ``measure`` and the pool is warm
        (measuring a cold one would start it)."""
        if measure and self._loky is None and warm_workers:
            measured = _measure_loky(warm_workers)
            with self._lock:
                self._loky = self._loky or measured
        return self._loky

    def dask(self, client, *, measure: bool) -> tuple[float, float] | None:
        """The overheads of ``client``'s scheduler; measured now when ``measure`` and not
        measured yet (busy or failing workers: None, the defaults, measured later)."""
        if client is None:
            return None
        address = _address(client)
        if measure and address not in self._dask:
            with _quiet():
                try:
                    measured = _measure_dask(client)
                except Exception:
                    return None
            with self._lock:
                self._dask.setdefault(address, measured)
        return self._dask.get(address)


class LearnedCosts:
    """What this process has measured and learned about costs (thread-safe).

    ``LearnedCosts()`` knows nothing yet: the planner's defaults apply until work
    teaches it. ``overheads`` shares measured overheads with another instance; ``scale``
    (``{(scope, engine): factor}``), ``fit_rates`` (``{fit_work_key: seconds per unit}``)
    and ``bandwidth`` start it from known values.

    :meth:`costs` is the snapshot the planner takes as its argument; :meth:`learn`,
    :meth:`learn_fit_rate` and :meth:`observe_transfer` record finished work.
    """

    def __init__(self, *, overheads: Overheads | None = None, scale=None, fit_rates=None,
                 bandwidth: float | None = None) -> None:
        self._lock = threading.Lock()
        self.overheads = Overheads() if overheads is None else overheads
        self._bandwidth = bandwidth
        self._scale: dict = dict(scale or {})
        self._rates: dict = dict(fit_rates or {})
        self._from_cluster: set = set()
        #: The notes of corrections made, in order.
        self.log: list[str] = []

    def costs(self, client=None, *, measure: bool = True) -> Costs:
        """The snapshot to plan with; measures overheads not measured yet when
        ``measure`` (a loky pool only when it is already warm: measuring a cold one would
        start it; a Dask cluster's once per scheduler)."""
        from .._compat import loky_workers

        warm = loky_workers()
        measured = []
        c = Costs(loky_workers=warm)
        loky = self.overheads.loky(warm, measure=measure)
        if loky is not None:
            c = replace(c, loky_fixed_seconds=loky[0], loky_task_seconds=loky[1])
            measured.append("loky overheads")
        dask = self.overheads.dask(client, measure=measure)
        if dask is not None:
            c = replace(c, dask_fixed_seconds=dask[0], dask_task_seconds=dask[1])
            measured.append("Dask overheads")
        with self._lock:
            if self._bandwidth is not None:
                c = replace(c, bandwidth=self._bandwidth)
                measured.append("bandwidth")
            return replace(c, scale=tuple(self._scale.items()),
                           fit_rates=tuple(self._rates.items()), measured=tuple(measured))

    def observe_transfer(self, nbytes: int | None, seconds: float) -> None:
        """Bytes moved from Dask workers to this process in ``seconds`` (a gather)."""
        if nbytes and seconds > 0 and nbytes >= 1_000_000:
            seen = nbytes / seconds
            with self._lock:
                self._bandwidth = seen if self._bandwidth is None else (
                    0.5 * (self._bandwidth + seen))

    def learn(self, plan, actual_seconds: float, *, share: float = 1.0,
              calibrate: bool = True) -> tuple[object, str | None]:
        """The plan with the actual time beside its prediction, and a note when the
        prediction was more than ``WRONG_BY`` off (that engine's later predictions are
        scaled by the error, for the rest of the process).

        ``share``: the part of the predicted fits that were run (a search that shares
        work runs fewer); the prediction is compared after scaling by it. ``calibrate``
        False records the actual time only (work the probe cannot predict).
        """
        preds = list(plan.predictions)
        note = None
        for i, p in enumerate(preds):
            if p.engine != plan.executor:
                continue
            preds[i] = replace(p, actual_seconds=actual_seconds)
            if calibrate and p.seconds and actual_seconds > 0 and share > 0:
                ratio = actual_seconds / (p.seconds * share)
                if (ratio > WRONG_BY or ratio < 1 / WRONG_BY) and (
                        abs(actual_seconds - p.seconds * share) >= WRONG_BY_SECONDS):
                    key = ("search" if plan.strategy == "candidates" else "fit", p.engine)
                    with self._lock:
                        old = self._scale.get(key, 1.0)
                        self._scale[key] = new = old * ratio
                    note = (f"{key[1]} ({key[0]}) predicted {_secs(p.seconds * share)}, took "
                            f"{_secs(actual_seconds)} ({ratio:.2f}x): its predictions are "
                            f"scaled by {new:.2f} from now on in this process")
                    self.log.append(note)
            break
        return replace(plan, predictions=tuple(preds), actual_seconds=actual_seconds), note

    def learn_fit_rate(self, estimator, kind, plan, seconds: float) -> None:
        """Single-core work of a timed fit, per byte (per tree and byte for forests);
        ``kind`` is ``_planning.parallel_kind(estimator)``. Cluster fits teach only an
        estimator type no in-process fit has taught yet."""
        inp = plan.input
        if inp is None or not inp.nbytes or seconds <= 0:
            return
        key = fit_work_key(estimator, kind)
        slots = int(plan.n_jobs or 1)
        if slots < 0:  # joblib's -1: every core
            slots = max(1, (plan.compute.local_cores if plan.compute else 1) + 1 + slots)
        on_cluster = spec(plan.executor).needs_cluster
        if on_cluster and plan.compute is not None:
            slots = min(slots, cluster_slots(plan.compute))
        elif plan.compute is not None:
            slots = min(slots, plan.compute.local_cores)
        if kind is None:
            slots = 1
        rate = seconds * slots / inp.nbytes / (_trees(estimator) if key[1] else 1)
        with self._lock:
            old = self._rates.get(key)
            if on_cluster:  # its time includes sending the data
                if old is None:
                    self._rates[key] = rate
                    self._from_cluster.add(key)
                return
            if key in self._from_cluster:
                self._from_cluster.discard(key)
                old = None
            self._rates[key] = rate if old is None else 0.5 * (old + rate)


#: The process default: what the public face learns from and plans with.
_default = LearnedCosts()


def learned_costs() -> LearnedCosts:
    """This process's :class:`LearnedCosts` (the one the public face uses)."""
    return _default


def use_learned_costs(new: LearnedCosts) -> LearnedCosts:
    """Make ``new`` the process default; returns the one it replaces (tests use a fresh
    one per test: ``use_learned_costs(LearnedCosts())``)."""
    global _default
    old, _default = _default, new
    return old


def _address(client) -> str:
    return str(client.scheduler.address)


def _noop(*_):
    return None


def _measure_loky(workers: int) -> tuple[float, float]:
    """(fixed, per task) seconds of joblib's warm loky pool: one no-op round trip, then
    ``4 x workers`` no-ops."""
    from joblib import Parallel, delayed

    n = 4 * workers
    # backend="loky" named: under an active joblib backend (distsk's own, when its
    # engine "auto" plans) a bare Parallel would measure that backend instead.
    start = time.perf_counter()
    Parallel(n_jobs=workers, backend="loky")(delayed(_noop)() for _ in range(1))
    one = time.perf_counter() - start
    start = time.perf_counter()
    Parallel(n_jobs=workers, backend="loky", batch_size=1)(
        delayed(_noop)() for _ in range(n))
    many = time.perf_counter() - start
    return one, max(0.0, (many - one) * workers / (n - 1))


def _measure_dask(client) -> tuple[float, float]:
    """(fixed, per task) seconds of the cluster: one no-op task's round trip, then
    ``4 x threads`` (at most 64) no-op tasks at once."""
    threads = max(1, sum(client.nthreads().values()))
    start = time.perf_counter()
    # A builtin as the task: nothing for the scheduler or the workers to import.
    client.submit(abs, 0, pure=False).result(timeout=MEASURE_TIMEOUT)
    one = time.perf_counter() - start
    n = 4 * min(threads, 16)
    start = time.perf_counter()
    futures = client.map(abs, range(n), pure=False)
    try:
        deadline = start + MEASURE_TIMEOUT
        for future in futures:  # each future answers through its own client
            future.result(timeout=max(0.1, deadline - time.perf_counter()))
    finally:
        client.cancel(futures)
    many = time.perf_counter() - start
    return one, max(0.0, (many - one) * min(threads, 16) / (n - 1))


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
