"""The joblib backend "distsk": distsk's engine under code that cannot be changed.

``import distsk`` registers it; ``with joblib.parallel_config(backend="distsk"):`` around
unchanged sklearn code (``GridSearchCV``, ``cross_validate``, ``permutation_importance``,
...) hands each of sklearn's ``Parallel`` calls to the same :class:`SearchEngine` that
``DistributedSearchCV`` uses, on the runner a plan chooses (in process, loky, Dask).
Calls are collected, as the search's collector does, then run when joblib first asks
for a result: ``_fit_and_score`` calls as fits (batched, prefixes and ensemble sizes
shared where exact, checkpointed when asked); any other call whole, as a single unit.
A ``Parallel`` that asks for threads (a forest's per-tree jobs) or returns a generator
is handed to joblib's own local backend, so nested work never becomes one cluster task
per tree and a generator stays lazy.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any

from joblib import parallel_config

from .._compat import (
    FallbackToBackend,
    LokyBackend,
    ParallelBackendBase,
    SequentialBackend,
    ThreadingBackend,
    _fit_and_score,
)
from .._engines.base import SEQUENTIAL_OPTION
from .._search.loop import QueuedCallbacks

__all__ = ["DistskBackend", "parallel_backend", "register"]

#: The ``engine=`` values: where the collected calls run.
ENGINE_OPTIONS = ("auto", "sequential", "loky", "dask")
#: The in-process engine as this backend's users ask for it (in error messages).
SEQUENTIAL = ("engine='sequential' (joblib.parallel_config(backend='distsk', "
              "engine='sequential') or distsk.parallel_backend('sequential'))")


def _unwrapped(func):
    # sklearn's ``delayed`` wraps the function in a callable that carries the caller's
    # sklearn config and warning filters; ``functools.update_wrapper`` names the original.
    return getattr(func, "__wrapped__", func)


def _is_fit(item) -> bool:
    return _unwrapped(item[0]) is _fit_and_score


def _call_plain(func, /, *args, **kwargs) -> dict:
    """Run a call that is not a fit, boxed in a dict the engine can fill; its duration
    under ``fit_time``, which the engine reads to batch short calls.

    Its own ``Parallel`` calls run as in one of joblib's loky workers: on threads, one
    level deep (joblib's nested backend), not one by one as the engine's units are
    pinned. StackingClassifier's ``cross_val_predict`` of a slow base estimator uses
    the core a fast one's leaves idle, as with plain ``n_jobs``: 1.26x plain's time
    with the folds one by one (benchmarks/backend_small_calls.py)."""
    from joblib import parallel_config

    from .._compat import ThreadingBackend

    start = time.perf_counter()
    with parallel_config(backend=ThreadingBackend(nesting_level=1)):
        value = func(*args, **kwargs)
    return {"value": value, "fit_time": time.perf_counter() - start}


class DistskBackend(ParallelBackendBase):
    """joblib backend ``"distsk"``: sklearn's parallel calls run on distsk's engine.

    Selected with ``joblib.parallel_config(backend="distsk", engine=..., client=...,
    checkpoint=...)`` or :func:`distsk.parallel_backend`. It is a dispatcher: for each
    ``Parallel`` call it hands joblib a fresh backend of its own (joblib's
    ``FallbackToBackend``). That backend's runner is made for the call and closed at
    its end, except in a ``with distsk.parallel_backend(...):`` block, which keeps a
    Dask runner (its connection, the data it sent the workers) for its successive
    calls and closes it when the block ends. joblib
    itself never tells a backend that a ``parallel_config`` block ended (its
    ``__exit__`` only restores the previous configuration), so only a block of
    distsk's own knows when to release what it kept.

    Parameters
    ----------
    engine : {"auto", "sequential", "loky", "dask"}, default="auto"
        Where the calls run, as ``DistributedSearchCV``'s ``backend``.
    client : None, distributed.Client or str, default=None
        The cluster for ``engine`` "auto" or "dask" (None: the active client).
    checkpoint : str or path-like, default=None
        SQLite file keeping each finished ``_fit_and_score`` result.
    """

    default_n_jobs = -1  # n_jobs=None means every core or worker thread, as "dask"'s
    supports_retrieve_callback = False
    supports_timeout = False
    # Generators are handed to joblib's local backend in ``configure``; joblib refuses
    # return_as="generator" before that unless the flag is set here.
    supports_return_generator = True

    def __init__(self, engine: str = "auto", client=None, checkpoint=None,
                 nesting_level=None, **kwargs):
        super().__init__(nesting_level=nesting_level, **kwargs)
        if engine not in ENGINE_OPTIONS:
            raise ValueError(
                f"The distsk joblib backend's engine must be one of {ENGINE_OPTIONS}; got "
                f"{engine!r}. Pass for example parallel_config(backend='distsk', "
                "engine='loky')."
            )
        if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(
                f"checkpoint must be None, a str or a path-like; got "
                f"{type(checkpoint).__name__}: {checkpoint!r}."
            )
        self.engine, self.client, self.checkpoint = engine, client, checkpoint
        #: The :class:`~distsk.Plan` of every ``Parallel`` call run on the engine under
        #: this backend, in order: where each ran and why.
        self.plans: list = []
        # Reusable runners kept between Parallel calls, by (engine, n_jobs, client):
        # None (one runner per call) unless a distsk.parallel_backend block is open. A
        # runner in use is taken out, so a nested call never shares its caller's.
        self._kept: dict | None = None
        self._lock = threading.Lock()

    def _keep_runners(self) -> None:
        with self._lock:
            if self._kept is None:
                self._kept = {}

    def _borrow(self, key) -> tuple[Any, bool]:
        """The runner kept for ``key`` (or None), and whether the runner used for this
        call is to be kept afterwards."""
        with self._lock:
            if self._kept is None:
                return None, False
            return self._kept.pop(key, None), True

    def _give_back(self, key, runner) -> bool:
        with self._lock:
            if self._kept is None or key in self._kept:
                return False  # the block ended, or a nested call's runner came back first
            self._kept[key] = runner
            return True

    def close(self) -> None:
        """Close the runners kept for the block, and keep none from now on."""
        with self._lock:
            kept, self._kept = self._kept or {}, None
        for runner in kept.values():
            runner.close()

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs == 1 or self.engine == "sequential":
            return 1
        if n_jobs is None or n_jobs < 0:
            return max(2, os.cpu_count() or 1)
        return n_jobs

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **kwargs):
        level = self.nesting_level or 0
        if parallel is not None and getattr(parallel, "return_generator", False):
            # Results are yielded as they come: joblib's own local backend keeps that
            # promise (the engine runs a whole Parallel call at once).
            local = SequentialBackend if self.engine == "sequential" else LokyBackend
            raise FallbackToBackend(local(nesting_level=level))
        if prefer == "threads" or require == "sharedmem":
            # Work written for threads (a forest's per-tree jobs): on threads here, as
            # joblib's default would run it; never one cluster task per tree.
            local = SequentialBackend if self.engine == "sequential" else ThreadingBackend
            raise FallbackToBackend(local(nesting_level=level))
        raise FallbackToBackend(_EngineCall(self, nesting_level=level))

    def submit(self, func, callback=None):  # pragma: no cover - configure always falls back
        raise RuntimeError("the distsk backend hands every Parallel call to another backend")


class _Job:
    """What ``submit`` returns: one joblib batch, filled when the engine has run."""

    __slots__ = ("results", "error")

    def __init__(self):
        self.results: list | None = None
        self.error: BaseException | None = None


class _EngineCall(ParallelBackendBase):
    """The backend of one ``Parallel`` call: collects its calls, runs them on the engine.

    ``submit`` only collects; the first ``retrieve_result`` (joblib asks for results in
    order, in the caller's thread, since ``supports_retrieve_callback`` is False) runs
    everything collected so far as one engine run, so fits share and batch as in a
    search. Exceptions reach joblib unchanged, which re-raises them to the caller.
    """

    supports_retrieve_callback = False
    supports_timeout = False

    def __init__(self, dispatcher: DistskBackend, nesting_level=None):
        super().__init__(nesting_level=nesting_level)
        self.options = dispatcher
        self._runner = None
        self._plan = None
        self._key = None  # set when the runner goes back to the dispatcher at the end
        self._spoiled = False  # a runner that cancelled its work is never kept
        self._drive = None  # the Driver of this call (client and compute resolved once)
        self._pending: list = []
        self._callbacks = QueuedCallbacks()
        self.n_jobs = None

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs == 1:
            return 1  # sklearn's "no parallelism": joblib runs the calls itself, here
        # Never 1 otherwise, even for engine="sequential": joblib would then bypass the
        # engine (no checkpoint). The engine's plan decides the real number of slots.
        return max(2, n_jobs if n_jobs is not None and n_jobs > 0 else os.cpu_count() or 2)

    def configure(self, n_jobs=1, parallel=None, **kwargs):
        self.parallel = parallel
        self.n_jobs = n_jobs
        return self.effective_n_jobs(n_jobs)

    def compute_batch_size(self):
        return 1_000_000  # collect everything in a few joblib batches

    def start_call(self):
        self._pending = []

    def submit(self, func, callback=None):
        job = _Job()
        self._pending.append((job, list(func.items)))
        if callback is not None:
            self._callbacks.answer(callback, job)
        return job

    def retrieve_result(self, job, timeout=None):
        if job.results is None and job.error is None:
            self._run_pending()
        if job.error is not None:
            raise job.error
        return job.results

    def _run_pending(self):
        pending, self._pending = self._pending, []
        if not pending:
            return
        items = [item for _, batch in pending for item in batch]
        fits = all(_is_fit(item) for item in items)
        if not fits:
            items = [(_call_plain, (func, *args), kwargs) for func, args, kwargs in items]
        try:
            results = self._run(items, fits)
        except BaseException as exc:
            for job, _ in pending:
                job.error = exc
            return
        start = 0
        for job, batch in pending:
            chunk = results[start:start + len(batch)]
            start += len(batch)
            job.results = chunk if fits else [r["value"] for r in chunk]

    def _run(self, items: list, fits: bool) -> list:
        from .._search.checkpoint import Checkpoint
        from .._search.loop import SearchEngine

        first, seconds = [], None
        if self._runner is None:
            planned, first = self._planned(items, fits)
            items = items[len(first):]
            seconds = planned.seconds_per_fit
            self._runner = self._make_runner(items, planned.plan)
        checkpoint = self.options.checkpoint if fits else None
        store = Checkpoint(checkpoint) if checkpoint is not None else None
        engine = SearchEngine(self._runner, share=fits, checkpoint=store,
                              seconds_per_fit=seconds)
        results = engine.register(items)
        option = SEQUENTIAL_OPTION.set(SEQUENTIAL)
        started = time.perf_counter()
        try:
            engine.run()
        except BaseException:
            self._spoiled = True  # the engine cancelled the runner's work
            raise
        finally:
            SEQUENTIAL_OPTION.reset(option)
            if store is not None:
                store.close()
        if seconds is not None:  # the actual time beside the prediction (#16)
            from .._decide.learned import learned_costs

            plan, _ = learned_costs().learn(self._plan, time.perf_counter() - started,
                                  calibrate=engine.n_fits == len(items))
            plans = self.options.plans
            plans[plans.index(self._plan)] = self._plan = plan
        return first + results

    def _wants_probe(self, items: list, fits: bool) -> bool:
        """Whether the plan times a fit first: engine "auto", fits to place (more than
        one), no checkpoint (every fit goes through it) and no callbacks (they report
        from the engine's fits)."""
        from .._cluster.client import inside_worker
        from .._units.callbacks import has_callbacks

        return (fits and self.options.engine == "auto" and len(items) > 1
                and self.options.checkpoint is None and not inside_worker()
                and not has_callbacks(items))

    def _driver(self):
        """This call's :class:`~distsk._search.driver.Driver`: the client and the
        compute are resolved once for the call."""
        if self._drive is None:
            from .._search.driver import Driver

            n_jobs = self.n_jobs if self.n_jobs not in (None, -1) else None
            self._drive = Driver(backend=self.options.engine, n_jobs=n_jobs,
                                 client=self.options.client,
                                 checkpoint=self.options.checkpoint)
        return self._drive

    def _planned(self, items: list, fits: bool):
        """``(Planned, kept)``: the plan of this call's items, through the driver.

        With a probe (``_wants_probe``): a fit on 1/PROBE_SUBSAMPLE of the first call's
        rows, scaled, when the choice is the same for it 3x faster or slower (as
        DistributedSearchCV); else the first call itself runs here, timed, and its
        result is ``kept`` (a list of one): the plan prices the rest.
        """
        from .._decide.profile import profile_input
        from .._search.driver import Placed, PlannedWork, Probe
        from .._units.fit_call import FitCall

        driver = self._driver()
        client, compute = driver.where()
        call = FitCall.of(items[0]) if fits else None
        X = call.X if fits else None
        placed = Placed(X, None, {}, profile_input(X), compute, client)
        if not self._wants_probe(items, fits):
            return driver.plan(placed, PlannedWork(len(items), ()), None, None), []
        whole = Probe(call.candidate_params, call.X, call.y)
        kept = []

        def probe_fit(probe):
            if probe is whole:
                result, measured = _probe_first(items[0])
                kept.append(result)
                return measured
            return _probe_part(call, probe)

        work = PlannedWork(len(items), (whole,), keeps_probes=True)
        planned = driver.plan(placed, work, probe_fit, call.estimator,
                              subsample_rows=not call.fit_params)  # fit params are per row
        return planned, kept

    def _make_runner(self, items: list, plan):
        from .._search.driver import Driver

        client = self._driver().where()[0]
        self._plan = plan
        self.options.plans.append(plan)
        key = (plan.executor, plan.n_jobs, id(client))
        runner, keep = self.options._borrow(key)
        if runner is not None:
            self._key = key
            runner.retain(items)  # the data this call passes again, unchanged, stay sent
            return runner
        runner = Driver.runner(plan, client)
        if keep and runner.reusable:
            self._key = key
            runner.kept = True
        return runner

    def abort_everything(self, ensure_ready=True):
        if self._runner is not None:
            self._spoiled = True
            self._runner.cancel()

    def terminate(self):
        runner, self._runner = self._runner, None
        key, self._key = self._key, None
        if runner is None:
            return
        if key is None or self._spoiled or not self.options._give_back(key, runner):
            runner.close()

    def get_nested_backend(self):
        return SequentialBackend(nesting_level=(self.nesting_level or 0) + 1), None

    def __reduce__(self):  # never shipped anywhere
        return (SequentialBackend, ())


def _probe_part(call, probe) -> tuple | None:
    """Seconds, bytes and CPU seconds of the probe's candidate fit on its rows (a
    part of the call's), or None if it fails."""
    from .._decide.probe import timed_probe
    from .._units.fit_call import clone_with

    try:
        estimator = clone_with(call.estimator, probe.candidate)
        with warnings.catch_warnings():  # a probe's warnings are not the user's
            warnings.simplefilter("ignore")
            return timed_probe(lambda: estimator.fit(probe.X, probe.y))[1]
    except Exception:
        return None


def _probe_first(item) -> tuple[dict, tuple[float, int | None, float]]:
    """``item`` (a fit call) run here, timed (``_cost.timed_probe``): its result and
    the probe."""
    from .._decide.probe import timed_probe
    from .._units.sharing import run_unit

    (results, _), probe = timed_probe(lambda: run_unit("single", [item]))
    return results[0], probe


def register() -> None:
    """Register ``"distsk"`` with joblib (done by ``import distsk``)."""
    from joblib import register_parallel_backend

    register_parallel_backend("distsk", DistskBackend)


def parallel_backend(backend: str = "auto", *, client=None, checkpoint=None,
                     n_jobs: int | None = None) -> Any:
    """Run unchanged scikit-learn code on distsk's engine: a joblib context manager.

    The same as ``joblib.parallel_config(backend="distsk", engine=backend, ...)``.
    Inside it, every ``Parallel`` call sklearn makes (``GridSearchCV``,
    ``cross_validate``, ``permutation_importance``, ...) runs on distsk's engine: fits
    batched, pipeline prefixes and ensemble sizes shared where exact, inner parallelism
    pinned, data sent to each Dask worker once, results identical to plain sklearn.

    Parameters
    ----------
    backend : {"auto", "sequential", "loky", "dask"}, default="auto"
        Where the calls run, as ``DistributedSearchCV``'s ``backend``: "auto" uses the
        active (or given) Dask cluster when it offers at least this machine's cores,
        local loky processes otherwise.
    client : None, distributed.Client or str, default=None
        The cluster to use (None: the active client, if any).
    checkpoint : str or path-like, default=None
        A SQLite file keeping every finished (candidate, fold) fit; running the same
        code again runs only the fits it does not hold.
    n_jobs : int, default=None
        Parallel slots for calls whose own ``n_jobs`` is None (None: all).

    Returns
    -------
    joblib.parallel_config
        A context manager. On a Dask cluster, its ``with`` block keeps the data that
        its successive ``Parallel`` calls pass again unchanged on the workers, released
        when the block ends: several ``cross_validate`` calls on the same X send it
        once. (``joblib.parallel_config(backend="distsk")`` sends it per call: joblib
        tells a backend when a call ends, not when a block does.)

    Examples
    --------
    >>> import distsk
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import GridSearchCV
    >>> X, y = make_classification(n_samples=100, random_state=0)
    >>> with distsk.parallel_backend("sequential"):
    ...     search = GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}).fit(X, y)
    >>> search.best_params_  # as without the backend
    {'C': 0.1}
    """
    return _Block(DistskBackend(engine=backend, client=client, checkpoint=checkpoint),
                  n_jobs=n_jobs)


class _Block(parallel_config):
    """``parallel_config`` given a DistskBackend instance (joblib's public way to pass
    one), whose ``with`` block keeps runners across calls and closes them at its end.
    Used as a plain call (joblib applies a configuration when it is made), it keeps
    none: nothing would tell it when to release them."""

    def __init__(self, backend: DistskBackend, n_jobs=None):
        super().__init__(backend=backend, n_jobs=n_jobs)
        self._distsk = backend

    def __enter__(self):
        self._distsk._keep_runners()
        return super().__enter__()

    def __exit__(self, *exc_info):
        try:
            super().__exit__(*exc_info)
        finally:
            self._distsk.close()
