"""The result stream between processes: each finished fit of a unit, sent as it ends.

A unit of search work batches several fits; without this, the process running the
search sees them only when the whole unit returns. Loky workers (and the child
processes that retry a unit whose pool broke) send each finished fit here over a local
socket (``multiprocessing.connection``, as scikit-learn's callback transport does:
a UNIX socket with a random key, one cached connection per worker process). The
answer to each fit says whether the unit is still wanted, so a search that stops, stops
its running units between two fits. Dask workers use Dask events instead
(``_units/worker.py``).

Measured (benchmarks/stream_cost.py): a fit's round trip is ~0.1 ms, under 0.2% of a
50 ms fit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from multiprocessing.connection import Client, Connection, Listener
from typing import NamedTuple

__all__ = ["StreamAddress", "FitListener", "send_fit", "StreamStopped"]


class StreamAddress(NamedTuple):
    """Where a unit reports its fits: a listener's socket and key, and the unit's id."""

    address: str
    authkey: bytes
    unit: int


class StreamStopped(Exception):
    """The search no longer wants this unit: it stops before its next fit."""


class FitListener:
    """This process's end: ``deliver(unit, i, result) -> bool`` is called for each fit
    sent (from one thread per worker connection), and with ``i = -1`` (no result) when
    a unit starts; its answer, False to stop the unit,
    goes back to the worker, whose ``send_fit`` returns only then -- so a unit's fits
    sent are delivered before its own result can arrive."""

    def __init__(self, deliver: Callable[[int, int, dict], bool]):
        self._deliver = deliver
        self._authkey = os.urandom(32)
        # backlog: every worker of a pool may connect at the same instant.
        self._listener = Listener(authkey=self._authkey, backlog=128)
        self.address = self._listener.address
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="distsk-stream", daemon=True).start()

    def at(self, unit: int) -> StreamAddress:
        return StreamAddress(self.address, self._authkey, unit)

    def _accept(self):
        while True:
            try:
                conn = self._listener.accept()
            except Exception:  # closed (OSError), or a client failing the handshake
                if self._closed:
                    return
                continue
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                self._connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), name="distsk-stream-read",
                             daemon=True).start()

    def _read(self, conn):
        try:
            while True:
                unit, i, result = conn.recv()
                try:
                    go_on = bool(self._deliver(unit, i, result))
                except Exception:
                    go_on = True  # the unit's own result still carries this fit
                conn.send(go_on)
        except Exception:
            # EOFError / OSError: the worker went; TypeError: close() closed this
            # connection under recv() (seen as "Exception in thread distsk-stream-read"
            # in benchmarks/run.py). Either way the unit's own result carries its fits.
            pass
        finally:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            conn.close()

    def close(self):
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        self._listener.close()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.close()


#: This worker process's connections, by listener address (a few searches at most).
_connections: dict[str, Connection] = {}
_MAX_CONNECTIONS = 4


def send_fit(stream: StreamAddress, i: int, result: dict) -> bool:
    """Send fit ``i``'s result of the unit at ``stream``; True once it is delivered.
    ``i = -1`` (``result`` None) asks whether the unit is still wanted.

    Raises :class:`StreamStopped` when the search answers that it no longer wants the
    unit. A listener that cannot be reached (its search ended) is not an error: the
    fit stays in the unit's own result (False)."""
    conn = _connections.get(stream.address)
    try:
        if conn is None:
            while len(_connections) >= _MAX_CONNECTIONS:
                _connections.pop(next(iter(_connections))).close()
            conn = Client(stream.address, authkey=stream.authkey)
            _connections[stream.address] = conn
        conn.send((stream.unit, i, result))
        go_on = conn.recv()
    except (OSError, EOFError):
        dropped = _connections.pop(stream.address, None)
        if dropped is not None:
            with contextlib.suppress(OSError):
                dropped.close()
        return False
    except Exception:  # a result that does not pickle: it travels with its unit
        return False
    if not go_on:
        raise StreamStopped(f"unit {stream.unit} is no longer wanted")
    return True
