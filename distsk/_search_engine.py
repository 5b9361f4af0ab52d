"""How a search's fits run: sklearn decides *what* to evaluate, distsk *where* and *how*.

``BaseSearchCV.fit`` hands its (candidate, fold) calls to a joblib ``Parallel``. Here a
joblib backend, :class:`CollectorBackend`, only *collects* those calls and hands back
result dicts to be filled; when the ``Parallel`` call ends (``stop_call``) the
:class:`SearchEngine` plans units of work over all of them (sharing pipeline prefixes
and ensemble sizes where exact, batching tiny fits), runs them on a runner (in-process,
loky, Dask), and fills every result dict before sklearn reads any. Scoring, errors and
``cv_results_`` stay sklearn's.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import time

from joblib._parallel_backends import ParallelBackendBase, SequentialBackend

from ._executors._base import reemit
from ._sharing import plan_units

__all__ = ["CollectorBackend", "SearchEngine"]

#: Target duration of one batch of small fits (seconds).
BATCH_SECONDS = 0.5


class SearchEngine:
    """Runs collected ``_fit_and_score`` calls on a runner, sharing work where exact.

    ``runner.submit(kind, items)`` returns a ``concurrent.futures.Future`` whose result
    is ``(results, n_fits, recorded_warnings, printed)``; ``runner.cancel()`` drops
    pending work; ``runner.slots`` is how many units run at once.
    """

    def __init__(self, runner, *, share: bool = True, seconds_per_fit: float | None = None):
        self.runner = runner
        self.share = share
        self.seconds_per_fit = seconds_per_fit
        self.n_fits = 0
        self._items: list = []
        self._results: list[dict] = []

    def register(self, items) -> list[dict]:
        results = [{} for _ in items]
        self._items.extend(items)
        self._results.extend(results)
        return results

    def run(self) -> None:
        items, results = self._items, self._results
        self._items, self._results = [], []
        if not items:
            return
        units = plan_units(items, share=self.share)
        queue = list(units)
        in_flight: dict[cf.Future, tuple[list[int], float]] = {}
        limit = 2 * max(1, self.runner.slots)
        try:
            while queue or in_flight:
                while queue and len(in_flight) < limit:
                    kind, indices = self._next_work(queue, limit)
                    future = self.runner.submit(kind, [items[i] for i in indices])
                    in_flight[future] = (indices, time.perf_counter())
                done, _ = cf.wait(in_flight, timeout=1.0, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    indices, started = in_flight.pop(future)
                    out, n_fits, recorded, printed = future.result()
                    for i, result in zip(indices, out):
                        results[i].update(result)
                    self.n_fits += n_fits
                    if printed:
                        print(printed, end="", flush=True)
                    reemit(recorded)
                    self._learn(time.perf_counter() - started, len(indices))
        except BaseException:
            self.runner.cancel()
            raise

    def _next_work(self, queue, limit):
        unit = queue.pop(0)
        if unit.kind != "single":
            return unit.kind, unit.indices
        # Consecutive single fits are batched so tiny fits are not dominated by the
        # cost of a task; batches stay small enough to spread over every slot.
        size = 1
        if self.seconds_per_fit:
            singles = sum(1 for u in queue if u.kind == "single") + 1
            size = max(1, min(int(BATCH_SECONDS / self.seconds_per_fit),
                              math.ceil(singles / limit)))
        indices = list(unit.indices)
        while queue and queue[0].kind == "single" and len(indices) < size:
            indices.extend(queue.pop(0).indices)
        return "single", indices

    def _learn(self, seconds, n_items):
        per_fit = seconds / max(1, n_items)
        prev = self.seconds_per_fit
        self.seconds_per_fit = per_fit if prev is None else 0.5 * (prev + per_fit)

    def close(self):
        self.runner.close()


class CollectorBackend(ParallelBackendBase):
    """A joblib backend that collects the calls of one ``Parallel`` for a SearchEngine.

    ``submit`` returns at once with empty result dicts; ``stop_call`` (the end of the
    ``Parallel`` call, before it returns its list) runs them all and fills the dicts.
    """

    supports_retrieve_callback = True
    supports_timeout = False

    def __init__(self, engine: SearchEngine, **kwargs):
        super().__init__(**kwargs)
        self.engine = engine

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        # Never 1: joblib would then run the calls itself, bypassing the engine.
        return max(2, self.engine.runner.slots)

    def configure(self, n_jobs=1, parallel=None, **kwargs):
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def compute_batch_size(self):
        return 1_000_000  # collect everything in a few joblib batches

    def submit(self, func, callback=None):
        future = cf.Future()
        future.set_result(self.engine.register(func.items))
        if callback is not None:
            callback(future)
        return future

    def retrieve_result_callback(self, future):
        return future.result()

    def stop_call(self):
        self.engine.run()

    def abort_everything(self, ensure_ready=True):
        self.engine.runner.cancel()

    def get_nested_backend(self):
        return SequentialBackend(nesting_level=1), None

    def __reduce__(self):  # never shipped anywhere
        return (SequentialBackend, ())
