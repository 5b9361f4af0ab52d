"""Run one suspect unit of search work in a child process of a Dask worker.

A fit whose worker died every time it ran there (killed by the out-of-memory killer, a
segfault in native code, ``os._exit``) is tried once more here, alone in a process of
its own: if the child dies, that fit did it (the worker lives and says so); if it
finishes, the fit was only a bystander of another fit's crash, and its result is kept.

The same runs on this machine for loky: a fit that kills its loky worker breaks the
whole pool, and every unit that was running is retried this way.

Protocol: ``python -m distsk._executors._child IN OUT``. ``IN`` holds the pickled
``(kind, tasks, capture_stdout)``; the child writes ``("ok", UnitResult)`` (its
``messages``: the sklearn callback messages kept for the parent) or
``("raised", exception)`` to ``OUT``. No ``OUT`` file means the child died.
"""

from __future__ import annotations

import os
import pickle
import sys

from .._callbacks import replay_callbacks
from ._base import UnitResult, merged

__all__ = ["KILLED_CONFIRMATIONS", "ChildDied", "run_in_child", "convicted", "merged", "main"]

#: Extra runs, alone in a child process, of a fit whose child died, before it is convicted.
KILLED_CONFIRMATIONS = 1


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


class ChildDied:
    """What :func:`run_in_child` returns when the child process died."""

    def __init__(self, returncode, stderr):
        self.returncode = returncode
        self.stderr = stderr

    def __str__(self):
        import signal

        if self.returncode < 0:
            try:
                how = f"killed by signal {signal.Signals(-self.returncode).name}"
            except ValueError:
                how = f"killed by signal {-self.returncode}"
        else:
            how = f"exited with code {self.returncode}"
        tail = self.stderr.strip().splitlines()[-1:] if self.stderr else []
        return how + (f" ({tail[0][:200]})" if tail else "")


def run_in_child(kind, tasks, capture_stdout) -> UnitResult | ChildDied:
    """Run a unit in a child process: its :class:`UnitResult` (callback messages not yet
    delivered), or :class:`ChildDied`. The fit's own exception is re-raised here."""
    import subprocess
    import tempfile

    import cloudpickle

    with tempfile.TemporaryDirectory(prefix="distsk-suspect-") as tmp:
        path_in, path_out = os.path.join(tmp, "in.pkl"), os.path.join(tmp, "out.pkl")
        with open(path_in, "wb") as f:
            cloudpickle.dump((kind, tasks, capture_stdout), f)
        # The child imports what this process imported, from where it found it.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        proc = subprocess.run(
            [sys.executable, "-m", "distsk._executors._child", path_in, path_out],
            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if not os.path.exists(path_out):
            return ChildDied(proc.returncode, proc.stderr)
        with open(path_out, "rb") as f:
            status, outcome = pickle.load(f)
    if status == "raised":
        raise outcome
    return outcome


def convicted(item, died):
    """The outcome of a fit whose process died every time, alone too: its error_score
    (as a failed ``_fit_and_score`` result), or a RuntimeError with error_score="raise"."""
    message = (
        f"The process running this fit died every time it ran it, also alone in a "
        f"process of its own ({died}); for example the out-of-memory killer. The fit "
        "was not tried again."
    )
    if item[2].get("error_score") == "raise":
        raise RuntimeError(message)
    replay_callbacks(item)  # it began and ended, for a progress bar
    return UnitResult([_killed_result(item, message)], 1)


def _killed_result(item, message) -> dict:
    """The result ``_fit_and_score`` gives a failed fit, for a fit that kills its process."""
    from .._compat import _MultimetricScorer

    _, _, kwargs = item
    error_score = kwargs.get("error_score")
    scorer = kwargs.get("scorer")
    if isinstance(scorer, _MultimetricScorer):
        scores = {name: error_score for name in scorer._scorers}
    else:
        scores = error_score
    result = {"fit_error": message, "test_scores": scores}
    if kwargs.get("return_train_score"):
        result["train_scores"] = scores.copy() if isinstance(scores, dict) else scores
    if kwargs.get("return_n_test_samples"):
        result["n_test_samples"] = len(kwargs["test"])
    if kwargs.get("return_times"):
        result["fit_time"] = result["score_time"] = 0.0
    if kwargs.get("return_parameters"):
        result["parameters"] = kwargs.get("parameters")
    return result


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
        outcome = ("ok", run_unit_remote(kind, tasks, capture_stdout)._replace(
            messages=messages))
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
