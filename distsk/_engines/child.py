"""A fit that kills its process: tried alone in a child process, then convicted.

A fit whose worker died every time it ran there (killed by the out-of-memory killer, a
segfault in native code, ``os._exit``) is tried once more alone in a child process of
its own (``_worker.run_in_child``): if the child dies, that fit did it (the worker lives
and says so); if it finishes, the fit was only a bystander of another fit's crash, and
its result is kept. The same runs on this machine for loky: a fit that kills its loky
worker breaks the whole pool, and every unit that was running is retried this way.

This module is the caller's side: how many times, and the result a convicted fit gets.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools

from .._units.callbacks import replay_callbacks
from .._units.fit_call import FitCall
from .._units.worker import UnitResult, merged

__all__ = ["KILLED_CONFIRMATIONS", "convicted", "fit_by_fit"]

#: Extra runs, alone in a child process, of a fit whose child died, before it is convicted.
KILLED_CONFIRMATIONS = 1


def convicted(item, died):
    """The outcome of a fit whose process died every time, alone too: its error_score
    (as a failed ``_fit_and_score`` result), or a RuntimeError with error_score="raise"."""
    message = (
        f"The process running this fit died every time it ran it, also alone in a "
        f"process of its own ({died}); for example the out-of-memory killer. The fit "
        "was not tried again."
    )
    if FitCall.of(item).error_score == "raise":
        raise RuntimeError(message)
    replay_callbacks(item)  # it began and ended, for a progress bar
    return UnitResult([_killed_result(item, message)], 1)


def fit_by_fit(items, result, send, report_of) -> None:
    """Run each fit of ``items`` as a unit of its own, ``send(item, part)`` settling the
    future ``part``; ``result`` gets their merged :class:`UnitResult` once all are in
    (or the first error). Each fit is reported as it ends, to ``report_of()`` (the
    runner's ``report`` at that moment, if any)."""
    parts = [cf.Future() for _ in items]
    for item, part in zip(items, parts):
        try:
            send(item, part)
        except BaseException as err:
            part.set_exception(err)

    def collect(j, part):
        report = report_of()
        if report is not None and not part.cancelled() and part.exception() is None:
            report(items, j, part.result().results[0])
        if not all(p.done() for p in parts) or result.done():
            return
        try:
            outs = [p.result() for p in parts]
        except BaseException as err:
            result.set_exception(err)
            return
        result.set_result(merged(outs))

    for j, part in enumerate(parts):
        part.add_done_callback(functools.partial(collect, j))


def _killed_result(item, message) -> dict:
    """The result ``_fit_and_score`` gives a failed fit, for a fit that kills its process."""
    from .._compat import _MultimetricScorer

    call = FitCall.of(item)
    error_score = call.error_score
    scorer = call.scorer
    if isinstance(scorer, _MultimetricScorer):
        scores = {name: error_score for name in scorer._scorers}
    else:
        scores = error_score
    result = {"fit_error": message, "test_scores": scores}
    if call.wants("train_score"):
        result["train_scores"] = scores.copy() if isinstance(scores, dict) else scores
    if call.wants("n_test_samples"):
        result["n_test_samples"] = len(call.test)
    if call.wants("times"):
        result["fit_time"] = result["score_time"] = 0.0
    if call.wants("parameters"):
        result["parameters"] = call.parameters
    return result


