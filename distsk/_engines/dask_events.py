"""What comes back from a Dask search's tasks besides their results, and how results
are fetched: ``DaskRunner``'s two collaborators on the client side.

:class:`EventRelay`
    Dask events from the workers: sklearn callback messages (ProgressBar,
    ScoringMonitor, ...), delivered here to their listener as sklearn would deliver
    them over its local socket, which a remote worker cannot reach; and the result
    stream, each fit a batch keeps as it ends (``_units/worker._run_fits_kept``),
    handed to the runner's ``report``.
:class:`Gatherer`
    Finished units' results, fetched together on one thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import pickle
import threading
import time

from .._units.worker import stream_topic
from .dask_data import RESULT_TIMEOUT, bounded

__all__ = ["EventRelay", "Gatherer", "Late"]

#: Seconds the scheduler may take to say which worker holds which finished result.
WHO_HAS_TIMEOUT = 10.0
#: Seconds a finished unit's result may take to arrive before the unit is also run
#: again on another worker (``Late``): its worker may be cut off, and Dask only
#: notices after its TCP timeout (30 s). The fetch goes on; the first result is taken.
FETCH_PATIENCE = 5.0


class Late(tuple):
    """``done(fut, Late(workers))``: the result held by ``workers`` is late to arrive
    (``FETCH_PATIENCE``); the fetch goes on, and ``done`` is called again with it."""


class EventRelay:
    """The Dask event topics of one runner: ``topic`` for callback messages,
    ``stream_topic(topic)`` for the result stream (see the module docstring).

    ``runner.report`` (``Runner.report``) receives each streamed fit as
    ``report(items, i, result)``, ``items`` the list the batch was submitted with
    (:meth:`watch`). Events run on the client's event loop: handlers only unpickle and
    hand on."""

    def __init__(self, client, topic, runner):
        self.client, self.topic, self.runner = client, topic, runner
        #: Callback events sent by finished units, and delivered here.
        self.sent = self.received = 0
        self._items: dict[str, list] = {}  # a running batch's key -> its items
        client.subscribe_topic(topic, self._deliver)
        client.subscribe_topic(stream_topic(topic), self._streamed)

    def watch(self, key: str, items: list) -> None:
        """Fits streamed by the batch ``key`` (or its copy) are fits of ``items``."""
        self._items[key] = items

    def forget(self, key: str) -> None:
        self._items.pop(key, None)

    def _streamed(self, event):
        _, blob = event
        try:
            i, (result, _, _), key = pickle.loads(blob)
        except Exception:  # not ours, or not unpicklable here: it comes with its unit
            return
        items, report = self._items.get(key), self.runner.report
        if items is not None and report is not None:
            report(items, i, result)

    def _deliver(self, event):
        from .._compat import callback_transport as transport

        _, msg = event
        try:
            transport.send(transport.ListenerHandle(msg["address"], b""),
                           pickle.loads(msg["message"]))
        finally:
            self.received += 1

    def flush(self, timeout: float = 10.0):
        """Wait until every callback event sent by finished units has been delivered."""
        deadline = time.monotonic() + timeout
        while self.received < self.sent and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self):
        for topic in (self.topic, stream_topic(self.topic)):
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(topic)


class Gatherer:
    """Finished units' results, fetched together per worker: distributed runs
    done-callbacks on one thread, and one blocking fetch each made results arrive one
    round trip at a time (3 s after the last of 223 units had finished, on 64 slots).
    :meth:`later` queues a finished future; a thread takes all queued ones, groups them
    by the worker holding them (one question to the scheduler) and fetches each group
    on a thread of its own, which calls each one's ``done(fut, (outcome,))``, or
    ``done(fut, "singly")`` when the group's fetch failed (one was lost meanwhile: each
    then takes its own path). So a worker that stops answering holds only the results
    it holds, until Dask's TCP timeout fails their fetch: not the others, nor the
    results of the copies the search starts elsewhere meanwhile (#23: a network
    partition catching a result in transit held every other one for ~31 s)."""

    #: Groups fetched at once; more wait for a free fetch.
    FETCHES = 8

    def __init__(self, client, closing):
        self.client = client
        self._closing = closing  # () -> bool: the thread ends once idle and closing
        self._lock = threading.Lock()
        self._thread = None
        self._fetches = None
        self._arrived: list = []
        self._arrival = threading.Event()

    def later(self, fut, done) -> None:
        with self._lock:
            if self._thread is None:
                self._fetches = cf.ThreadPoolExecutor(
                    self.FETCHES, thread_name_prefix="distsk-fetch")
                self._thread = threading.Thread(
                    target=self._loop, name="distsk-gather", daemon=True)
                self._thread.start()
            self._arrived.append((fut, done))
        self._arrival.set()

    def _loop(self):
        while True:
            self._arrival.wait(timeout=1.0)
            self._arrival.clear()
            with self._lock:
                batch, self._arrived = self._arrived, []
            if not batch:
                if self._closing():
                    self._fetches.shutdown(wait=False)
                    return
                continue
            for where, group in self._by_worker(batch):
                self._fetches.submit(self._fetch, where, group)
            del batch, group  # release the futures once fetched, not next time

    def _by_worker(self, batch) -> list[tuple[tuple, list]]:
        """``batch`` in groups by the workers holding each result: ``(workers,
        group)`` (one group, its workers unknown, if the scheduler does not say)."""
        try:
            holders = bounded(functools.partial(
                self.client.who_has, [fut for fut, _ in batch]), WHO_HAS_TIMEOUT)
        except BaseException:
            return [((), batch)]
        groups: dict = {}
        for entry in batch:
            where = tuple(sorted(holders.get(entry[0].key) or ()))
            groups.setdefault(where, []).append(entry)
        return list(groups.items())

    def _fetch(self, where, group) -> None:
        futures = [fut for fut, _ in group]
        pool = cf.ThreadPoolExecutor(1)
        try:
            fetch = pool.submit(self.client.gather, futures)
            try:
                outcomes = fetch.result(timeout=FETCH_PATIENCE)
            except cf.TimeoutError:
                if where:
                    for fut, done in group:
                        done(fut, Late(where))
                outcomes = fetch.result(timeout=RESULT_TIMEOUT - FETCH_PATIENCE)
        except BaseException:
            outcomes = None  # one was lost meanwhile: each on its own path
        finally:
            pool.shutdown(wait=False)
        for i, (fut, done) in enumerate(group):
            done(fut, (outcomes[i],) if outcomes is not None else "singly")
