"""Run one suspect unit of search work in a child process of a Dask worker.

A fit whose worker died every time it ran there (killed by the out-of-memory killer, a
segfault in native code, ``os._exit``) is tried once more here, alone in a process of
its own: if the child dies, that fit did it (the worker lives and says so); if it
finishes, the fit was only a bystander of another fit's crash, and its result is kept.

Protocol: ``python -m distsk._executors._child IN OUT``. ``IN`` holds the pickled
``(kind, tasks, capture_stdout)``; the child writes ``("ok", (results, n_fits, warnings,
printed, callback_messages))`` or ``("raised", exception)`` to ``OUT``. No ``OUT`` file
means the child died.
"""

from __future__ import annotations

import os
import pickle
import sys

__all__ = ["main"]


class _Collecting(dict):
    """sklearn's callback consumers in the child: every message is kept for the parent."""

    def __init__(self, sink, known):
        super().__init__(known)
        self.sink = sink

    def get(self, address, default=None):
        consumer = super().get(address, default)
        if consumer is None:
            return lambda message: self.sink.append((address, message))
        return consumer


def main(path_in: str, path_out: str) -> None:
    import cloudpickle

    from .._compat import callback_transport as transport
    from ._base import run_unit_remote

    with open(path_in, "rb") as f:
        kind, tasks, capture_stdout = pickle.load(f)
    messages: list = []
    if transport is not None:
        transport._message_consumers = _Collecting(messages, transport._message_consumers)
    try:
        outcome = ("ok", (*run_unit_remote(kind, tasks, capture_stdout), messages))
        data = cloudpickle.dumps(outcome)
    except BaseException as exc:  # the fit's own error, passed on as it is
        try:
            data = cloudpickle.dumps(("raised", exc))
        except Exception:
            data = cloudpickle.dumps(("raised", RuntimeError(f"{type(exc).__name__}: {exc}")))
    tmp = path_out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path_out)  # the parent sees a whole result or none


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
