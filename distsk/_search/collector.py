"""The joblib side of a search: a backend that collects one ``Parallel``'s calls.

``BaseSearchCV.fit`` hands its (candidate, fold) calls to a joblib ``Parallel``;
:class:`CollectorBackend` only collects them for a ``SearchEngine`` (``loop.py``) and
hands back result dicts that the engine fills when the ``Parallel`` call ends.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
from typing import TYPE_CHECKING

from .._compat import ParallelBackendBase, SequentialBackend

if TYPE_CHECKING:
    from .loop import SearchEngine

__all__ = ["CollectorBackend", "QueuedCallbacks"]


class QueuedCallbacks:
    """joblib completion callbacks answered one after another, never nested.

    joblib's completion callback dispatches the next batch, which calls ``submit``
    again: answered synchronously, every batch would add frames to the stack
    (RecursionError past ~50 batches, i.e. a 50 x 5 grid on 64 slots). A backend that
    completes jobs inside ``submit`` queues them here; the outermost call runs them.
    """

    def __init__(self):
        self._queue: collections.deque = collections.deque()
        self._draining = False

    def answer(self, callback, job) -> None:
        self._queue.append((callback, job))
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                done, result = self._queue.popleft()
                done(result)
        finally:
            self._draining = False


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
        self._callbacks = QueuedCallbacks()

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
            self._callbacks.answer(callback, future)
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
